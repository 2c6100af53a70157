/**
 * Redis restarted empty under two nodes (cluster/expiry.ts): a `redis-server` of this test's own
 * (test/helpers/redis-server.ts) is SIGKILLed while users are online and started again without
 * any state. While it is down a write is refused at once (the change log cannot take it), not
 * held; when it is back, each node finds the generation changed and seeds the live observations
 * again from memory, so nobody goes offline because Redis forgot them; devices that kept
 * heartbeating stay online, and those that stopped go offline one TTL after their last heartbeat
 * once, as before. The keepers' timers run on the test's fake clock (`pass`), as in
 * cluster-expiry.int.test.ts.
 */

import { join } from 'node:path';

import { PresenceEngine } from '../../../src/aggregator/engine';
import { Cluster } from '../../../src/cluster';
import type { PresenceChange } from '../../../src/core/changes';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import { Ladder } from '../../../src/core/presence';
import { migrate, openDb, type Db } from '../../../src/store/db';
import { engineDeviceReporter } from '../../../src/stream';
import { DeviceConnections } from '../../../src/stream/devices';
import { StreamHub } from '../../../src/stream/hub';
import { asyncPresenceOn, tmpDir } from '../../helpers/engine';
import { RedisServer } from '../../helpers/redis-server';
import { ManualTimers } from '../../helpers/stream-fakes';
import { waitUntil } from '../../helpers/wait';
import { newPrefix } from '../redis/helpers';

interface Node {
  engine: PresenceEngine;
  cluster: Cluster;
  db: Db;
  /** Every change this node committed (its own, not those it took from the log). */
  committed: PresenceChange[];
}

const GRACE_MS = 5_000;
const TTL = 10_000;
const STEP_MS = 50;
let tmp: ReturnType<typeof tmpDir>;
let redis: RedisServer;
let clock: FakeClock;
let timers: ManualTimers;
const nodes: Node[] = [];

beforeEach(async () => {
  tmp = tmpDir();
  redis = await RedisServer.start();
  clock = new FakeClock();
  timers = new ManualTimers(clock);
});

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.cluster.close();
    await n.engine.stop();
    n.db.close();
  }
  await redis.kill();
  tmp.cleanup();
});

async function node(prefix: string): Promise<Node> {
  const db = openDb(join(tmp.dir, 'shared.db'));
  migrate(db);
  const engine = new PresenceEngine({ clock, store: asyncPresenceOn(db), ladder: new Ladder() });
  const hub = new StreamHub({
    clock,
    reader: { getManyJson: (ids) => engine.getManyJson(ids), state: (id) => engine.state(id) },
    timers: new ManualTimers(clock),
  });
  const cluster = await Cluster.open({
    url: redis.url,
    prefix,
    clock,
    log: silentLog,
    blockMs: 200,
    deviceGraceMs: GRACE_MS,
    timers,
  });
  const committed: PresenceChange[] = [];
  const n: Node = { engine, cluster, db, committed };
  nodes.push(n);
  cluster.attach(engine);
  engine.changes.add({ committed: (changes) => void committed.push(...changes) });
  await cluster.prepare();
  await engine.load();
  cluster.start(hub);
  await cluster.ready;
  return n;
}

/** `ms` of the fake clock in steps, each step's keeper work finished (cluster-expiry's `pass`). */
async function pass(ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= STEP_MS) {
    timers.advance(Math.min(STEP_MS, left));
    await Promise.all(nodes.map((n) => n.cluster.deviceLease!.idle()));
  }
}

/** How many observations (expiries) Redis holds under `prefix`. */
const held = (n: Node, prefix: string): Promise<number> => n.cluster.hot.client.zcard(`${prefix}exp`);

