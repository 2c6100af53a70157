/**
 * Two nodes on one PostgreSQL database whose memories disagree about one user: node A commits a
 * change to `u` that node B has not followed (no change log here, so B never hears of it), then
 * B commits a batch with a change to `u` and changes to other users. The store skips `u`'s ops
 * (stale) and commits the others' on the first try; B reads `u` back, makes its change again on
 * top, and answers every waiter once that is durable (aggregator/group-commit.ts). Versions in
 * PostgreSQL stay consecutive, B's memory ends equal to the store's rows, and webhook events
 * exist exactly for the committed changes.
 */

import type { PresenceEngine } from '../../../src/aggregator/engine';
import { PresenceEngine as Engine } from '../../../src/aggregator/engine';
import type { PresenceChange } from '../../../src/core/changes';
import { FakeClock } from '../../../src/core/clock';
import {
  writeOpUser,
  type AsyncPresenceStore,
  type EndpointRecord,
  type WriteOp,
} from '../../../src/core/ports';
import { Ladder } from '../../../src/core/presence';
import { StoreUnavailableError } from '../../../src/store/faults';
import { openPgStores, type PgStores } from '../../../src/store/pg';
import type { StagedDelivery } from '../../../src/webhooks/dispatcher';
import { Outbox, outboxSink } from '../../../src/webhooks/outbox';
import { createTestDatabase, type TestDatabase } from '../../helpers/pg-database';

const ENDPOINT: EndpointRecord = {
  id: 'ep_1',
  url: 'https://example.test/hook',
  events: null,
  userIds: null,
  coalesceMs: 0,
  secret: 'whsec_test',
  previousSecret: null,
  previousExpiresAt: null,
  enabled: true,
  disabledReason: null,
  disabledAt: null,
  failingSince: null,
  createdAt: 1,
  updatedAt: 1,
};

interface Node {
  engine: PresenceEngine;
  stores: PgStores;
  /** Every presence write of this node: its ops and the users the store found stale. */
  writes: { ops: readonly WriteOp[]; stale: readonly string[] }[];
  /** Changes the sinks were told are committed. */
  committed: PresenceChange[];
  /** Deliveries the outbox handed over after their commit. */
  delivered: StagedDelivery[];
}

let database: TestDatabase;
let clock: FakeClock;
const nodes: Node[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(async () => {
  await database.drop();
});
beforeEach(async () => {
  clock = new FakeClock(1_800_000_000_000);
  const s = await openPgStores({ connectionString: database.url, max: 2 });
  try {
    const { rows } = await s.pool.query<{ tablename: string }>(
      "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'schema_migrations'",
    );
    await s.pool.query(`TRUNCATE ${rows.map((r) => r.tablename).join(', ')} RESTART IDENTITY CASCADE`);
    await s.webhooks.saveEndpoint({
      ...ENDPOINT,
      sealedSecret: 'v1.k.iv.tag.secret',
      sealedPreviousSecret: null,
    });
  } finally {
    await s.close();
  }
});
afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.engine.stop();
    await n.stores.close();
  }
});

/**
 * A node on the shared database with the webhook outbox attached, loaded from it. `before`
 * runs ahead of each of its presence writes (another node's commit slipped in just then).
 * `held`: expiries held elsewhere, as in several-node mode, where the same report again is a
 * refresh that the next commit checks (aggregator/ingest.ts); the hold here only listens.
 */
async function node(before?: () => Promise<void>, held = false): Promise<Node> {
  const stores = await openPgStores({ connectionString: database.url, max: 4 });
  const writes: Node['writes'] = [];
  const real = stores.presence;
  const presence: AsyncPresenceStore = {
    ...bind(real),
    write: async (ops, stage, expected) => {
      await before?.();
      const stale = await real.write(ops, stage, expected);
      writes.push({ ops, stale: [...(stale ?? [])] });
      return stale;
    },
  };
  const engine = new Engine({ clock, store: presence, ladder: new Ladder(), snapshotIntervalMs: 0 });
  const outbox = new Outbox(stores.webhooks, clock);
  outbox.setEndpoints([ENDPOINT]);
  const n: Node = { engine, stores, writes, committed: [], delivered: [] };
  engine.changes.add(outboxSink(outbox, (rows) => n.delivered.push(...rows)));
  engine.changes.add({ committed: (changes) => n.committed.push(...changes) });
  if (held) engine.holdExpiries({ observed: () => undefined });
  await engine.load();
  nodes.push(n);
  return n;
}

