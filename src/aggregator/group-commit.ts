/**
 * @module aggregator/group-commit
 * Durability of the engine's changes. A change is queued; everything queued in one turn of the
 * event loop is committed in one transaction (group commit), and the caller's promise settles
 * after that commit. So "acknowledged" means "on disk", yet a burst costs one transaction, not
 * one per event. The change sinks stage their rows inside that transaction (awaited when a sink
 * returns a promise) and are told after it.
 *
 * The store is asynchronous (`AsyncPresenceStore`), so a commit is in flight for a while: one
 * commit runs at a time, in order, and what is queued meanwhile goes into the next one, started
 * as soon as the one in flight is over. Writes outside the group commit (users, accounts) run as
 * an `exclusive` step between two commits.
 *
 * When a commit fails, memory never shows what was not committed. Each user a queued change
 * touches keeps an undo record of its last committed state (taken once per commit, so the hot
 * path pays one small copy per changed user). A user changed again while its commit is in flight
 * gets a second record, of the state that commit makes durable, which becomes its undo record
 * once that commit succeeds. A lock held by another connection is retried on timers with back-off
 * for up to `commitRetryMs`, the event loop free meanwhile (the SQLite busy wait is kept to
 * milliseconds, see store/db.ts), and reads show the undo record while the change waits. Any
 * other failure, or a lock that outlasts the retries, rolls the queued changes back in memory
 * (those queued behind the failed commit too: they were made on top of it) and rejects their
 * acknowledgements with 503 `unavailable` (store/faults.ts); the next write tries the store
 * again, so service resumes by itself.
 *
 * Several nodes on one PostgreSQL (CONTRACT §10): a node's memory of a user may lag another
 * node's commit (two devices of one user behind a load balancer, the follower not there yet).
 * Versions stay "one change, one version": each commit tells the store, for every user it
 * touches, the version this node holds as committed (the undo record's); the store checks them
 * under row locks and skips every op of a user whose stored version differs (stale), applies the
 * others' and returns the stale users (store/pg/presence-store.ts, `presence_apply`). So a race
 * on one user never fails the other users of the batch: their changes are durable, told to the
 * sinks and acknowledged on the first try (a public write changes one user and waits under that
 * user, see Batch), and the stale users' changes are left out of the sinks' staged rows (no
 * webhook event, no log entry for what was not committed). Then, with no other commit starting
 * meanwhile:
 * - the stale users' committed state is read back (`loadUsers`, one snapshot);
 * - each is rebased (`rebase`, aggregator/ingest.ts): its state becomes the stored one (and its
 *   new undo record), and what this node's memory holds on top is taken again: each observation
 *   later than the stored one, the override when this node changed it, then one reduce, which
 *   queues at most one change (the stored version + 1) with its transition. Its ops and changes
 *   still queued behind the stale commit are dropped first (built on the versions refused);
 * - the stale users' writes are answered with that next commit, so an acknowledgement still
 *   means "durable": nothing acknowledged is lost, no version is duplicated or skipped, and
 *   memory ends equal to the store's rows.
 * No fault is noted (the store is fine). A user found stale `MAX_STALE_ROUNDS` commits in a row
 * gets the stored state without its changes, and its writes (queued ones too) are refused with
 * 503 `version_conflict`: not applied, as every 503 says. A user the read no longer finds (deleted
 * by another node) is forgotten here too. If the read fails, the stale users' changes and what is
 * queued are rolled back and refused as for a failed commit. SQLite has one writer, reports no
 * stale user, and runs none of this.
 */

import { Backoff } from '../core/backoff';
import type { PresenceChange, StoreTx } from '../core/changes';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import { writeOpUser, type AsyncPresenceStore, type LoadedUser, type WriteOp } from '../core/ports';
import { classifyStoreError, isStoreFault, StoreUnavailableError, type StoreFault } from '../store/faults';
import type { ChangeSinks } from './change-pipeline';
import { Undo, type UserState } from './user-state';

