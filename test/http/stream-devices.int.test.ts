/**
 * Devices as WebSocket connections: identify → online (under platforms.device.devices), close →
 * offline one grace later, a reconnect within the grace changes nothing, two missed pings count
 * as a close, and the webhooks each of those sends. After a restart, a device that does not come
 * back goes offline one grace after start. Time is a FakeClock; the engine's sweep is run by hand.
 */

import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { HOLD_MS } from '../../src/stream/devices';
import { tmpDir } from '../helpers/engine';
import { Receiver } from '../helpers/receiver';
import { openWs, type WsClient } from '../helpers/stream-clients';
import { waitUntil } from '../helpers/wait';

const GRACE = 5000;
let clock: FakeClock;
let receiver: Receiver;
let tmp: ReturnType<typeof tmpDir>;
let secret: string;
let svc: Service;
let key: string;
let readKey: string;

async function boot(): Promise<void> {
  svc = await createService(
    parseEnv({
      PRESENCE_DB: join(tmp.dir, 'devices.db'),
      PRESENCE_SECRET_KEY: secret,
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      PRESENCE_DEVICE_GRACE_MS: String(GRACE),
      LOG_LEVEL: 'silent',
    }),
    { clock, logger: false, timers: false },
  );
  key = (await svc.keys.create(['read', 'write'], 'device')).key;
  readKey = (await svc.keys.create(['read'], 'viewer')).key;
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
}

const url = (path = '/v1/ws'): string =>
  `ws://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}${path}`;
const device = (userId: string) => svc.engine.get(userId)?.platforms.device?.devices ?? {};
const changes = () => receiver.bodies().filter((b) => b.type === 'presence.changed');

async function identify(extra: Record<string, unknown> = {}): Promise<WsClient> {
  const c = await openWs(url(), { authorization: `Bearer ${key}` });
  c.send({ type: 'identify', user_id: 'alice', device_id: 'phone', ...extra });
  await c.next((m) => m.type === 'identified' || m.type === 'error', 'identified');
  return c;
}

/** Moves time past the grace and lets the engine's sweep find the expiry. */
async function pastGrace(ms = GRACE): Promise<void> {
  clock.advance(ms);
  await svc.engine.sweep();
}

beforeEach(async () => {
  // standardwebhooks-style timestamps are checked against real time elsewhere: start at now.
  clock = new FakeClock(Date.now());
  receiver = await Receiver.start();
  tmp = tmpDir();
  secret = randomBytes(32).toString('base64');
  await boot();
  const res = await svc.app.inject({
    method: 'POST',
    url: '/v1/webhooks',
    headers: { authorization: `Bearer ${(await svc.keys.create(['admin'], 'admin')).key}` },
    payload: { url: receiver.url },
  });
  expect(res.statusCode).toBe(201);
});

afterEach(async () => {
  await svc.close();
  await receiver.close();
  tmp.cleanup();
});

it('identify makes the device online while connected; closing takes it offline one grace later, with webhooks', async () => {
  const c = await identify();
  expect(svc.engine.get('alice')).toMatchObject({ status: 'online' });
  expect(Object.keys(device('alice'))).toEqual(['phone']);
  await receiver.waitFor(1);
  expect(changes()[0]!.data).toMatchObject({ user_id: 'alice', current: { status: 'online' } });
  await c.close();
  await waitUntil(() => svc.stream.devices.connected === 0, 'the close seen');
  await pastGrace(GRACE - 1000);
  expect(svc.engine.get('alice')?.status).toBe('online'); // still within the grace
  await pastGrace(1000);
  expect(svc.engine.get('alice')?.status).toBe('offline');
  await receiver.waitFor(2);
  expect(changes().map((b) => (b.data.current as { status: string }).status)).toEqual(['online', 'offline']);
});

it('a reconnect within the grace changes nothing: no new version, no webhook', async () => {
  const c = await identify({ status: 'busy' });
  await receiver.waitFor(1);
  const version = svc.engine.get('alice')!.version;
  await c.close();
  await waitUntil(() => svc.stream.devices.connected === 0, 'the close seen');
  await pastGrace(GRACE - 1000);
  const back = await identify({ status: 'busy' });
  await pastGrace(GRACE * 10);
  expect(svc.engine.get('alice')).toMatchObject({ status: 'busy', version });
  await back.close();
  await waitUntil(() => svc.stream.devices.connected === 0, 'the close seen');
  await pastGrace();
  expect(svc.engine.get('alice')?.status).toBe('offline');
  await receiver.waitFor(2);
  expect(changes().map((b) => (b.data.current as { status: string }).status)).toEqual(['busy', 'offline']);
});

it('a status message changes the device; identify needs the write scope', async () => {
  const c = await identify();
  c.send({ type: 'status', status: 'away' });
  await waitUntil(() => svc.engine.get('alice')?.status === 'away', 'away');
  await c.close();
  const reader = await openWs(url(), { authorization: `Bearer ${readKey}` });
  reader.send({ type: 'identify', user_id: 'bob', device_id: 'tab' });
  const e = await reader.next((m) => m.type === 'error');
  expect(e.error.code).toBe('forbidden');
  expect(svc.engine.hasUser('bob')).toBe(false);
  await reader.close();
});

it('a connection that misses two pings counts as closed', async () => {
  const c = await identify();
  // The client stops answering pings (ws answers them by itself unless told otherwise).
  (c.ws as unknown as { _receiver: { removeAllListeners(e: string): void } })._receiver.removeAllListeners(
    'ping',
  );
  for (let i = 0; i < 3; i++) {
    clock.advance(25_000);
    svc.stream.hub.tick();
  }
  await c.closed;
  await waitUntil(() => svc.stream.devices.connected === 0, 'the dead connection released');
  await pastGrace();
  expect(svc.engine.get('alice')?.status).toBe('offline');
});

it('after a restart, a device that does not come back goes offline one grace after start, not at once', async () => {
  await identify();
  await receiver.waitFor(1);
  await svc.close();
  clock.advance(60_000); // the service was down for a minute
  await boot();
  expect(svc.engine.get('alice')?.status).toBe('online');
  await pastGrace(GRACE - 1000);
  expect(svc.engine.get('alice')?.status).toBe('online');
  await pastGrace(1000);
  expect(svc.engine.get('alice')?.status).toBe('offline');
});

it('after a restart, a device held for hours by answered pings is still cut to one grace', async () => {
  const c = await identify();
  await receiver.waitFor(1);
  const expiresAt = () => Date.parse(device('alice').phone!.expires_at);
  const first = expiresAt();
  // The pings the connection answers keep its hold in memory; only refresh persistence writes it.
  clock.advance(HOLD_MS - 10_000);
  svc.stream.hub.tick();
  await waitUntil(() => expiresAt() > first, 'the answered ping refreshed the hold');
  await svc.close(); // stopping persists the refreshed hold
  await c.closed.catch(() => undefined);
  clock.advance(60_000); // down for a minute: past the hold identify gave, inside the refreshed one
  await boot();
  expect(svc.engine.get('alice')?.status).toBe('online');
  await pastGrace();
  expect(svc.engine.get('alice')?.status).toBe('offline');
});

it('after a restart, a device that comes back within the grace changes nothing', async () => {
  await identify();
  const version = svc.engine.get('alice')!.version;
  await svc.close();
  clock.advance(60_000);
  await boot();
  const back = await identify();
  await pastGrace(GRACE * 4);
  expect(svc.engine.get('alice')).toMatchObject({ status: 'online', version });
  await back.close();
});