/** The store's methods bound to it, so that one can be replaced. */
function bind(s: PgStores['presence']): AsyncPresenceStore {
  return {
    write: (...a) => s.write(...a),
    loadAll: () => s.loadAll(),
    loadUsers: (ids) => s.loadUsers(ids),
    history: (id, q) => s.history(id, q),
    getUser: (id) => s.getUser(id),
    accountsOf: (id) => s.accountsOf(id),
    linkAccount: (id, a, now) => s.linkAccount(id, a, now),
    unlinkAccount: (id, a) => s.unlinkAccount(id, a),
    deleteUser: (id, stage) => s.deleteUser(id, stage),
    probe: (now) => s.probe(now),
    close: () => s.close(),
  };
}

const OTHERS = ['o1', 'o2', 'o3', 'o4', 'o5'];

async function rows<T>(n: Node, sql: string): Promise<T[]> {
  return (await n.stores.pool.query<T & object>(sql)).rows;
}

/** What PostgreSQL holds, as a freshly loaded node answers it. */
async function fromStore(): Promise<PresenceEngine> {
  const stores = await openPgStores({ connectionString: database.url, max: 2 });
  const engine = new Engine({ clock, store: stores.presence, ladder: new Ladder(), snapshotIntervalMs: 0 });
  await engine.load();
  nodes.push({ engine, stores, writes: [], committed: [], delivered: [] });
  return engine;
}

/** Every user's versions in `transitions`, oldest first. */
async function versions(n: Node): Promise<Record<string, number[]>> {
  const found = await rows<{ user_id: string; version: string }>(
    n,
    'SELECT user_id, version FROM transitions ORDER BY user_id, version',
  );
  const by: Record<string, number[]> = {};
  for (const r of found) (by[r.user_id] ??= []).push(Number(r.version));
  return by;
}

/** Webhook events as (user, version) pairs, sorted; and the same of transitions. */
async function eventsAndTransitions(n: Node): Promise<{ events: string[]; transitions: string[] }> {
  const events = await rows<{ k: string }>(
    n,
    "SELECT user_id || ':' || version AS k FROM webhook_events WHERE type = 'presence.changed' ORDER BY 1",
  );
  const transitions = await rows<{ k: string }>(
    n,
    "SELECT user_id || ':' || version AS k FROM transitions ORDER BY 1",
  );
  return { events: events.map((r) => r.k), transitions: transitions.map((r) => r.k) };
}

async function expectMemoryEqualsStore(b: Node, users: readonly string[]): Promise<void> {
  const stored = await fromStore();
  for (const id of users) {
    expect(b.engine.state(id)).toEqual(stored.state(id));
    expect(JSON.parse(b.engine.getJson(id)!)).toEqual(JSON.parse(stored.getJson(id)!));
  }
  const agg = await rows<{ user_id: string; version: string }>(
    b,
    'SELECT user_id, version FROM aggregates ORDER BY user_id',
  );
  for (const r of agg) expect(b.engine.state(r.user_id)?.version).toBe(Number(r.version));
}

const override = (status: 'busy' | 'away') => ({
  status,
  activity: null,
  customStatus: null,
  expiresAt: clock.now() + 3_600_000,
});

it("a change that races another node's on one user is made again on top; the batch's other users commit at once", async () => {
  const a = await node();
  await a.engine.heartbeat('u', 'phone', 'online', null, 600_000); // u v1 (A)
  const b = await node(); // B loads u at v1
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 1 });

  clock.advance(1_000);
  await a.engine.setOverride('u', override('away')); // u v2 (A); B does not hear of it
  expect(a.engine.state('u')).toMatchObject({ status: 'away', version: 2 });
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 1 });

  clock.advance(1_000);
  // One batch on B: u's laptop report (B's reduce: still online, no new version, but made on
  // v1) and its own override (B: version 2, colliding with A's), and five other users.
  // When each write is answered: after how many of B's presence writes.
  const answeredAt = new Map<string, number>();
  const answer = (id: string, ack: Promise<void>) => ack.then(() => void answeredAt.set(id, b.writes.length));
  const acks = [
    answer('u', b.engine.heartbeat('u', 'laptop', 'online', null, 600_000)),
    answer('u', b.engine.setOverride('u', override('busy'))),
    ...OTHERS.map((id) => answer(id, b.engine.heartbeat(id, 'phone', 'online', null, 600_000))),
  ];
  await expect(Promise.all(acks)).resolves.toBeDefined();
  // The other users' writes are answered with the first commit, u's with the one after.
  for (const id of OTHERS) expect(answeredAt.get(id)).toBe(1);
  expect(answeredAt.get('u')).toBe(2);

  // The first write: u refused as stale, the others durable; the second: u's change alone.
  expect(b.writes.map((w) => w.stale)).toEqual([['u'], []]);
  const aggregatesOf = (ops: readonly WriteOp[]) =>
    ops.flatMap((op) => (op.op === 'aggregate' ? [`${op.userId}:${op.aggregate.version}`] : []));
  expect(aggregatesOf(b.writes[0]!.ops).filter((k) => !k.startsWith('u:'))).toEqual(
    OTHERS.map((id) => `${id}:1`),
  );
  expect(aggregatesOf(b.writes[1]!.ops)).toEqual(['u:3']);
  expect(new Set(b.writes[1]!.ops.map(writeOpUser))).toEqual(new Set(['u']));

  // B's override wins (it committed last), on top of A's: version 3, both devices kept.
  expect(b.engine.state('u')).toMatchObject({ status: 'busy', version: 3 });
  expect(Object.keys(JSON.parse(b.engine.getJson('u')!).platforms.device.devices).sort()).toEqual([
    'laptop',
    'phone',
  ]);
  expect(await versions(b)).toEqual({
    u: [1, 2, 3],
    ...Object.fromEntries(OTHERS.map((id) => [id, [1]])),
  });
  await expectMemoryEqualsStore(b, ['u', ...OTHERS]);

  // Events exactly for the committed changes: B's refused version 2 of u has none.
  const { events, transitions } = await eventsAndTransitions(b);
  expect(events).toEqual(transitions);
  expect(b.committed.map((c) => `${c.userId}:${c.version}`).sort()).toEqual(
    [...OTHERS.map((id) => `${id}:1`), 'u:3'].sort(),
  );
  expect(b.delivered).toHaveLength(OTHERS.length + 1);
  expect(b.engine.stats.changesCommitted).toBe(OTHERS.length + 1);
  // No fault noted: the store is fine.
  await expect(b.engine.storeFault()).resolves.toBeNull();
});

