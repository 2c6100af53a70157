/**
 * @module aggregator/refresh
 * Refresh persistence. A report whose content is unchanged only moves times in memory (no disk
 * write); the users refreshed so far are remembered here, and their times (observed_at,
 * expires_at, last_active_at) are written coarsely, every `refreshPersistMs`, in small
 * transactions.
 *
 * Where the store packs them (`PresenceStore.refreshSlots`, SQLite), a run rewrites the slots
 * that hold a refreshed user, each with every user of the slot: a few thousand rows at 1,000,000
 * users instead of two row updates per user. Otherwise each refreshed user is a `refresh` op.
 * At load, `apply` takes the stored times that are later than the rows' (see engine.load).
 */

import type { AsyncPresenceStore, AsyncRefreshSlots, RefreshedTimes, WriteOp } from '../core/ports';
import type { GroupCommit } from './group-commit';
import type { UserState } from './user-state';

/** About this many users' times go into one transaction of slots. */
const USERS_PER_SLOT_TX = 4000;

const yieldTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

export class RefreshPersister {
  private dirty = new Set<UserState>();
  private readonly slots: AsyncRefreshSlots | undefined;
  private running: Promise<void> | null = null;
  private next: Promise<number> | null = null;

  constructor(
    private readonly store: AsyncPresenceStore,
    private readonly commit: GroupCommit,
    private readonly users: ReadonlyMap<string, UserState>,
  ) {
    this.slots = store.refreshSlots;
  }

  /** Remembers that the user's times moved in memory. */
  mark(u: UserState): void {
    if (u.refreshDirty) return;
    u.refreshDirty = true;
    this.dirty.add(u);
  }

  /** Forgets a user that is gone. */
  forget(u: UserState): void {
    // The store takes a deleted user out of its packed slot itself, with the user's rows.
    this.dirty.delete(u);
  }

  /**
   * Applies stored refresh times at load, where they are later than what the rows said: an
   * observation's times (matched by platform and device) and the last activity.
   */
  apply(entry: RefreshedTimes): void {
    const u = this.users.get(entry.userId);
    if (u === undefined) return;
    for (const t of entry.observations) {
      for (const o of u.observations) {
        if (o.platform !== t.platform || o.device !== t.device) continue;
        if (t.observedAt > o.observedAt) {
          o.observedAt = t.observedAt;
          o.expiresAt = t.expiresAt;
        }
        break;
      }
    }
    // A user never active has null: a refresh never makes one active (a change does, in its row).
    if (entry.lastActiveAt !== null && u.lastActiveAt !== null && entry.lastActiveAt > u.lastActiveAt)
      u.lastActiveAt = entry.lastActiveAt;
  }

  /**
   * Writes refreshed times of the users refreshed since the last run, a chunk per transaction,
   * yielding between chunks. Resolves to the number of refreshed users written.
   */
  persist(chunk = 250): Promise<number> {
    // One run at a time. A call during a run waits for it and then runs once, for every caller
    // meanwhile: runs slower than the interval (a loaded machine) do not pile up.
    if (this.next !== null) return this.next;
    if (this.running === null) return this.start(chunk);
    const next = this.running.then(() => {
      this.next = null;
      return this.start(chunk);
    });
    this.next = next;
    return next;
  }

  private start(chunk: number): Promise<number> {
    const run = this.slots === undefined ? this.persistOps(chunk) : this.persistSlots(this.slots);
    const done: Promise<void> = run.then(
      () => undefined,
      () => undefined,
    );
    this.running = done;
    void done.then(() => {
      if (this.running === done) this.running = null;
    });
    return run;
  }

  /** Changes first, then times: false while queued changes are not committed. */
  private async changesCommitted(): Promise<boolean> {
    // While the store fails, the times wait in memory for a later run: they were acknowledged as
    // refreshes, which never waited for a commit.
    return !this.commit.retrying && (await this.commit.attempt()) === null;
  }

