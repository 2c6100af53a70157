import { ChangeSinks } from '../../../src/aggregator/change-pipeline';
import { GroupCommit } from '../../../src/aggregator/group-commit';
import { UserState } from '../../../src/aggregator/user-state';
import type { EngineStats } from '../../../src/aggregator/wheel';
import type { PresenceChange } from '../../../src/core/changes';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import type { WriteOp } from '../../../src/core/ports';
import { MemoryStore, sqliteError } from '../../helpers/memory-store';

const userOp = (userId: string): WriteOp => ({
  op: 'user',
  user: { userId, displayName: null, timezone: null, createdAt: 0, updatedAt: 0 },
});

const change = (userId: string, version: number): PresenceChange => ({
  userId,
  version,
  at: 0,
  previous: { status: 'offline', activity: null, customStatus: null },
  current: {
    status: 'online',
    activity: null,
    customStatus: null,
    source: 'app',
    winner: null,
    override: null,
  },
  changed: ['status'],
  cause: 'slack',
  explain: '',
  presence: null,
});

function setup(options: { maxBatch?: number; commitRetryMs?: number } = {}) {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const sinks = new ChangeSinks(silentLog);
  const stats: EngineStats = { sweeps: 0, changesCommitted: 0 };
  const restored: string[] = [];
  const commit = new GroupCommit({
    store,
    clock,
    log: silentLog,
    sinks,
    stats,
    maxBatch: options.maxBatch ?? 2048,
    commitRetryMs: options.commitRetryMs ?? 5000,
    probeIntervalMs: 1000,
    restore: (u) => {
      restored.push(u.userId);
      u.rollBack();
    },
  });
  return { store, clock, sinks, stats, restored, commit };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('GroupCommit with users a store finds stale (several nodes)', () => {
  it("answers each user's writes apart; a stale user's, with no way to make them again, are refused", async () => {
    const t = setup();
    const staged: string[][] = [];
    const told: string[][] = [];
    t.sinks.add({
      stage: (_tx, c) => void staged.push(c.map((x) => x.userId)),
      committed: (c) => told.push(c.map((x) => x.userId)),
    });
    const a = new UserState('a');
    const b = new UserState('b');
    for (const u of [a, b]) {
      t.commit.touch(u);
      u.version = 1;
      t.commit.enqueue(userOp(u.userId));
      t.commit.change(change(u.userId, 1));
    }
    const ackA = t.commit.acked('a');
    const ackB = t.commit.acked('b');
    expect(t.commit.acked('a')).toBe(ackA); // one promise per user and commit
    expect(ackA).not.toBe(ackB);
    t.store.staleNext.push(new Set(['a']));
    await expect(ackB).resolves.toBeUndefined();
    await expect(ackA).rejects.toMatchObject({
      status: 503,
      details: [{ code: 'version_conflict' }],
    });
    expect(staged).toEqual([['b']]);
    expect(told).toEqual([['b']]);
    expect(t.stats.changesCommitted).toBe(1);
    expect(t.restored).toEqual(['a']);
    expect(a.version).toBe(0);
    expect(b.version).toBe(1);
    expect(a.undo).toBeNull();
    expect(b.undo).toBeNull();
    // Not a store fault.
    await expect(t.commit.storeFault()).resolves.toBeNull();
  });
});

describe('GroupCommit', () => {
  it('commits everything queued in one turn in one transaction, then settles the acks', async () => {
    const t = setup();
    const committed: number[] = [];
    t.sinks.add({ committed: (c) => committed.push(c.length) });
    t.commit.enqueue(userOp('a'));
    t.commit.change(change('a', 1));
    const first = t.commit.acked();
    t.commit.enqueue(userOp('b'));
    t.commit.change(change('b', 1));
    const second = t.commit.acked();
    expect(first).toBe(second); // one promise per commit
    expect(t.store.transactions).toHaveLength(0);
    await first;
    expect(t.store.transactions).toEqual([{ ops: [userOp('a'), userOp('b')], staged: false }]);
    expect(committed).toEqual([2]);
    expect(t.stats.changesCommitted).toBe(2);
  });

  it('runs the stage phase inside the write only when a sink stages and a change is queued', async () => {
    const t = setup();
    t.sinks.add({ stage: () => undefined });
    t.commit.enqueue(userOp('a'));
    await t.commit.acked();
    t.commit.enqueue(userOp('b'));
    t.commit.change(change('b', 1));
    await t.commit.acked();
    expect(t.store.transactions.map((x) => x.staged)).toEqual([false, true]);
  });

  it('commits a full queue at the end of the write that filled it', () => {
    const t = setup({ maxBatch: 2 });
    t.commit.enqueue(userOp('a'));
    void t.commit.acked();
    expect(t.store.transactions).toHaveLength(0);
    t.commit.enqueue(userOp('b'));
    void t.commit.acked();
    expect(t.store.transactions).toHaveLength(1);
  });

  it('retries a lock on timers, showing the committed state meanwhile, and acks once durable', async () => {
    const t = setup();
    t.store.failNext.push(sqliteError('SQLITE_BUSY'), sqliteError('SQLITE_BUSY'));
    const u = new UserState('a');
    t.commit.touch(u);
    u.version = 1;
    t.commit.enqueue(userOp('a'));
    const ack = t.commit.acked();
    await tick();
    expect(t.commit.failing).toBe(true);
    expect(t.commit.retrying).toBe(true);
    expect(u.undo?.version).toBe(0);
    expect(await t.commit.storeFault()).toMatchObject({ reason: 'database_locked' });
    await ack;
    expect(t.commit.failing).toBe(false);
    expect(u.undo).toBeNull();
    expect(await t.commit.storeFault()).toBeNull();
    expect(t.store.transactions).toHaveLength(1);
    expect(t.restored).toEqual([]);
  });

  it('rolls back and refuses at once what the store refuses otherwise; the next write commits', async () => {
    const t = setup();
    t.store.failNext.push(sqliteError('SQLITE_FULL'));
    const u = new UserState('a');
    t.commit.touch(u);
    u.version = 1;
    t.commit.enqueue(userOp('a'));
    t.commit.change(change('a', 1));
    await expect(t.commit.acked()).rejects.toMatchObject({
      code: 'unavailable',
      details: [{ code: 'disk_full' }],
    });
    expect(t.restored).toEqual(['a']);
    expect(u.version).toBe(0);
    expect(t.stats.changesCommitted).toBe(0);
    t.commit.enqueue(userOp('b'));
    await t.commit.acked();
    expect(t.store.transactions).toEqual([{ ops: [userOp('b')], staged: false }]);
  });

  it('gives up a lock that outlasts the retry time (by the clock)', async () => {
    const t = setup({ commitRetryMs: 1000 });
    for (let i = 0; i < 100; i++) t.store.failNext.push(sqliteError('SQLITE_BUSY'));
    t.commit.enqueue(userOp('a'));
    const ack = t.commit.acked();
    await tick();
    t.clock.advance(1000);
    await expect(ack).rejects.toMatchObject({ code: 'unavailable', details: [{ code: 'database_locked' }] });
  });

  it('a flush the store refuses rejects; a guarded call turns a store fault into 503 and lets bugs through', async () => {
    const t = setup();
    t.store.failNext.push(sqliteError('SQLITE_IOERR_WRITE'));
    t.commit.enqueue(userOp('a'));
    await expect(t.commit.flush()).rejects.toMatchObject({ code: 'unavailable' });
    await expect(
      t.commit.guarded(() => Promise.reject(sqliteError('SQLITE_READONLY'))),
    ).rejects.toMatchObject({ code: 'unavailable' });
    await expect(t.commit.guarded(() => Promise.reject(new TypeError('a bug')))).rejects.toThrow(TypeError);
  });

  it('probes a failing store at most every probe interval to learn it recovered', async () => {
    const t = setup();
    t.store.failNext.push(sqliteError('SQLITE_IOERR_WRITE'));
    t.commit.enqueue(userOp('a'));
    expect(await t.commit.attempt()).toMatchObject({ reason: 'io_error' });
    t.store.failNext.push(sqliteError('SQLITE_IOERR_WRITE'));
    expect(await t.commit.storeFault()).toMatchObject({ reason: 'io_error' });
    expect(await t.commit.storeFault()).toMatchObject({ reason: 'io_error' });
    expect(t.store.probes).toBe(1);
    t.clock.advance(1000);
    expect(await t.commit.storeFault()).toBeNull();
    expect(t.store.probes).toBe(2);
  });

  it('awaits a stage that returns a promise before the commit counts, and rolls back when it rejects', async () => {
    const t = setup();
    const seen: string[] = [];
    let fail = false;
    t.sinks.add({
      stage: async () => {
        await tick();
        if (fail) throw sqliteError('SQLITE_IOERR_WRITE');
        seen.push('staged');
      },
      committed: () => void seen.push('committed'),
    });
    t.commit.enqueue(userOp('a'));
    t.commit.change(change('a', 1));
    await t.commit.acked();
    expect(seen).toEqual(['staged', 'committed']);
    fail = true;
    const u = new UserState('b');
    t.commit.touch(u);
    u.version = 1;
    t.commit.enqueue(userOp('b'));
    t.commit.change(change('b', 1));
    await expect(t.commit.acked()).rejects.toMatchObject({ code: 'unavailable' });
    expect(t.restored).toEqual(['b']);
    expect(u.version).toBe(0);
    expect(seen).toEqual(['staged', 'committed']);
  });

  it('queues what changes while a commit is in flight for the next one, undo records kept right', async () => {
    const t = setup();
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    t.sinks.add({ stage: () => held });
    const u = new UserState('a');
    t.commit.touch(u);
    u.version = 1;
    t.commit.enqueue(userOp('a'));
    t.commit.change(change('a', 1));
    const first = t.commit.acked();
    await tick(); // the first commit is in flight, waiting on its stage
    t.commit.touch(u); // changed again meanwhile: its state after the first commit is kept
    u.version = 2;
    t.commit.enqueue(userOp('a'));
    t.commit.change(change('a', 2));
    const second = t.commit.acked();
    expect(second).not.toBe(first);
    expect(u.undo?.version).toBe(0);
    release();
    await first;
    expect(u.undo?.version).toBe(1); // the first is durable; the second may still be undone
    t.store.failNext.push(sqliteError('SQLITE_FULL'));
    await expect(second).rejects.toMatchObject({ code: 'unavailable' });
    expect(t.restored).toEqual(['a']);
    expect(u.version).toBe(1);
    expect(u.undo).toBeNull();
    expect(t.store.transactions).toHaveLength(1);
  });

  it('a final attempt is never retried', async () => {
    const t = setup();
    t.store.failNext.push(sqliteError('SQLITE_BUSY'));
    t.commit.enqueue(userOp('a'));
    const ack = t.commit.acked();
    expect(await t.commit.final()).toMatchObject({ reason: 'database_locked' });
    await expect(ack).rejects.toMatchObject({ code: 'unavailable' });
    expect(t.commit.retrying).toBe(false);
  });
});
