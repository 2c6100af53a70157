/**
 * Expiries decided once, in Redis (cluster/expiry.ts), in process: engines of several nodes over
 * one database file and one Redis prefix (the real Redis at 127.0.0.1:6379, a random prefix per
 * test, deleted after), on one FakeClock that the Redis sweep reads too. The expiry keepers'
 * timers (refresh batches, sweeps, lease renewals) run on that clock: `pass(ms)` moves it in
 * small steps and lets each step's work finish, so a renewal is never late because the machine
 * was busy. Two nodes sweeping the same expiries make one transition each; another node's
 * refreshes keep a user live although this node's memory says its observation expired; a device
 * connection's expiry lives one grace past its holder's last renewal.
 */

import { join } from 'node:path';

import Fastify from 'fastify';

import { PresenceEngine } from '../../../src/aggregator/engine';
import { Cluster } from '../../../src/cluster';
import type { PresenceChange } from '../../../src/core/changes';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import { Ladder } from '../../../src/core/presence';
import { registerMetrics } from '../../../src/http/metrics';
import { migrate, openDb, type Db } from '../../../src/store/db';
import { engineDeviceReporter } from '../../../src/stream';
import { DeviceConnections, HOLD_MS } from '../../../src/stream/devices';
import { StreamHub } from '../../../src/stream/hub';
import { asyncPresenceOn, tmpDir } from '../../helpers/engine';
import { ManualTimers } from '../../helpers/stream-fakes';
import { waitUntil } from '../../helpers/wait';
import { Deployment, REDIS_URL } from '../redis/helpers';

interface Node {
  engine: PresenceEngine;
  cluster: Cluster;
  db: Db;
  /** Every change this node committed (its own, not those it took from the log). */
  committed: PresenceChange[];
  closed: boolean;
}

const GRACE_MS = 5_000;
/** The step of `pass`: a divisor of every period of the keeper (200, 250 and 1,000 ms). */
const STEP_MS = 50;
let tmp: ReturnType<typeof tmpDir>;
let deployment: Deployment;
let clock: FakeClock;
let timers: ManualTimers;
const nodes: Node[] = [];

beforeEach(() => {
  tmp = tmpDir();
  deployment = new Deployment();
  clock = new FakeClock();
  timers = new ManualTimers(clock);
});

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    if (!n.closed) await n.cluster.close();
    await n.engine.stop();
    n.db.close();
  }
  await deployment.close();
  tmp.cleanup();
});

async function node(): Promise<Node> {
  const db = openDb(join(tmp.dir, 'shared.db'));
  migrate(db);
  const engine = new PresenceEngine({ clock, store: asyncPresenceOn(db), ladder: new Ladder() });
  const hub = new StreamHub({
    clock,
    reader: { getManyJson: (ids) => engine.getManyJson(ids), state: (id) => engine.state(id) },
    timers: new ManualTimers(clock),
  });
  const cluster = await Cluster.open({
    url: REDIS_URL,
    prefix: deployment.prefix,
    clock,
    log: silentLog,
    blockMs: 200,
    deviceGraceMs: GRACE_MS,
    timers,
  });
  const committed: PresenceChange[] = [];
  const n: Node = { engine, cluster, db, committed, closed: false };
  nodes.push(n); // closed after the test even if the start fails
  cluster.attach(engine);
  engine.changes.add({ committed: (changes) => void committed.push(...changes) });
  await cluster.prepare();
  await engine.load();
  cluster.start(hub);
  await cluster.ready;
  return n;
}

/**
 * `ms` of the fake clock, in steps of STEP_MS: each step runs the keepers' timers that came due
 * and waits until the work they started (Redis round trips) is done, as an idle machine would.
 */
async function pass(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= STEP_MS) {
    timers.advance(Math.min(STEP_MS, left));
    await Promise.all(nodes.filter((n) => !n.closed).map((n) => n.cluster.deviceLease!.idle()));
  }
}

/** A node dies: its timers and connections stop, nothing more is sent (no graceful flush). */
async function kill(n: Node): Promise<void> {
  n.closed = true;
  n.cluster.hot.client.disconnect();
  await n.cluster.close();
}

