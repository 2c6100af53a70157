/**
 * The shared change log in process: engines of several nodes over one database file and one
 * Redis prefix (the real Redis at 127.0.0.1:6379, a random prefix per test, deleted after). A
 * change on one node reaches the others' memory through their followers; every node's stream hub
 * is fed from the log, so positions mean the same everywhere and a subscriber resumes on another
 * node; while Redis is down a write is refused before anything is committed.
 */

import { join } from 'node:path';

import { PresenceEngine } from '../../../src/aggregator/engine';
import { Cluster } from '../../../src/cluster';
import { ConfigError, parseEnv } from '../../../src/config/env';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import { Ladder } from '../../../src/core/presence';
import { migrate, openDb, type Db } from '../../../src/store/db';
import { StoreUnavailableError } from '../../../src/store/faults';
import { StreamHub } from '../../../src/stream/hub';
import { asyncPresenceOn, tmpDir } from '../../helpers/engine';
import { FakeTransport, ManualTimers } from '../../helpers/stream-fakes';
import { waitUntil } from '../../helpers/wait';
import { CuttableProxy, Deployment, REDIS_URL } from '../redis/helpers';

interface Node {
  engine: PresenceEngine;
  hub: StreamHub;
  cluster: Cluster;
  db: Db;
}

let tmp: ReturnType<typeof tmpDir>;
let deployment: Deployment;
let clock: FakeClock;
const nodes: Node[] = [];
const proxies: CuttableProxy[] = [];

beforeEach(() => {
  tmp = tmpDir();
  deployment = new Deployment();
  clock = new FakeClock();
});

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.cluster.close();
    await n.engine.stop();
    n.db.close();
  }
  for (const p of proxies.splice(0)) await p.cut();
  await deployment.close();
  tmp.cleanup();
});

/** A node as main.ts composes one: the cluster hooked in, the log's head read before the load. */
async function node(url = REDIS_URL): Promise<Node> {
  const db = openDb(join(tmp.dir, 'shared.db'));
  migrate(db);
  const engine = new PresenceEngine({ clock, store: asyncPresenceOn(db), ladder: new Ladder() });
  const hub = new StreamHub({
    clock,
    reader: { getManyJson: (ids) => engine.getManyJson(ids), state: (id) => engine.state(id) },
    timers: new ManualTimers(clock),
  });
  const cluster = await Cluster.open({ url, prefix: deployment.prefix, clock, log: silentLog, blockMs: 200 });
  cluster.attach(engine);
  await cluster.prepare();
  await engine.load();
  cluster.start(hub);
  const n = { engine, hub, cluster, db };
  nodes.push(n);
  return n;
}

/** The follower has read the log up to `offset`. */
const reached = (n: Node, offset: number): boolean =>
  Number(n.cluster.followed?.at.id.split('-')[0] ?? -1) >= offset;

it("a change on one node is in the others' memory once their followers read it", async () => {
  const a = await node();
  const b = await node();
  const c = await node();

  await a.engine.heartbeat('ann', 'phone', 'online', null, 60_000);
  expect(a.engine.state('ann')).toMatchObject({ status: 'online', version: 1 });
  await waitUntil(() => reached(b, 1) && reached(c, 1), 'the followers');
  // the same answer on every node: the whole presence object, devices included
  for (const other of [b, c]) {
    expect(other.engine.state('ann')).toMatchObject({ status: 'online', version: 1 });
    expect(JSON.parse(other.engine.getJson('ann')!)).toEqual(JSON.parse(a.engine.getJson('ann')!));
  }
  expect(b.cluster.stats.applied).toBe(1);
  expect(a.cluster.stats.applied).toBe(0); // its own entry is skipped

  // B's next change builds on A's (it holds the observation A took): version 2, both devices.
  // The laptop's report alone changes nothing (online still wins), so it makes no entry.
  await b.engine.heartbeat('ann', 'laptop', 'busy', null, 60_000);
  expect(b.engine.state('ann')).toMatchObject({ status: 'online', version: 1 });
  await b.engine.setOverride('ann', {
    status: 'busy',
    activity: null,
    customStatus: null,
    expiresAt: clock.now() + 60_000,
  });
  await waitUntil(() => reached(a, 2) && a.engine.state('ann')?.version === 2, 'A takes the override');
  expect(JSON.parse(a.engine.getJson('ann')!)).toEqual(JSON.parse(b.engine.getJson('ann')!));
  expect(Object.keys(JSON.parse(a.engine.getJson('ann')!).platforms.device.devices).sort()).toEqual([
    'laptop',
    'phone',
  ]);
});

