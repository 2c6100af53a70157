import { ChangeSinks } from '../../../src/aggregator/change-pipeline';
import { GroupCommit } from '../../../src/aggregator/group-commit';
import { RefreshPersister } from '../../../src/aggregator/refresh';
import { UserState } from '../../../src/aggregator/user-state';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import { MemoryStore, sqliteError } from '../../helpers/memory-store';

function setup() {
  const store = new MemoryStore();
  const commit = new GroupCommit({
    store,
    clock: new FakeClock(),
    log: silentLog,
    sinks: new ChangeSinks(silentLog),
    stats: { sweeps: 0, changesCommitted: 0 },
    maxBatch: 2048,
    commitRetryMs: 5000,
    probeIntervalMs: 1000,
    restore: () => undefined,
  });
  return { store, commit, refresh: new RefreshPersister(store, commit) };
}

const users = (n: number) => Array.from({ length: n }, (_, i) => new UserState(`u${i}`));

describe('RefreshPersister', () => {
  it('writes each refreshed user once, in chunks of a transaction each', async () => {
    const t = setup();
    const all = users(5);
    for (const u of all) t.refresh.mark(u);
    t.refresh.mark(all[0]!); // again: still once
    expect(await t.refresh.persist(2)).toBe(5);
    expect(t.store.transactions.map((x) => x.ops.length)).toEqual([2, 2, 1]);
    expect(t.store.ops.every((op) => op.op === 'refresh')).toBe(true);
    expect(all.every((u) => !u.refreshDirty)).toBe(true);
    expect(await t.refresh.persist()).toBe(0);
  });

  it('skips users that are gone, and forgets those it is told to', async () => {
    const t = setup();
    const [a, b, c] = users(3) as [UserState, UserState, UserState];
    for (const u of [a, b, c]) t.refresh.mark(u);
    a.deleted = true;
    t.refresh.forget(b);
    expect(await t.refresh.persist()).toBe(1);
    expect(t.store.ops).toMatchObject([{ op: 'refresh', userId: 'u2' }]);
  });

  it('keeps the times in memory while the store fails, and writes them on a later run', async () => {
    const t = setup();
    const all = users(3);
    for (const u of all) t.refresh.mark(u);
    t.store.failNext.push(sqliteError('SQLITE_IOERR_WRITE'));
    expect(await t.refresh.persist()).toBe(0);
    expect(all.every((u) => u.refreshDirty)).toBe(true);
    expect(await t.refresh.persist()).toBe(3);
  });

  it('commits queued changes first; while they cannot commit, writes nothing', async () => {
    const t = setup();
    t.refresh.mark(new UserState('a'));
    t.commit.enqueue({
      op: 'user',
      user: { userId: 'a', displayName: null, timezone: null, createdAt: 0, updatedAt: 0 },
    });
    t.store.failNext.push(sqliteError('SQLITE_IOERR_WRITE'));
    expect(await t.refresh.persist()).toBe(0);
    expect(t.store.transactions).toEqual([]);
    expect(await t.refresh.persist()).toBe(1);
  });
});