/** A change that stayed stale (see the module comment); classified `version_conflict`. */
export class VersionConflictError extends Error {
  override name = 'VersionConflictError';
  constructor(readonly userIds: readonly string[]) {
    super(`the change met other nodes' changes ${MAX_STALE_ROUNDS} times in a row`);
  }
}
import type { EngineStats } from './wheel';

export type Ack = Promise<void>;
export const DONE: Ack = Promise.resolve();
const ignore = (): void => undefined;
/** Back-off between commit retries while another connection holds the lock. */
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 250;
/** Commits in a row that may find the same user stale before its writes are refused. */
export const MAX_STALE_ROUNDS = 5;

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/** Writes waiting for one commit: one promise shared by all of them, made on first demand. */
class Waiting {
  waiters: Waiter[] = [];
  /** The promise the waiters were handed, while there is one. */
  ack: Ack | null = null;

  acknowledgement(): Ack {
    if (this.ack === null) {
      const ack = new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
      });
      // A caller that drops the promise (a connector's fire-and-forget report) must not turn a
      // refused commit into an unhandled rejection; callers that await it still see the error.
      ack.catch(ignore);
      this.ack = ack;
    }
    return this.ack;
  }

  /** Takes `other`'s waiters in front of its own (they were queued earlier). */
  join(other: Waiting): void {
    if (other.waiters.length === 0) return;
    this.waiters = other.waiters.concat(this.waiters);
    this.ack ??= other.ack;
    other.waiters = [];
    other.ack = null;
  }

  take(): Waiter[] {
    const waiters = this.waiters;
    this.waiters = [];
    this.ack = null;
    return waiters;
  }
}

/**
 * What one commit writes, and who waits for it. A public write changes one user, and waits
 * under that user: the writes of a user the store finds stale are answered with the commit that
 * makes their change again, the others' at once.
 */
class Batch {
  ops: WriteOp[] = [];
  /** Changes of the ops, for the change sinks once they commit. */
  changes: PresenceChange[] = [];
  /** Writes waiting without naming their user. */
  readonly all = new Waiting();
  /** Writes waiting, by the user they change (made on first demand). */
  byUser: Map<string, Waiting> | null = null;
  /** Users with an undo record taken for this batch. */
  touched: UserState[] = [];
  /** Users with a `check` op in this batch (one is enough: see GroupCommit.check). */
  checked: Set<string> | null = null;

  get empty(): boolean {
    return this.ops.length === 0 && this.changes.length === 0;
  }

  get waited(): boolean {
    return this.all.waiters.length > 0 || (this.byUser !== null && this.byUser.size > 0);
  }

  /** The promise that settles when this batch is committed, or is refused. */
  acknowledgement(userId?: string): Ack {
    return userId === undefined ? this.all.acknowledgement() : this.waitingOf(userId).acknowledgement();
  }

  /** Takes every waiter of `other` in front of its own (a batch put back in front of this one). */
  join(other: Batch): void {
    this.all.join(other.all);
    if (other.byUser === null) return;
    for (const [userId, w] of other.byUser) this.waitingOf(userId).join(w);
    other.byUser = null;
  }

  /** Takes the user's waiters from `other`, in front of its own. */
  moveUser(other: Batch, userId: string): void {
    const w = other.byUser?.get(userId);
    if (w === undefined) return;
    other.byUser!.delete(userId);
    this.waitingOf(userId).join(w);
  }

  /** The user's waiters (and none from now on), or none. */
  takeUser(userId: string): Waiter[] {
    const w = this.byUser?.get(userId);
    if (w === undefined) return [];
    this.byUser!.delete(userId);
    return w.take();
  }

  /** Every waiter (and none from now on). */
  takeAll(): Waiter[] {
    const waiters = this.all.take();
    if (this.byUser !== null) for (const w of this.byUser.values()) waiters.push(...w.take());
    this.byUser = null;
    return waiters;
  }

  private waitingOf(userId: string): Waiting {
    this.byUser ??= new Map();
    let w = this.byUser.get(userId);
    if (w === undefined) {
      w = new Waiting();
      this.byUser.set(userId, w);
    }
    return w;
  }
}