const offline = (n: Node, id: string): boolean => n.engine.state(id)?.status === 'offline';
const toOffline = (n: Node, id: string): PresenceChange[] =>
  n.committed.filter((c) => c.userId === id && c.current.status === 'offline');

it('two nodes sweeping the same expiries: one transition and one change per expiry', async () => {
  const a = await node();
  const b = await node();
  const ids = Array.from({ length: 40 }, (_, i) => `u${i}`);
  // Half the users report through each node.
  await Promise.all(
    ids.map((id, i) => (i % 2 === 0 ? a : b).engine.heartbeat(id, 'phone', 'online', null, 10_000)),
  );
  const startedAt = clock.now();
  await waitUntil(
    () => ids.every((id) => a.engine.state(id)?.version === 1 && b.engine.state(id)?.version === 1),
    'followers',
  );
  await waitUntil(
    () => (a.cluster.stats.expiry?.writes ?? 0) + (b.cluster.stats.expiry?.writes ?? 0) >= 40,
    'writes',
  );

  // Before the TTL nothing is swept, whatever each node's wheel would say.
  await pass(9_000);
  await Promise.all([a.engine.sweep(), b.engine.sweep()]);
  expect(ids.every((id) => a.engine.state(id)?.status === 'online')).toBe(true);

  await pass(1_600); // past the TTL and the sweep's margin
  await waitUntil(() => ids.every((id) => offline(a, id) && offline(b, id)), 'both nodes see every expiry');
  for (const id of ids) {
    const made = [...toOffline(a, id), ...toOffline(b, id)];
    expect(made).toHaveLength(1);
    expect(made[0]).toMatchObject({ version: 2 });
    expect(made[0]!.at - startedAt).toBeLessThanOrEqual(10_000 + 2_000);
    const history = await a.engine.history(id, { limit: 10 });
    expect(history.map((t) => [t.version, t.toStatus])).toEqual([
      [2, 'offline'],
      [1, 'online'],
    ]);
  }
  expect(a.cluster.stats.expiry!.ended + b.cluster.stats.expiry!.ended).toBe(40);
});

it("another node's refreshes keep a user live; it goes offline one TTL after the last one", async () => {
  const a = await node();
  const b = await node();
  await a.engine.heartbeat('ann', 'phone', 'online', null, 10_000);
  await waitUntil(() => b.engine.state('ann')?.version === 1, 'B takes the change');

  // The phone keeps heartbeating through B only: refreshes that change nothing, batched.
  let last = clock.now();
  for (let i = 0; i < 6; i++) {
    await pass(5_000);
    const sent = b.cluster.stats.expiry!.refreshRoundTrips;
    await b.engine.heartbeat('ann', 'phone', 'online', null, 10_000);
    last = clock.now();
    await pass(250);
    expect(b.cluster.stats.expiry!.refreshRoundTrips).toBe(sent + 1); // the batch went
    await Promise.all([a.engine.sweep(), b.engine.sweep()]);
  }
  // 30 s on, 20 s past the expiry A holds in memory: online on both, no change was made
  expect(a.engine.state('ann')).toMatchObject({ status: 'online', version: 1 });
  expect(b.engine.state('ann')).toMatchObject({ status: 'online', version: 1 });
  expect(a.committed).toHaveLength(1);
  expect(b.committed).toHaveLength(0);
  expect(b.cluster.stats.roundTripsPerRefresh).toBeLessThanOrEqual(1);

  await pass(10_000 + 1_000 - 250);
  await waitUntil(() => offline(a, 'ann') && offline(b, 'ann'), 'offline everywhere');
  const made = [...toOffline(a, 'ann'), ...toOffline(b, 'ann')];
  expect(made).toHaveLength(1);
  expect(made[0]!.at - last).toBeGreaterThanOrEqual(10_000);
  expect(made[0]!.at - last).toBeLessThanOrEqual(10_000 + 2_000);
});

