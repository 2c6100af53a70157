import { ChangeSinks } from '../../../src/aggregator/change-pipeline';
import { GroupCommit } from '../../../src/aggregator/group-commit';
import { RefreshPersister } from '../../../src/aggregator/refresh';
import { UserState } from '../../../src/aggregator/user-state';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import type { RefreshedTimes, RefreshSlots } from '../../../src/core/ports';
import type { Observation } from '../../../src/core/presence';
import { MemoryStore, sqliteError } from '../../helpers/memory-store';

/** Slots in memory: slot = the id's last character, so tests choose who shares a slot. */
class MemorySlots implements RefreshSlots {
  readonly count = 10;
  readonly rows = new Map<number, RefreshedTimes[]>();
  readonly writes: number[][] = [];
  failNext: Error | null = null;
  /** Fails the write of this index (0 the first) instead, once. */
  failWrite: number | null = null;

  slotOf(userId: string): number {
    return Number(userId.at(-1));
  }

  write(slots: ReadonlyMap<number, readonly RefreshedTimes[]>): void {
    if (this.failWrite === this.writes.length) {
      this.failWrite = null;
      throw sqliteError('SQLITE_FULL');
    }
    if (this.failNext !== null) {
      const error = this.failNext;
      this.failNext = null;
      throw error;
    }
    this.writes.push([...slots.keys()]);
    for (const [slot, entries] of slots) {
      if (entries.length === 0) this.rows.delete(slot);
      else
        this.rows.set(
          slot,
          entries.map((e) => ({ ...e, observations: e.observations.map((o) => ({ ...o })) })),
        );
    }
  }

  load(visit: (entry: RefreshedTimes) => void): void {
    for (const entries of this.rows.values()) for (const e of entries) visit(e);
  }
}

class SlotStore extends MemoryStore {
  readonly refreshSlots = new MemorySlots();
}

const device = (observedAt: number): Observation => ({
  platform: 'device',
  device: 'laptop',
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: null,
  label: 'heartbeat online',
  decay: null,
  observedAt,
  changedAt: 0,
  expiresAt: observedAt + 60_000,
});

function setup(store: MemoryStore = new MemoryStore(), table = new Map<string, UserState>()) {
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
  return { store, commit, refresh: new RefreshPersister(store, commit, table) };
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

describe('RefreshPersister with packed slots', () => {
  function slotted(ids: string[]) {
    const table = new Map<string, UserState>();
    for (const id of ids) {
      const u = new UserState(id);
      u.observations = [device(1000)];
      u.lastActiveAt = 1000;
      table.set(id, u);
    }
    const store = new SlotStore();
    return { ...setup(store, table), slots: store.refreshSlots, table, user: (id: string) => table.get(id)! };
  }

  it('rewrites the slots of refreshed users, each with every user of the slot, and no op', async () => {
    const t = slotted(['a1', 'b1', 'c2', 'd3']);
    t.user('a1').observations[0]!.observedAt = 5000;
    t.refresh.mark(t.user('a1'));
    t.refresh.mark(t.user('d3'));
    expect(await t.refresh.persist()).toBe(2);
    expect(t.store.transactions).toEqual([]);
    expect([...t.slots.rows.keys()].sort()).toEqual([1, 3]);
    expect(t.slots.rows.get(1)!.map((e) => [e.userId, e.observations[0]!.observedAt])).toEqual([
      ['a1', 5000],
      ['b1', 1000],
    ]);
    expect(await t.refresh.persist()).toBe(0);
    expect(t.slots.writes).toHaveLength(1);
  });

  it('runs one at a time: a call during a run waits for it, then one more run serves every caller', async () => {
    const t = slotted(['a1', 'b2', 'c3']);
    t.refresh.mark(t.user('a1'));
    const first = t.refresh.persist();
    t.refresh.mark(t.user('b2'));
    const second = t.refresh.persist();
    const third = t.refresh.persist();
    expect(third).toBe(second);
    expect(await first).toBe(1);
    expect(await second).toBe(1);
    expect(t.slots.writes).toEqual([[1], [2]]);
  });

  it('leaves a user deleted before the run out of its slot', async () => {
    const t = slotted(['a1', 'b1']);
    for (const u of t.table.values()) t.refresh.mark(u);
    const gone = t.user('a1');
    t.table.delete('a1');
    gone.deleted = true;
    t.refresh.forget(gone);
    expect(await t.refresh.persist()).toBe(1);
    expect(t.slots.rows.get(1)!.map((e) => e.userId)).toEqual(['b1']);
  });

  it('keeps the refreshed users for a later run while the store fails', async () => {
    const t = slotted(['a1', 'b2']);
    for (const u of t.table.values()) t.refresh.mark(u);
    t.slots.failNext = sqliteError('SQLITE_FULL');
    expect(await t.refresh.persist()).toBe(0);
    expect(t.user('a1').refreshDirty && t.user('b2').refreshDirty).toBe(true);
    expect(await t.refresh.persist()).toBe(2);
    expect(t.slots.rows.size).toBe(2);
  });

  it("after a fault half-way, keeps only the unwritten slots' users for the next run", async () => {
    // 9,000 users over 10 slots: about 4,000 users a transaction makes two of them.
    const t = slotted(Array.from({ length: 9000 }, (_, i) => `u${i}`));
    for (const u of t.table.values()) t.refresh.mark(u);
    t.slots.failWrite = 1;
    expect(await t.refresh.persist()).toBe(4500);
    expect(t.slots.writes).toEqual([[0, 1, 2, 3, 4]]);
    const dirty = [...t.table.values()].filter((u) => u.refreshDirty);
    expect(dirty).toHaveLength(4500);
    expect(dirty.every((u) => Number(u.userId.at(-1)) >= 5)).toBe(true);
    expect(await t.refresh.persist()).toBe(4500);
    expect(t.slots.writes[1]).toEqual([5, 6, 7, 8, 9]);
    expect([...t.slots.rows.values()].every((entries) => entries.length === 900)).toBe(true);
  });

  it('at load, takes stored times only where they are later than the rows', () => {
    const t = slotted(['a1', 'b1']);
    const a = t.user('a1');
    a.observations = [device(9000), { ...device(2000), device: 'phone' }];
    a.lastActiveAt = 9000;
    t.refresh.apply({
      userId: 'a1',
      lastActiveAt: 8000,
      observations: [
        { platform: 'device', device: 'laptop', observedAt: 7000, expiresAt: 67_000 }, // row is later
        { platform: 'device', device: 'phone', observedAt: 4000, expiresAt: 64_000 }, // entry is later
        { platform: 'slack', device: '', observedAt: 9999, expiresAt: 99_999 }, // no such row
      ],
    });
    expect(a.observations.map((o) => [o.device, o.observedAt, o.expiresAt])).toEqual([
      ['laptop', 9000, 69_000],
      ['phone', 4000, 64_000],
    ]);
    expect(a.lastActiveAt).toBe(9000);
    const b = t.user('b1');
    b.lastActiveAt = null;
    t.refresh.apply({ userId: 'b1', lastActiveAt: 5000, observations: [] });
    expect(b.lastActiveAt).toBeNull(); // a refresh never makes a user active
    t.refresh.apply({ userId: 'nobody', lastActiveAt: 5000, observations: [] }); // a deleted user: ignored
  });
});