/** The changes of users other than those in `users`. */
const without = (changes: readonly PresenceChange[], users: ReadonlySet<string>): PresenceChange[] =>
  changes.filter((c) => !users.has(c.userId));

/**
 * Takes the users with changes out of `batch` (their ops, changes, undo records and waiters) into
 * a batch of their own, with the writes that named no user (they wait for everything queued);
 * null, `batch` untouched, when no user of it is without a change.
 */
function takeChanged(batch: Batch): Batch | null {
  const changed = new Set(batch.changes.map((c) => c.userId));
  const kept = batch.ops.filter((op) => !changed.has(writeOpUser(op)));
  if (kept.length === 0) return null;
  const out = new Batch();
  out.ops = batch.ops.filter((op) => changed.has(writeOpUser(op)));
  out.changes = batch.changes;
  out.touched = batch.touched.filter((u) => changed.has(u.userId));
  if (batch.checked !== null) {
    out.checked = new Set([...batch.checked].filter((id) => changed.has(id)));
    batch.checked = new Set([...batch.checked].filter((id) => !changed.has(id)));
  }
  out.all.join(batch.all);
  for (const userId of changed) out.moveUser(batch, userId);
  batch.ops = kept;
  batch.changes = [];
  batch.touched = batch.touched.filter((u) => !changed.has(u.userId));
  return out;
}

export interface GroupCommitOptions {
  readonly store: AsyncPresenceStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly sinks: ChangeSinks;
  readonly stats: EngineStats;
  /** Commit at once when this many writes are queued, to keep each transaction short. */
  readonly maxBatch: number;
  /** How long (by `clock`) a commit that meets another connection's lock is retried. */
  readonly commitRetryMs: number;
  /** How often, at most, `storeFault()` probes a failing store. */
  readonly probeIntervalMs: number;
  /** Gives a touched user its committed state back (a refused commit). */
  readonly restore: (u: UserState) => void;
  /**
   * A user the store found stale: `stored` is its committed state (null: it is gone), `mine`
   * what this node's memory held (the user itself, its undo record dropped), `base` the state
   * that memory was built on. Makes `stored` the user's committed state and, when `keep`, queues
   * this node's changes again on top (see the module comment). `cause`: the last dropped change's.
   */
  readonly rebase?: (
    u: UserState,
    stored: LoadedUser | null,
    base: Undo,
    cause: string | null,
    keep: boolean,
  ) => void;
}

export class GroupCommit {
  /** What the next commit writes. */
  private queue = new Batch();
  /** The batch of the commit in flight, or null. */
  private flying: Batch | null = null;
  /** Users of the batch in flight whose undo record has a `next` (changed again meanwhile). */
  private retouched: UserState[] = [];
  /** Settles (never rejects) when the commit or exclusive step in flight is over; null while none is. */
  private current: Promise<unknown> | null = null;
  /** The attempt that follows the one in flight, shared by everyone asking meanwhile. */
  private followUp: Promise<StoreFault | null> | null = null;
  private flushScheduled = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly retryDelay = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
  /** When the queued commit first failed (clock time), while it is being retried. */
  private failingSince: number | null = null;
  /** Why the store last failed to commit; null once a commit succeeds again. */
  private fault: StoreFault | null = null;
  private lastProbeAt = Number.NEGATIVE_INFINITY;
  /** Users found stale in the last commits, with how many commits in a row did. */
  private staleRounds = new Map<string, number>();
  /** Set by `stop()`: a failing commit is no longer retried. */
  stopped = false;

  constructor(private readonly o: GroupCommitOptions) {}

  /** True while a failed commit is being retried: reads then show the committed state. */
  get failing(): boolean {
    return this.failingSince !== null;
  }

  /** True while a retry is scheduled (a commit now would only meet the same lock). */
  get retrying(): boolean {
    return this.retryTimer !== null;
  }