describe('device connections', () => {
  function devicesOn(n: Node): DeviceConnections {
    return new DeviceConnections(engineDeviceReporter(n.engine), clock, {
      graceMs: GRACE_MS,
      lease: n.cluster.deviceLease,
    });
  }

  it("a killed node's connection goes offline one grace after its last renewal, and stays offline", async () => {
    const a = await node();
    const b = await node();
    const onA = devicesOn(a);
    const onB = devicesOn(b);
    await onA.hold('kim', 'tablet', 'online', null);
    await onB.hold('lee', 'tablet', 'online', null);
    await waitUntil(
      () => b.engine.state('kim')?.version === 1 && a.engine.state('lee')?.version === 1,
      'followers',
    );
    // Held an hour in memory, yet Redis keeps one grace ahead of the renewals.
    expect(a.engine.deviceExpiresAt('kim', 'tablet')).toBe(clock.now() + HOLD_MS);
    await pass(1_000);
    expect(a.cluster.stats.expiry!.renewals).toBe(1);
    const inRedis = await a.cluster.hot.expiryOf('kim', 'device/tablet');
    expect(inRedis).toBe(clock.now() + GRACE_MS);

    // Held for a minute: renewed every second all along, on both nodes.
    await pass(60_000);
    expect(a.cluster.stats.expiry!.renewals).toBe(61);
    expect(b.cluster.stats.expiry!.renewals).toBe(61);
    expect(b.engine.state('kim')).toMatchObject({ status: 'online', version: 1 });
    expect(a.engine.state('lee')).toMatchObject({ status: 'online', version: 1 });

    await kill(a);
    const renewedAt = clock.now(); // A's last renewal was at this time
    await pass(GRACE_MS + 1_000);
    await waitUntil(() => offline(b, 'kim'), "the others' sweep takes the killed node's device");
    const made = toOffline(b, 'kim');
    expect(made).toHaveLength(1);
    expect(made[0]!.at - renewedAt).toBeGreaterThanOrEqual(GRACE_MS);
    expect(made[0]!.at - renewedAt).toBeLessThanOrEqual(GRACE_MS + 2_000);
    // B's own connection is unaffected; nothing brings kim back.
    await pass(20_000);
    await b.engine.sweep();
    expect(b.engine.state('kim')).toMatchObject({ status: 'offline', version: 2 });
    expect(b.engine.state('lee')).toMatchObject({ status: 'online', version: 1 });
  });

  it('a close starts the grace; a reconnect on another node within it changes nothing', async () => {
    const a = await node();
    const b = await node();
    const onA = devicesOn(a);
    const onB = devicesOn(b);
    await onA.hold('max', 'phone', 'online', null);
    await waitUntil(() => b.engine.state('max')?.version === 1, 'follower');
    await onA.release('max', 'phone');
    await pass(GRACE_MS - 1_000);
    await onB.hold('max', 'phone', 'online', null); // the reconnect, on B
    // Sixteen seconds on: B renews it every second.
    await pass(16_000);
    await Promise.all([a.engine.sweep(), b.engine.sweep()]);
    expect(a.engine.state('max')).toMatchObject({ status: 'online', version: 1 });

    const closedAt = clock.now();
    await onB.release('max', 'phone');
    await pass(GRACE_MS + 1_000);
    await waitUntil(() => offline(a, 'max') && offline(b, 'max'), 'offline one grace after the close');
    const made = [...toOffline(a, 'max'), ...toOffline(b, 'max')];
    expect(made).toHaveLength(1);
    expect(made[0]!.at - closedAt).toBeLessThanOrEqual(GRACE_MS + 2_000);
  });
});

/** The node's /metrics text as the service registers it (cluster.metrics()), by sample name. */
async function scrape(n: Node): Promise<Map<string, number>> {
  const app = Fastify();
  try {
    const registry = registerMetrics(app, n.engine, { defaults: false, gauges: n.cluster.metrics() });
    const out = new Map<string, number>();
    for (const line of (await registry.metrics()).split('\n')) {
      const m = /^(\w+) (\S+)$/.exec(line);
      if (m !== null) out.set(m[1]!, Number(m[2]));
    }
    return out;
  } finally {
    await app.close();
  }
}