it("a report that changes nothing on the stale node is checked too, and reduced again with the other node's change", async () => {
  const a = await node();
  await a.engine.heartbeat('u', 'phone', 'online', null, 600_000); // v1
  const b = await node();
  clock.advance(1_000);
  await a.engine.heartbeat('u', 'phone', 'offline', null, 600_000); // v2 (A): offline
  expect(a.engine.state('u')).toMatchObject({ status: 'offline', version: 2 });

  clock.advance(1_000);
  // On B (phone still online there) an away laptop changes nothing; on the stored state it does.
  const acks = [
    b.engine.heartbeat('u', 'laptop', 'away', null, 600_000),
    ...OTHERS.map((id) => b.engine.heartbeat(id, 'phone', 'busy', null, 600_000)),
  ];
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 1 });
  await Promise.all(acks);
  expect(b.writes.map((w) => w.stale)).toEqual([['u'], []]);
  expect(b.engine.state('u')).toMatchObject({ status: 'away', version: 3 });
  expect((await versions(b)).u).toEqual([1, 2, 3]);
  await expectMemoryEqualsStore(b, ['u', ...OTHERS]);
  const { events, transitions } = await eventsAndTransitions(b);
  expect(events).toEqual(transitions);
});

it('a refresh on a node whose memory is stale (the same state as it holds) is checked, writes nothing, and makes the change again on the stored state', async () => {
  const a = await node();
  await a.engine.heartbeat('u', 'phone', 'online', null, 600_000); // v1
  const b = await node(undefined, true);
  clock.advance(1_000);
  await a.engine.heartbeat('u', 'phone', 'busy', null, 600_000); // v2 (A): busy

  clock.advance(1_000);
  // On B (phone still online there, at v1) the phone's online again is a refresh, twice over
  // (one check op for the two); on the stored state it is a change.
  const acks = [
    b.engine.heartbeat('u', 'phone', 'online', null, 600_000),
    b.engine.heartbeat('u', 'phone', 'online', null, 600_000),
    ...OTHERS.map((id) => b.engine.heartbeat(id, 'phone', 'busy', null, 600_000)),
  ];
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 1 });
  await Promise.all(acks);
  // The first commit carried u as one check op and nothing else of u; the store found u stale.
  expect(b.writes[0]!.ops.filter((op) => writeOpUser(op) === 'u')).toEqual([{ op: 'check', userId: 'u' }]);
  expect(b.writes.map((w) => w.stale)).toEqual([['u'], []]);
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 3 });
  expect((await versions(b)).u).toEqual([1, 2, 3]);
  await expectMemoryEqualsStore(b, ['u', ...OTHERS]);
  const { events, transitions } = await eventsAndTransitions(b);
  expect(events).toEqual(transitions);
  expect(b.committed.filter((c) => c.userId === 'u').map((c) => c.version)).toEqual([3]);
});

