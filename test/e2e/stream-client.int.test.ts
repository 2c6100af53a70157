/**
 * The client library (`presence-aggregator/client`) end to end against the real
 * `bin/presence.js serve` process: WebSocket and the SSE fallback, subscribe/unsubscribe, the
 * local map with onSync/onChange, a device through the client, and a reconnect across a server
 * restart (a new epoch: a fresh snapshot, the map right again, the device not flapping).
 */

import WebSocket from 'ws';

import type { WebSocketConstructor } from '../../src/client';
import { heartbeatVia, presenceClients, startServe, until, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

const Ws = WebSocket as unknown as WebSocketConstructor;
let serve: ServeProcess;
const { client, closeAll } = presenceClients(() => serve, { reconnect: { minMs: 50, maxMs: 500 } });
const beat = (user: string, status: string, device?: string): Promise<void> =>
  heartbeatVia(serve, user, status, device);

afterEach(async () => {
  closeAll();
  await serve.stop();
});

describe('client library against presence serve', () => {
  beforeEach(async () => {
    serve = await startServe();
  });

  it.each([
    ['ws', { WebSocket: Ws }],
    ['sse', {}], // Node 20 has no global WebSocket: the client falls back to SSE
  ] as const)(
    'over %s: snapshot, changes, subscribe and unsubscribe keep the local map in sync',
    async (kind, extra) => {
      await beat('alice', 'online');
      const c = client({ userIds: ['alice'], ...extra });
      const syncs: boolean[] = [];
      const seen: [string, string | undefined, string | undefined][] = [];
      c.onSync((recovered) => syncs.push(recovered));
      c.onChange((id, p, prev) => seen.push([id, p?.status, prev?.status]));
      c.connect();
      await until(() => syncs.length >= 1, 'the first sync');
      expect(c.transport).toBe(kind);
      expect(c.presence.get('alice')?.status).toBe('online');
      await beat('alice', 'busy');
      await until(() => c.presence.get('alice')?.status === 'busy', 'alice busy');
      expect(seen).toEqual([
        ['alice', 'online', undefined],
        ['alice', 'busy', 'online'],
      ]);
      await beat('bob', 'away');
      c.subscribe(['bob']);
      await until(() => c.presence.get('bob')?.status === 'away', 'bob from his snapshot');
      await beat('bob', 'online');
      await until(() => c.presence.get('bob')?.status === 'online', 'bob online');
      c.unsubscribe(['alice']);
      expect(c.presence.has('alice')).toBe(false);
      await beat('alice', 'away');
      await beat('bob', 'busy');
      await until(() => c.presence.get('bob')?.status === 'busy', 'bob busy');
      expect(c.presence.has('alice')).toBe(false);
    },
  );

  it('over SSE with 2,000 ids (a URL of ~24 KB, past the 16 KB Node takes): split over several streams, one sync, every change', async () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `user-${String(i).padStart(6, '0')}`);
    const [head, tail] = [ids[0]!, ids.at(-1)!];
    await beat(head, 'online');
    await beat(tail, 'away');
    const c = client({ userIds: ids });
    const syncs: boolean[] = [];
    let snapshots = 0;
    c.onSync((recovered) => syncs.push(recovered));
    c.onMessage((m) => {
      if (m.type === 'snapshot') snapshots += 1;
    });
    c.connect();
    await until(() => syncs.length >= 1, 'the first sync');
    expect(c.transport).toBe('sse');
    expect(snapshots).toBeGreaterThan(1); // several streams, each with its snapshot
    expect(syncs).toEqual([true]); // one sync for all of them
    expect([c.presence.get(head)?.status, c.presence.get(tail)?.status]).toEqual(['online', 'away']);
    expect(c.presence.size).toBe(2);
    await beat(head, 'busy');
    await beat(tail, 'online');
    await until(
      () => c.presence.get(head)?.status === 'busy' && c.presence.get(tail)?.status === 'online',
      'changes of the first and the last stream',
    );
  });

  it('identifies as a device: online while connected, offline one grace after close', async () => {
    const c = client({ WebSocket: Ws });
    c.identify('dana', 'browser-tab');
    c.connect();
    const get = async () => (await serve.api('GET', '/v1/presence/dana')).body;
    await until(async () => (await get()).status === 'online', 'dana online');
    expect(Object.keys((await get()).platforms.device.devices)).toEqual(['browser-tab']);
    c.setStatus('busy');
    await until(async () => (await get()).status === 'busy', 'dana busy');
    c.close();
    await until(async () => (await get()).status === 'offline', 'dana offline after the grace');
  });
});

describe('client library across a server restart', () => {
  it('reconnects by itself: a fresh snapshot of a new epoch, changes made meanwhile in it, a device held without a flap', async () => {
    serve = await startServe({ env: { PRESENCE_DEVICE_GRACE_MS: '20000' } });
    await beat('alice', 'online');
    const watcher = client({ userIds: ['alice', 'erin'], WebSocket: Ws });
    const syncs: boolean[] = [];
    watcher.onSync((recovered) => syncs.push(recovered));
    watcher.connect();
    const device = client({ WebSocket: Ws });
    device.identify('erin', 'phone');
    device.connect();
    await until(() => watcher.presence.get('erin')?.status === 'online', 'erin online');
    const erinVersion = watcher.presence.get('erin')!.version;
    const before = watcher.lastPosition!;

    // SIGTERM: the service drains (clients told to reconnect) and stops; the same database and port come back.
    const first = serve;
    const port = new URL(first.base).port;
    first.child.kill('SIGTERM');
    await first.exited;
    serve = await startServe({
      db: first.env.PRESENCE_DB!,
      env: {
        PORT: port,
        PRESENCE_SECRET_KEY: first.env.PRESENCE_SECRET_KEY!,
        PRESENCE_DEVICE_GRACE_MS: '20000',
      },
    });
    await beat('alice', 'busy'); // while the watcher may still be reconnecting
    await until(
      () => syncs.length >= 2 && watcher.presence.get('alice')?.status === 'busy',
      'in sync after the restart',
    );
    expect(syncs.slice(1)).toContain(false); // a new epoch: the old position could not be resumed
    expect(watcher.lastPosition!.split(':')[0]).not.toBe(before.split(':')[0]);
    await beat('alice', 'away');
    await until(() => watcher.presence.get('alice')?.status === 'away', 'changes flow again');
    // The device came back within its grace: no change at all.
    await until(() => device.transport === 'ws', 'the device reconnected');
    const erin = (await serve.api('GET', '/v1/presence/erin')).body;
    expect(erin).toMatchObject({ status: 'online', version: erinVersion });
    await serve.stop();
    serve = first; // afterEach cleans its temporary directory, which held the database
  });
});