it('every hub is fed from the log: the same positions everywhere, and a resume on another node', async () => {
  const a = await node();
  const b = await node();
  await a.engine.heartbeat('bo', 'phone', 'online', null, 60_000);
  await waitUntil(() => reached(b, 1), 'B reads the first change');

  const onB = new FakeTransport();
  const sub = b.hub.open(onB);
  b.hub.subscribe(sub, ['bo']);
  await waitUntil(() => onB.messages().length >= 1, 'the snapshot');
  const snapshot = onB.messages()[0];
  expect(snapshot).toMatchObject({ type: 'snapshot', position: `${a.hub.log.epoch}:1` });
  expect(b.hub.log.epoch).toBe(a.hub.log.epoch);

  await a.engine.heartbeat('bo', 'phone', 'away', null, 60_000); // version 2, made on A
  await waitUntil(() => onB.messages().length >= 2, 'the change on B');
  const change = onB.messages()[1];
  expect(change).toMatchObject({
    type: 'presence',
    user_id: 'bo',
    version: 2,
    position: `${a.hub.log.epoch}:2`,
  });
  expect(change.current.status).toBe('away');

  // the client moves to A and resumes from the snapshot's position: the change is replayed
  await waitUntil(() => reached(a, 2), 'A reads its own change');
  const onA = new FakeTransport();
  a.hub.resume(a.hub.open(onA), snapshot.position, ['bo']);
  await waitUntil(() => onA.messages().length >= 2, 'the replay');
  expect(onA.messages()).toEqual([
    expect.objectContaining({ type: 'presence', version: 2, position: change.position }),
    { type: 'resumed', recovered: true, position: change.position },
  ]);
});

it('a deletion on one node forgets the user on the others', async () => {
  const a = await node();
  const b = await node();
  await a.engine.heartbeat('cy', 'phone', 'online', null, 60_000);
  await waitUntil(() => b.engine.hasUser('cy'), 'B knows cy');
  expect(await a.engine.deleteUser('cy')).toBe(true);
  await waitUntil(() => !b.engine.hasUser('cy'), 'B forgets cy');
  // made again later: version 1 again, everywhere
  await a.engine.heartbeat('cy', 'phone', 'busy', null, 60_000);
  await waitUntil(() => b.engine.state('cy')?.status === 'busy', 'B knows cy again');
  expect(b.engine.state('cy')?.version).toBe(1);
});

it('while Redis is down a write is refused (503) before anything is committed; back, it works again', async () => {
  const proxy = new CuttableProxy();
  proxies.push(proxy);
  await proxy.start();
  const a = await node(proxy.url);
  const b = await node();

  await proxy.cut();
  await waitUntil(() => !a.cluster.hot.connected, 'A sees Redis gone');
  expect(a.cluster.fault()).toMatchObject({ reason: 'change_log_unavailable' });
  const refused = await a.engine.heartbeat('di', 'phone', 'online', null, 60_000).catch((e: unknown) => e);
  expect(refused).toBeInstanceOf(StoreUnavailableError);
  expect((refused as StoreUnavailableError).status).toBe(503);
  expect((refused as StoreUnavailableError).details).toEqual([
    { code: 'change_log_unavailable', message: 'the shared change log (Redis) is unavailable' },
  ]);
  // nothing committed, nothing in memory
  expect(a.db.prepare('SELECT count(*) AS n FROM users').get()).toEqual({ n: 0 });
  expect(a.engine.hasUser('di')).toBe(false);

  await proxy.start();
  await waitUntil(() => a.cluster.hot.connected && a.cluster.fault() === null, 'A sees Redis back');
  await a.engine.heartbeat('di', 'phone', 'online', null, 60_000);
  await waitUntil(() => b.engine.state('di')?.status === 'online', 'B gets the change');
  expect(b.engine.state('di')?.version).toBe(1);
});

it('while Redis is down a heartbeat that changes nothing is taken even when a refused change shares its commit', async () => {
  const proxy = new CuttableProxy();
  proxies.push(proxy);
  await proxy.start();
  const a = await node(proxy.url);
  await a.engine.heartbeat('eve', 'phone', 'online', null, 60_000);

  await proxy.cut();
  await waitUntil(() => !a.cluster.hot.connected, 'A sees Redis gone');
  clock.advance(1_000);
  // One turn of the event loop, so one group commit: eve's refresh and fay's change.
  const refresh = a.engine.heartbeat('eve', 'phone', 'online', null, 60_000);
  const change = a.engine.heartbeat('fay', 'phone', 'busy', null, 60_000).catch((e: unknown) => e);
  await refresh; // taken: it needs no change log (before, the change's refusal took it along)
  const refused = await change;
  expect(refused).toBeInstanceOf(StoreUnavailableError);
  expect((refused as StoreUnavailableError).details[0]).toMatchObject({ code: 'change_log_unavailable' });
  expect(a.engine.hasUser('fay')).toBe(false);
  expect(a.engine.state('eve')?.version).toBe(1);

  await proxy.start();
  await waitUntil(() => a.cluster.hot.connected && a.cluster.fault() === null, 'A sees Redis back');
  await a.engine.heartbeat('fay', 'phone', 'busy', null, 60_000);
  expect(a.engine.state('fay')?.version).toBe(1);
});

it('several nodes on SQLite are refused at configuration (each node would keep its own durable state)', () => {
  let failed: unknown;
  try {
    parseEnv({
      PRESENCE_DB: ':memory:',
      PRESENCE_REDIS_URL: REDIS_URL,
      PRESENCE_REDIS_PREFIX: deployment.prefix,
    });
  } catch (error) {
    failed = error;
  }
  expect(failed).toBeInstanceOf(ConfigError);
  expect((failed as ConfigError).problems).toEqual([
    expect.stringMatching(
      /^PRESENCE_REDIS_URL: several nodes need a shared database too: set PRESENCE_DATABASE_URL/,
    ),
  ]);
});