it('Redis restarted empty: writes fail fast while it is down, then the nodes re-seed it and nobody goes falsely offline', async () => {
  const prefix = newPrefix();
  const a = await node(prefix);
  const b = await node(prefix);
  const [onA, onB] = [a, b].map(
    (n) =>
      new DeviceConnections(engineDeviceReporter(n.engine), clock, {
        graceMs: GRACE_MS,
        lease: n.cluster.deviceLease,
      }),
  );
  const ids = Array.from({ length: 40 }, (_, i) => `r${i}`);
  /** Every user heartbeats, through the node it did not use last time: refreshes only. */
  let turn = 0;
  const heartbeatAll = async (who: readonly string[]): Promise<void> => {
    turn += 1;
    await Promise.all(
      who.map((id, i) => ((i + turn) % 2 === 0 ? a : b).engine.heartbeat(id, 'phone', 'online', null, TTL)),
    );
  };
  await heartbeatAll(ids);
  await onA!.hold('kim', 'tablet', 'online', null);
  await onB!.hold('lee', 'tablet', 'online', null);
  const users = [...ids, 'kim', 'lee'];
  await waitUntil(
    () => users.every((id) => a.engine.state(id)?.version === 1 && b.engine.state(id)?.version === 1),
    'followers',
  );
  await pass(250);
  expect(await held(a, prefix)).toBe(users.length);
  await pass(4_000);
  await heartbeatAll(ids);
  await pass(1_000);
  const before = a.committed.length + b.committed.length;

  // Redis dies.
  await redis.kill();
  await waitUntil(() => !a.cluster.hot.connected && !b.cluster.hot.connected, 'both nodes see Redis gone');
  // A change is refused at once (nothing committed), not held until Redis returns.
  await expect(a.engine.heartbeat('newbie', 'phone', 'online', null, TTL)).rejects.toThrow();
  expect(a.engine.state('newbie')?.status ?? 'offline').toBe('offline');
  expect(a.cluster.fault()).not.toBeNull();
  // Refreshes that change nothing are still taken (kept for the next batch), the time goes on.
  await pass(2_000);
  await heartbeatAll(ids);
  const lastAll = clock.now();
  await pass(2_000);

  // Redis is back, empty: the nodes find the generation changed and seed it from memory.
  await redis.start();
  await waitUntil(() => a.cluster.hot.connected && b.cluster.hot.connected, 'both nodes reconnected');
  await pass(1_000);
  await waitUntil(async () => {
    await pass(STEP_MS);
    return a.cluster.stats.expiry!.losses === 1 && b.cluster.stats.expiry!.losses === 1;
  }, 'both nodes noticed the loss');
  expect(await held(a, prefix)).toBe(users.length);

  // Half the users keep heartbeating for half a minute, the others stopped during the outage.
  const keep = ids.filter((_, i) => i % 2 === 0);
  const stopped = ids.filter((_, i) => i % 2 === 1);
  for (let i = 0; i < 8; i++) {
    await heartbeatAll(keep);
    await pass(4_000);
  }
  const lastKept = clock.now() - 4_000;
  for (const id of [...keep, 'kim', 'lee']) {
    expect(a.engine.state(id)).toMatchObject({ status: 'online', version: 1 });
    expect(b.engine.state(id)).toMatchObject({ status: 'online', version: 1 });
  }
  // The stopped ones went offline once each, not before one TTL after the rebuild.
  const made = (id: string): PresenceChange[] =>
    [...a.committed, ...b.committed].filter((c) => c.userId === id && c.current.status === 'offline');
  await waitUntil(() => stopped.every((id) => made(id).length === 1), 'the stopped ones offline');
  for (const id of stopped) {
    expect(made(id)).toHaveLength(1);
    expect(made(id)[0]!.at - lastAll).toBeGreaterThanOrEqual(TTL);
  }
  // No other change: nobody went offline because Redis forgot them.
  expect(a.committed.length + b.committed.length - before).toBe(stopped.length);
  for (const id of keep) expect(made(id)).toEqual([]);

  // And the ones that keep heartbeating still go offline one TTL after they stop.
  await pass(TTL + 1_000);
  await waitUntil(() => keep.every((id) => made(id).length === 1), 'the kept ones offline at last');
  for (const id of keep) {
    expect(made(id)[0]!.at - lastKept).toBeGreaterThanOrEqual(TTL);
    expect(made(id)[0]!.at - lastKept).toBeLessThanOrEqual(TTL + 2_000);
  }
});