/** Every expiry Redis holds for the deployment, by `<user>/<source>`. */
async function expiriesInRedis(n: Node): Promise<Map<string, number>> {
  const flat = await n.cluster.hot.client.zrange(`${deployment.prefix}exp`, '0', '-1', 'WITHSCORES');
  const out = new Map<string, number>();
  for (let i = 0; i < flat.length; i += 2) {
    const [userId, source] = JSON.parse(flat[i]!) as [string, string];
    out.set(`${userId}/${source}`, Number(flat[i + 1]));
  }
  return out;
}

it('a burst of refreshes for 5,000 users across two nodes: every expiry renewed in a few round trips', async () => {
  const a = await node();
  const b = await node();
  const USERS = 5_000;
  const TTL = 10_000;
  const ids = Array.from({ length: USERS }, (_, i) => `burst${i}`);
  await Promise.all(
    ids.map((id, i) => (i % 2 === 0 ? a : b).engine.heartbeat(id, 'phone', 'online', null, TTL)),
  );
  await waitUntil(
    () => ids.every((id) => a.engine.state(id)?.version === 1 && b.engine.state(id)?.version === 1),
    'followers',
  );
  await waitUntil(async () => (await expiriesInRedis(a)).size === USERS, 'every observation in Redis');
  const writesBefore = a.committed.length + b.committed.length;

  // Four bursts 5 s apart, each user heartbeating through the node it did not report to before:
  // nothing changes, so every heartbeat is a refresh, sent in the next batch of its node.
  let last = 0;
  for (let round = 0; round < 4; round++) {
    await pass(5_000);
    const before = [a, b].map((n) => n.cluster.stats.expiry!.refreshRoundTrips);
    const acks = ids.map((id, i) =>
      ((i + round) % 2 === 0 ? b : a).engine.heartbeat(id, 'phone', 'online', null, TTL),
    );
    last = clock.now();
    await Promise.all(acks);
    await pass(250); // one batch period
    // One round trip per node for the whole burst.
    expect([a, b].map((n, i) => n.cluster.stats.expiry!.refreshRoundTrips - before[i]!)).toEqual([1, 1]);
    const inRedis = await expiriesInRedis(a);
    expect(inRedis.size).toBe(USERS);
    const stale = ids.filter((id) => inRedis.get(`${id}/device/phone`) !== last + TTL);
    expect(stale).toEqual([]);
  }
  expect(ids.filter((id) => offline(a, id) || offline(b, id))).toEqual([]);
  expect(a.committed.length + b.committed.length).toBe(writesBefore); // no change at all
  for (const n of [a, b]) {
    expect(n.cluster.stats.expiry!.refreshes).toBe(USERS * 2);
    expect(n.cluster.stats.roundTripsPerRefresh).toBeLessThan(0.01);
    // What /metrics shows an operator (and the bench): round trips per refresh heartbeat.
    const scraped = await scrape(n);
    expect(scraped.get('presence_cluster_refresh_heartbeats_total')).toBe(USERS * 2);
    expect(scraped.get('presence_cluster_expiry_round_trips_total')).toBe(4);
    expect(scraped.get('presence_cluster_observation_writes_total')).toBe(USERS / 2);
    expect(scraped.get('presence_cluster_expiries_ended_total')).toBe(0);
    expect(scraped.get('presence_cluster_hot_state_losses_total')).toBe(0);
  }

  // The refreshes stop: everyone goes offline one TTL after the last one, once, in the first
  // sweeps past the margin (a sweep takes all that is due, not one batch per tick).
  await pass(TTL + 1_000 - 250);
  expect(await expiriesInRedis(a)).toEqual(new Map());
  await waitUntil(() => ids.every((id) => offline(a, id) && offline(b, id)), 'offline everywhere');
  for (const id of ids) {
    const made = [...toOffline(a, id), ...toOffline(b, id)];
    expect(made).toHaveLength(1);
    expect(made[0]!.at - last).toBeGreaterThanOrEqual(TTL);
    expect(made[0]!.at - last).toBeLessThanOrEqual(TTL + 2_000);
  }
});