it('a refresh on a node that is up to date is acknowledged after a check that takes no row lock and writes nothing', async () => {
  const b = await node(undefined, true);
  await b.engine.heartbeat('u', 'phone', 'online', null, 600_000); // v1
  const before = await rows<{ observed_at: string }>(
    b,
    "SELECT observed_at FROM observations WHERE user_id = 'u'",
  );
  // Another transaction holds u's aggregate row locked all along: a check that locked it would
  // wait for it (and the refresh's acknowledgement with it) until the end of the test.
  const locker = await b.stores.pool.connect();
  try {
    await locker.query('BEGIN');
    await locker.query("SELECT 1 FROM aggregates WHERE user_id = 'u' FOR UPDATE");
    clock.advance(1_000);
    await b.engine.heartbeat('u', 'phone', 'online', null, 600_000);
  } finally {
    await locker.query('ROLLBACK');
    locker.release();
  }
  expect(b.writes.at(-1)).toEqual({ ops: [{ op: 'check', userId: 'u' }], stale: [] });
  expect(b.engine.state('u')).toMatchObject({ status: 'online', version: 1 });
  // Nothing of u was written: its times reach the store through the refresh persister.
  expect(await rows(b, "SELECT observed_at FROM observations WHERE user_id = 'u'")).toEqual(before);
  expect((await versions(b)).u).toEqual([1]);
});

it('changes queued behind the stale commit are made again with it, at one version', async () => {
  const a = await node();
  await a.engine.heartbeat('u', 'phone', 'online', null, 600_000); // v1
  const b = await node();
  clock.advance(1_000);
  await a.engine.setOverride('u', override('away')); // v2 (A)

  clock.advance(1_000);
  const first = b.engine.heartbeat('o1', 'phone', 'online', null, 600_000);
  const racing = b.engine.heartbeat('u', 'tablet', 'busy', null, 600_000);
  void b.engine.flush().catch(() => undefined); // this commit is in flight now
  // Queued meanwhile, on top of the stale state: B's version 2 and 3 of u (never committed).
  const behind = [
    b.engine.setOverride('u', override('busy')),
    b.engine.heartbeat('o2', 'phone', 'away', null, 600_000),
  ];
  await Promise.all([first, racing, ...behind]);
  // The commit in flight found u stale; the override queued behind it was not in it.
  expect(b.writes[0]!.stale).toEqual(['u']);
  expect(b.writes[0]!.ops.some((op) => op.op === 'override')).toBe(false);
  expect(b.writes.at(-1)!.stale).toEqual([]);
  expect(b.engine.state('u')).toMatchObject({ status: 'busy', version: 3 });
  expect((await versions(b)).u).toEqual([1, 2, 3]);
  await expectMemoryEqualsStore(b, ['u', 'o1', 'o2']);
  const { events, transitions } = await eventsAndTransitions(b);
  expect(events).toEqual(transitions);
  expect(b.committed.filter((c) => c.userId === 'u').map((c) => c.version)).toEqual([3]);
});

it("a user stale at every try is refused (503 version_conflict) after a bound; the others' writes are acknowledged", async () => {
  const a = await node();
  await a.engine.heartbeat('u', 'phone', 'online', null, 600_000); // v1
  let racing = false;
  let flip = false;
  // Before each of B's writes, A changes u once more: B's read of u is stale by its next write.
  const b = await node(async () => {
    if (!racing) return;
    flip = !flip;
    await a.engine.heartbeat('u', 'phone', flip ? 'away' : 'online', null, 600_000);
  });
  racing = true;
  clock.advance(1_000);
  const others = OTHERS.map((id) => b.engine.heartbeat(id, 'phone', 'online', null, 600_000));
  const mine = b.engine.setOverride('u', override('busy'));
  // The other users' writes are acknowledged (durable at the first write); u's alone is refused.
  await expect(Promise.all(others)).resolves.toBeDefined();
  const refused = await mine.catch((e: unknown) => e);
  racing = false;
  expect(refused).toBeInstanceOf(StoreUnavailableError);
  expect((refused as StoreUnavailableError).status).toBe(503);
  expect((refused as StoreUnavailableError).details).toEqual([
    { code: 'version_conflict', message: "the change kept meeting other nodes' changes to the same user" },
  ]);
  expect(b.writes.map((w) => w.stale)).toEqual([['u'], ['u'], ['u'], ['u'], ['u']]);
  // The other users' changes were durable at the first write.
  const stored = await versions(b);
  for (const id of OTHERS) expect(stored[id]).toEqual([1]);
  // u: A's versions only, consecutive; B's memory is the stored state, its override dropped.
  expect(stored.u).toEqual([1, 2, 3, 4, 5, 6]);
  expect(b.engine.state('u')?.version).toBe(6);
  await expectMemoryEqualsStore(b, ['u', ...OTHERS]);
  const { events, transitions } = await eventsAndTransitions(b);
  expect(events).toEqual(transitions);
  await expect(b.engine.storeFault()).resolves.toBeNull();

  // B works on u again once the race is over.
  await b.engine.setOverride('u', override('busy'));
  expect(b.engine.state('u')).toMatchObject({ status: 'busy', version: 7 });
});