  private async persistSlots(slots: AsyncRefreshSlots): Promise<number> {
    if (this.dirty.size === 0) return 0;
    // The users refreshed so far are this run's; those refreshed while it runs are the next one's.
    const taken = this.dirty;
    this.dirty = new Set();
    if (!(await this.changesCommitted())) {
      for (const u of taken) if (!u.deleted) this.dirty.add(u);
      return 0;
    }
    // Typed arrays and one array of users, sorted by slot (a counting sort): a run over 1,000,000
    // users allocates little, so it does not bring on a full collection of a large heap.
    const count = slots.count;
    const refreshed = new Uint32Array(count); // refreshed users per slot
    for (const u of taken) {
      u.refreshDirty = false;
      if (!u.deleted) refreshed[slots.slotOf(u.userId)]! += 1;
    }
    // Every user of those slots, since a row is replaced whole.
    const slotOfUser = count <= 0x10000 ? new Uint16Array(this.users.size) : new Uint32Array(this.users.size);
    const start = new Uint32Array(count + 1);
    let k = 0;
    for (const u of this.users.values()) {
      const slot = slots.slotOf(u.userId);
      slotOfUser[k++] = slot;
      if (refreshed[slot]! > 0) start[slot + 1]! += 1;
    }
    for (let s = 0; s < count; s++) start[s + 1]! += start[s]!;
    const bySlot = new Array<UserState>(start[count]!);
    const fill = start.slice(0, count);
    k = 0;
    for (const u of this.users.values()) {
      const slot = slotOfUser[k++]!;
      if (refreshed[slot]! > 0) bySlot[fill[slot]!++] = u;
    }

    let written = 0;
    let slot = 0;
    const next = (): void => {
      while (slot < count && refreshed[slot] === 0) slot++;
    };
    next();
    for (let first = true; slot < count; first = false) {
      if (!first) {
        await yieldTurn();
        if (!(await this.changesCommitted())) return this.retryLater(taken, refreshed, slot, slots, written);
      }
      const batch = new Map<number, RefreshedTimes[]>();
      let users = 0;
      const from = slot;
      while (slot < count && users < USERS_PER_SLOT_TX) {
        // A user is its own entry (its id, observations and last activity): nothing is copied.
        const entries: RefreshedTimes[] = [];
        for (let i = start[slot]!; i < start[slot + 1]!; i++) {
          const u = bySlot[i]!;
          if (!u.deleted && u.observations.length > 0) entries.push(u);
        }
        batch.set(slot, entries);
        users += entries.length;
        slot++;
        next();
      }
      try {
        await slots.write(batch);
        this.commit.healthy();
      } catch (error) {
        this.commit.noteFault(error);
        return this.retryLater(taken, refreshed, from, slots, written);
      }
      for (const s of batch.keys()) written += refreshed[s]!;
    }
    return written;
  }

  /** The slots from `from` on were not written: their refreshed users wait for a later run. */
  private retryLater(
    taken: ReadonlySet<UserState>,
    refreshed: Uint32Array,
    from: number,
    slots: AsyncRefreshSlots,
    written: number,
  ): number {
    for (const u of taken) {
      if (u.deleted) continue;
      const slot = slots.slotOf(u.userId);
      if (slot >= from && refreshed[slot]! > 0) this.mark(u);
    }
    return written;
  }

  private async persistOps(chunk: number): Promise<number> {
    let written = 0;
    while (this.dirty.size > 0) {
      if (!(await this.changesCommitted())) return written;
      const ops: WriteOp[] = [];
      const users: UserState[] = [];
      for (const u of this.dirty) {
        this.dirty.delete(u);
        u.refreshDirty = false;
        if (u.deleted) continue;
        ops.push({
          op: 'refresh',
          userId: u.userId,
          observations: u.observations,
          lastActiveAt: u.lastActiveAt,
        });
        users.push(u);
        if (ops.length >= chunk) break;
      }
      try {
        await this.store.write(ops);
        this.commit.healthy();
      } catch (error) {
        this.commit.noteFault(error);
        for (const u of users) this.mark(u);
        return written;
      }
      written += ops.length;
      if (this.dirty.size > 0) await yieldTurn();
    }
    return written;
  }
}
