/**
 * One Discord gateway per bot across nodes (issue #16): DiscordConnectors ("nodes") with the real
 * discord.js client against the loopback fake Discord, sharing one RedisCoordination prefix and
 * one FakeClock for the gateway lock's lease. Exactly one node identifies and holds a connection;
 * a clean stop releases the lock at once and the other takes over; a holder that stops renewing
 * (dead, or stalled) is taken over when its lease ends, and on waking finds its lease gone and
 * closes its gateway. The lease steps are called directly (their real-time timer is set far out).
 */

import { DiscordConnector, GATEWAY_LEASE_MS } from '../../../connectors/discord/connector';
import type { ConnectorContext, ConnectorReport } from '../../../src/core/connector';
import { silentLog } from '../../../src/core/log';
import type { AccountRef } from '../../../src/core/ports';
import { ALICE, BOB, FakeDiscord, teamGuild, waitFor } from '../../helpers/fake-discord';

import { Deployment } from './helpers';

jest.setTimeout(120_000);

let d: Deployment;
let fake: FakeDiscord;
const running: DiscordConnector[] = [];

const accounts: AccountRef[] = [ALICE, BOB].map((id) => ({
  platform: 'discord',
  externalId: id,
  workspaceId: '',
}));

async function node(): Promise<{ c: DiscordConnector; reports: ConnectorReport[] }> {
  const co = await d.coordination();
  const reports: ConnectorReport[] = [];
  const c = new DiscordConnector({
    token: fake.token,
    apiUrl: fake.apiUrl,
    clock: d.clock,
    locks: co.locks,
    // Far out: the test runs the lease steps itself.
    leaseCheckMs: 3600_000,
  });
  const ctx: ConnectorContext = {
    clock: d.clock,
    log: silentLog,
    report: (r) => {
      reports.push(r);
      return Promise.resolve(true);
    },
    accounts: () => accounts,
  };
  await c.start(ctx);
  running.push(c);
  return { c, reports };
}

async function stop(c: DiscordConnector): Promise<void> {
  running.splice(running.indexOf(c), 1);
  await c.stop();
}

beforeEach(async () => {
  d = new Deployment();
  fake = await FakeDiscord.start({ guilds: [teamGuild()] });
});
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  await fake.stop();
  await d.close();
});

it('two nodes: one gateway connection and one IDENTIFY; the other stands by and reports nothing', async () => {
  const a = await node();
  const b = await node();
  await Promise.all([a.c.checkLease(), b.c.checkLease()]);
  const [holder, standby] = a.c.holdsGateway ? [a, b] : [b, a];
  expect(holder.c.holdsGateway).toBe(true);
  expect(standby.c.holdsGateway).toBe(false);
  await waitFor(() => holder.c.health().state === 'ok' && holder.reports.length >= 2, 60_000, 'the session');
  // The lease is renewed, never taken by the standby, as the clock moves in steps within it.
  for (let i = 0; i < 6; i++) {
    d.clock.advance(GATEWAY_LEASE_MS / 3);
    await holder.c.checkLease();
    await standby.c.checkLease();
  }
  expect(fake.identifies).toHaveLength(1);
  expect(fake.openConnections).toBe(1);
  expect(standby.reports).toEqual([]);
  expect(standby.c.stats.clients).toBe(0);
});

it('a clean stop releases the gateway at once: the standby takes over on its next step', async () => {
  const a = await node();
  const b = await node();
  await Promise.all([a.c.checkLease(), b.c.checkLease()]);
  const [holder, standby] = a.c.holdsGateway ? [a, b] : [b, a];
  await waitFor(() => holder.c.health().state === 'ok', 60_000, 'the first session');
  await stop(holder.c);
  // No clock movement: the lock was released, not left to end.
  await standby.c.checkLease();
  expect(standby.c.holdsGateway).toBe(true);
  await waitFor(
    () => standby.c.health().state === 'ok' && standby.reports.length >= 2,
    60_000,
    'the takeover',
  );
  expect(fake.identifies).toHaveLength(2);
  await waitFor(() => fake.openConnections === 1, 60_000, 'one connection');
});

it('a holder that stops renewing is taken over when its lease ends, and closes its gateway on waking', async () => {
  const a = await node();
  const b = await node();
  await Promise.all([a.c.checkLease(), b.c.checkLease()]);
  const [holder, standby] = a.c.holdsGateway ? [a, b] : [b, a];
  await waitFor(() => holder.c.health().state === 'ok', 60_000, 'the first session');
  // The holder renews no more (dead, or stalled). Within its lease the standby waits.
  d.clock.advance(GATEWAY_LEASE_MS - 1);
  await standby.c.checkLease();
  expect(standby.c.holdsGateway).toBe(false);
  d.clock.advance(1);
  await standby.c.checkLease();
  expect(standby.c.holdsGateway).toBe(true);
  await waitFor(() => standby.c.health().state === 'ok', 60_000, 'the takeover');
  expect(fake.identifies).toHaveLength(2);
  // The stalled holder wakes: its renewal is refused, and it lets its gateway go.
  await holder.c.checkLease();
  expect(holder.c.holdsGateway).toBe(false);
  await waitFor(() => fake.openConnections === 1, 60_000, 'the old gateway closed');
  // And it stands by from then on.
  const before = fake.identifies.length;
  d.clock.advance(GATEWAY_LEASE_MS / 3);
  await standby.c.checkLease();
  await holder.c.checkLease();
  expect(holder.c.holdsGateway).toBe(false);
  expect(fake.identifies).toHaveLength(before);
});