  /** Queues a write for the next group commit (at the end of this turn of the event loop). */
  enqueue(op: WriteOp): void {
    this.queue.ops.push(op);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.commitQueued();
      });
    }
  }

  /** Queues a change for the sinks, committed with the ops queued alongside it. */
  change(c: PresenceChange): void {
    this.queue.changes.push(c);
  }

  /** Records the user's committed state before queued changes alter it (once per commit). */
  touch(u: UserState): void {
    const undo = u.undo;
    if (undo === null) {
      u.undo = new Undo(u, false);
      this.queue.touched.push(u);
    } else if (undo.inFlight && undo.next === null) {
      // What the commit in flight makes durable: the undo record once it succeeds.
      undo.next = new Undo(u, false);
      this.retouched.push(u);
    }
  }

  /**
   * Has the next commit check the user's version though it changes nothing of it (a report the
   * same as memory, in several-node mode: the store finds the user stale if another node changed
   * it meanwhile, and it is rebased as for any stale change). One `check` op per user per commit:
   * the version is the user's, however many of its reports asked.
   */
  check(u: UserState): void {
    this.touch(u);
    const q = this.queue;
    q.checked ??= new Set();
    if (q.checked.has(u.userId)) return;
    q.checked.add(u.userId);
    this.enqueue({ op: 'check', userId: u.userId });
  }

  /** Marks a user the queued changes create: a rollback forgets it again. */
  created(u: UserState): void {
    u.undo = new Undo(u, true);
    this.queue.touched.push(u);
  }

  /**
   * The acknowledgement of a public write, taken before anything is committed. A full queue is
   * committed here, at the end of a whole write and never in its middle, so that a refused
   * commit rolls back whole writes only.
   */
  acked(userId?: string): Ack {
    const ack = this.ack(userId);
    if (this.queue.ops.length >= this.o.maxBatch) this.commitQueued();
    return ack;
  }

  /**
   * The promise that settles when everything queued so far is committed, or is refused; under
   * `userId`, the user whose change the write made (see Batch).
   */
  private ack(userId?: string): Ack {
    const queue = this.queue;
    if (queue.ops.length > 0 || queue.waited) return queue.acknowledgement(userId);
    // Nothing queued: only as good as the commit in flight (a refresh of a change it carries).
    return this.flying === null ? DONE : this.flying.acknowledgement(userId);
  }

  /** Commits what is queued, unless a retry is already scheduled (the queue then joins it). */
  commitQueued(): void {
    if (this.retryTimer === null) void this.attempt();
  }

  /**
   * One commit of everything queued, in one transaction, after the commit in flight. Resolves to
   * null when it is durable (or nothing was queued), otherwise to the fault; the queue is then
   * kept for a retry (another connection's lock, within `commitRetryMs`) or rolled back and its
   * writes refused. Never rejects.
   */
  attempt(): Promise<StoreFault | null> {
    if (this.current !== null) {
      // One commit at a time: what is queued now goes into the next one.
      this.followUp ??= this.current.then(() => {
        this.followUp = null;
        return this.retryTimer === null || this.current !== null ? this.attempt() : this.fault;
      });
      return this.followUp;
    }
    const batch = this.queue;
    if (batch.empty) {
      for (const w of batch.takeAll()) w.resolve();
      return Promise.resolve(null);
    }
    // A sink that would refuse the changes (the change log down) would refuse the refreshes
    // sharing their commit too: those users are committed on their own, and the users with
    // changes are refused at once, with no round trip (or, the sink ready again by the next
    // attempt, committed).
    const refusal = batch.changes.length > 0 ? this.o.sinks.refusal() : null;
    const refused = refusal === null ? null : takeChanged(batch);
    if (refusal !== null && refused === null) {
      this.queue = new Batch();
      this.flying = batch;
      return Promise.resolve(this.failed(batch, refusal));
    }
    this.queue = refused ?? new Batch();
    this.flying = batch;
    // The version each touched user's changes were made on (checked where several nodes write).
    const expected = new Map<string, number>();
    for (const u of batch.touched) {
      u.undo!.inFlight = true;
      expected.set(u.userId, u.undo!.version);
    }
    const { ops, changes } = batch;
    const sinks = this.o.sinks;
    // What the sinks staged: the batch's changes less the stale users'. The same array is what
    // they are told of after the commit (a sink may key what it staged by it).
    let staged: readonly PresenceChange[] | null = null;
    const stage =
      changes.length === 0 || !sinks.staging
        ? undefined
        : (tx: StoreTx, stale?: ReadonlySet<string>) => {
            staged = stale === undefined || stale.size === 0 ? changes : without(changes, stale);
            return sinks.stage(tx, staged);
          };
    // A store that throws instead of rejecting is answered the same way.
    const write = new Promise<ReadonlySet<string> | void>((resolve) => {
      resolve(this.o.store.write(ops, stage, expected));
    });
    const done = write.then(
      (stale) => {
        if (stale === undefined || stale.size === 0) {
          this.landed(batch);
          return null;
        }
        return this.landedStale(batch, stale, staged ?? without(changes, stale));
      },
      (error: unknown) => this.failed(batch, error),
    );
    this.current = done;
    if (refused === null) return done;
    // Split: the users with changes are attempted right after, as a follow-up; this resolves to
    // the first fault of either, so a flush or a stop still learns that the changes were refused.
    return Promise.all([done, this.attempt()]).then(([kept, rest]) => kept ?? rest);
  }

  /** The batch in flight is durable. */
  private landed(batch: Batch): void {
    this.flying = null;
    this.current = null;
    if (this.staleRounds.size > 0) this.staleRounds.clear();
    for (const u of batch.touched) {
      // A user changed again meanwhile starts the queue's undo record from what just committed.
      const next = u.undo?.next ?? null;
      u.undo = next;
      if (next !== null) this.queue.touched.push(u);
    }
    this.retouched = [];
    this.endRetries();
    this.healthy();
    for (const w of batch.takeAll()) w.resolve();
    this.o.stats.changesCommitted += batch.changes.length;
    if (batch.changes.length > 0) this.o.sinks.committed(batch.changes);
  }

  /**
   * The batch in flight is durable except for the `stale` users' changes, which the store
   * skipped: the others land, the stale users are read back and rebased, and the batch's waiters
   * are answered with the next commit, which carries their changes made again (module comment).
   * Resolves as that commit does.
   */
  private async landedStale(
    batch: Batch,
    stale: ReadonlySet<string>,
    committed: readonly PresenceChange[],
  ): Promise<StoreFault | null> {
    const staleUsers: UserState[] = [];
    const bases = new Map<UserState, Undo>();
    for (const u of batch.touched) {
      if (stale.has(u.userId)) {
        staleUsers.push(u);
        bases.set(u, u.undo!);
        continue;
      }
      const next = u.undo?.next ?? null;
      u.undo = next;
      if (next !== null) this.queue.touched.push(u);
    }
    this.retouched = [];
    this.endRetries();
    this.healthy();
    // The stale users' writes wait for their change made again; the others' are durable now.
    const waiting = new Batch();
    for (const u of staleUsers) waiting.moveUser(batch, u.userId);
    waiting.all.join(batch.all); // writes that named no user: answered with the stale users'
    for (const w of batch.takeAll()) w.resolve();
    this.o.stats.changesCommitted += committed.length;
    if (committed.length > 0) this.o.sinks.committed(committed);

    const rounds = new Map<string, number>();
    for (const u of staleUsers) rounds.set(u.userId, (this.staleRounds.get(u.userId) ?? 0) + 1);
    this.staleRounds = rounds;
    const givenUp = new Set(staleUsers.filter((u) => rounds.get(u.userId)! >= MAX_STALE_ROUNDS));
    this.o.log.info(
      { users: staleUsers.length, retried: staleUsers.length - givenUp.size },
      "changes met other nodes' changes to the same users; made again on their committed state",
    );

    let read: readonly LoadedUser[];
    try {
      // A commit in flight all the while (`current` is this one): nothing else starts meanwhile.
      read = [...(await this.o.store.loadUsers(staleUsers.map((u) => u.userId)))];
    } catch (error) {
      // Their committed state cannot be known now: the stale users' changes are refused (their
      // undo records give back what memory held before them), with what is queued, as for a
      // commit that failed.
      this.flying = null;
      this.current = null;
      for (const u of staleUsers) {
        if (u.undo !== null) u.undo.next = null;
        if (!this.queue.touched.includes(u)) this.queue.touched.push(u);
      }
      this.queue.join(waiting);
      const fault = this.noteFault(error);
      this.rollBack(fault);
      return fault;
    }
    const byId = new Map(read.map((l) => [l.user.userId, l]));

    // Their ops and changes queued since were made on the versions refused: made again below.
    const q = this.queue;
    const causes = new Map<string, string | null>();
    for (const c of batch.changes.concat(q.changes)) if (stale.has(c.userId)) causes.set(c.userId, c.cause);
    q.ops = q.ops.filter((op) => !stale.has(writeOpUser(op)));
    q.changes = without(q.changes, stale);
    q.touched = q.touched.filter((u) => !stale.has(u.userId));
    for (const id of stale) q.checked?.delete(id);
    const refused: Waiter[] = [];
    for (const u of staleUsers) {
      const base = bases.get(u)!;
      const keep = this.o.rebase !== undefined && !givenUp.has(u);
      if (!keep) {
        // Its changes are not made again: its writes, queued ones too, are refused.
        refused.push(...waiting.takeUser(u.userId), ...q.takeUser(u.userId));
        this.staleRounds.delete(u.userId);
      }
      if (this.o.rebase === undefined) {
        // No way to make them again: memory goes back to what it held before them.
        u.undo = base;
        base.next = null;
        this.o.restore(u);
        continue;
      }
      u.undo = null;
      this.o.rebase(u, byId.get(u.userId) ?? null, base, causes.get(u.userId) ?? null, keep);
    }

    this.flying = null;
    this.current = null;
    q.join(waiting);
    if (refused.length > 0) {
      const fault = classifyStoreError(
        new VersionConflictError([...givenUp].map((u) => u.userId)),
        this.o.clock.now(),
      );
      this.o.log.warn(
        { users: givenUp.size, writes: refused.length },
        "refused changes that kept meeting other nodes' changes",
      );
      const refusal = new StoreUnavailableError(fault);
      for (const w of refused) w.reject(refusal);
    }
    return this.attempt();
  }

  /** The batch in flight failed: back in front of the queue, to be retried or rolled back. */
  private failed(batch: Batch, error: unknown): StoreFault {
    this.flying = null;
    this.current = null;
    for (const u of this.retouched) if (u.undo !== null) u.undo.next = null;
    this.retouched = [];
    for (const u of batch.touched) if (u.undo !== null) u.undo.inFlight = false;
    // Back in front of anything queued meanwhile, in order.
    const q = this.queue;
    q.ops = batch.ops.concat(q.ops);
    q.changes = batch.changes.concat(q.changes);
    q.touched = batch.touched.concat(q.touched);
    if (batch.checked !== null) for (const id of batch.checked) (q.checked ??= new Set()).add(id);
    q.join(batch);

    const fault = this.noteFault(error);
    const now = this.o.clock.now();
    this.failingSince ??= now;
    if (fault.transient && !this.stopped && now - this.failingSince < this.o.commitRetryMs) {
      if (this.retryTimer === null) {
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          void this.attempt();
        }, this.retryDelay.next());
        this.retryTimer.unref();
      }
      return fault;
    }
    this.rollBack(fault);
    return fault;
  }

  /**
   * Commits what is queued now, in one transaction. Rejects with `StoreUnavailableError` when the
   * store refuses it (the queue is then retried or rolled back, as for a group commit).
   */
  async flush(): Promise<void> {
    const fault = await this.attempt();
    if (fault !== null) throw new StoreUnavailableError(fault);
  }

  /** Before a read from the store: commit what is queued if that can be done now, else read what is committed. */
  async flushForRead(): Promise<void> {
    if (this.retryTimer === null) await this.attempt();
  }

  /** The last attempt of a shutdown, not retried: whatever cannot be committed is refused. */
  final(): Promise<StoreFault | null> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    return this.attempt();
  }

  /**
   * Runs a write outside the group commit (a user's fields, an account, a deletion) once
   * everything queued so far is committed, with no commit in flight meanwhile: changes made
   * while it runs wait in the queue, and are committed after it. Refused with 503 when the
   * queued changes cannot be committed; a store fault of `fn` itself is noted and refused with
   * 503 too (see `guarded`).
   */
  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.flush();
    while (this.current !== null) await this.current;
    let over!: () => void;
    this.current = new Promise<void>((resolve) => (over = resolve));
    try {
      return await this.guarded(fn);
    } finally {
      this.current = null;
      over();
    }
  }

  /**
   * Forgets the queued changes of a user that is gone (inside `exclusive`, after its deletion
   * committed): writes made on it while it was being deleted would otherwise recreate its rows.
   */
  forget(u: UserState): void {
    const q = this.queue;
    const id = u.userId;
    q.ops = q.ops.filter((op) => writeOpUser(op) !== id);
    q.changes = q.changes.filter((c) => c.userId !== id);
    q.touched = q.touched.filter((t) => t !== u);
    q.checked?.delete(id);
    u.undo = null;
  }

  /**
   * Forgets everything queued: each touched user gets its committed state back, users the queue
   * created are gone again, and every waiting write is refused with the fault.
   */
  private rollBack(fault: StoreFault): void {
    const q = this.queue;
    this.queue = new Batch();
    const waiters = q.takeAll();
    this.endRetries();
    for (const u of q.touched) this.o.restore(u);
    // Refused writes are worth a warning; the sweep's expiries, found again at every sweep while
    // the fault lasts, only at debug (the fault itself was logged once).
    const summary = {
      reason: fault.reason,
      users: q.touched.length,
      changes: q.changes.length,
      writes: waiters.length,
    };
    if (waiters.length > 0) this.o.log.warn(summary, 'rolled back changes the store could not commit');
    else this.o.log.debug(summary, 'rolled back changes the store could not commit');
    const refusal = new StoreUnavailableError(fault);
    for (const w of waiters) w.reject(refusal);
  }

  private endRetries(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryDelay.reset();
    this.failingSince = null;
  }

  /** Notes a failure of the store (said once per cause, not once per attempt). */
  noteFault(error: unknown): StoreFault {
    const fault = classifyStoreError(error, this.o.clock.now());
    if (this.fault?.reason === fault.reason) return this.fault;
    this.o.log.error(
      { err: error, reason: fault.reason },
      'the store cannot commit; writes answer 503 until it can',
    );
    this.fault = fault;
    return fault;
  }

  /** Notes that the store commits again. */
  healthy(): void {
    if (this.fault === null) return;
    this.o.log.info({ reason: this.fault.reason }, 'the store commits again');
    this.fault = null;
  }

  /**
   * Runs a store call of a write outside the group commit (users, accounts). A store failure is
   * noted like a failed commit and refused with 503; anything else is a bug and passes through.
   */
  async guarded<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      throw new StoreUnavailableError(this.noteFault(error));
    }
  }

  /**
   * Why the store cannot commit, or null when it can. While it cannot, and no commit is being
   * retried anyway, a probe commit is tried at most every `probeIntervalMs` (and awaited), so that
   * readiness comes back once the fault is gone even when no write arrives to find out.
   */
  async storeFault(): Promise<StoreFault | null> {
    if (this.fault === null || this.retryTimer !== null) return this.fault;
    const now = this.o.clock.now();
    if (now - this.lastProbeAt >= this.o.probeIntervalMs) {
      this.lastProbeAt = now;
      try {
        await this.o.store.probe(now);
        this.healthy();
      } catch (error) {
        this.noteFault(error);
      }
    }
    return this.fault;
  }
}
