/**
 * @module aggregator/group-commit
 * Durability of the engine's changes. A change is queued; everything queued in one turn of the
 * event loop is committed in one transaction (group commit), and the caller's promise settles
 * after that commit. So "acknowledged" means "on disk", yet a burst costs one transaction, not
 * one per event. The change sinks stage their rows inside that transaction and are told after it.
 *
 * When a commit fails, memory never shows what was not committed. Each user a queued change
 * touches keeps an undo record of its last committed state (taken once per commit, so the hot
 * path pays one small copy per changed user). A lock held by another connection is retried on
 * timers with back-off for up to `commitRetryMs`, the event loop free meanwhile (the SQLite busy
 * wait is kept to milliseconds, see store/db.ts), and reads show the undo record while the change
 * waits. Any other failure, or a lock that outlasts the retries, rolls the queued changes back in
 * memory and rejects their acknowledgements with 503 `unavailable` (store/faults.ts); the next
 * write tries the store again, so service resumes by itself.
 */

import type { PresenceChange } from '../core/changes';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type { PresenceStore, WriteOp } from '../core/ports';
import { classifyStoreError, isStoreFault, StoreUnavailableError, type StoreFault } from '../store/faults';
import type { ChangeSinks } from './change-pipeline';
import { Undo, type UserState } from './user-state';
import type { EngineStats } from './wheel';

export type Ack = Promise<void>;
export const DONE: Ack = Promise.resolve();
const ignore = (): void => undefined;
/** Back-off between commit retries while another connection holds the lock. */
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 250;

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export interface GroupCommitOptions {
  readonly store: PresenceStore;
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
}

export class GroupCommit {
  private ops: WriteOp[] = [];
  /** Changes of the queued ops, for the change sinks once they commit. */
  private queued: PresenceChange[] = [];
  private waiters: Waiter[] = [];
  private pendingAck: Ack | null = null;
  private flushScheduled = false;
  /** Users with an undo record: those the queued ops change. */
  private touched: UserState[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  /** When the queued commit first failed (clock time), while it is being retried. */
  private failingSince: number | null = null;
  /** Why the store last failed to commit; null once a commit succeeds again. */
  private fault: StoreFault | null = null;
  private lastProbeAt = Number.NEGATIVE_INFINITY;
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
    this.ops.push(op);
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
    this.queued.push(c);
  }

  /** Records the user's committed state before queued changes alter it (once per commit). */
  touch(u: UserState): void {
    if (u.undo !== null) return;
    u.undo = new Undo(u, false);
    this.touched.push(u);
  }

  /** Marks a user the queued changes create: a rollback forgets it again. */
  created(u: UserState): void {
    u.undo = new Undo(u, true);
    this.touched.push(u);
  }

  /**
   * The acknowledgement of a public write, taken before anything is committed. A full queue is
   * committed here, at the end of a whole write and never in its middle, so that a refused
   * commit rolls back whole writes only.
   */
  acked(): Ack {
    const ack = this.ack();
    if (this.ops.length >= this.o.maxBatch) this.commitQueued();
    return ack;
  }

  /** The promise that settles when everything queued so far is committed, or is refused. */
  private ack(): Ack {
    if (this.ops.length === 0 && this.waiters.length === 0) return DONE;
    if (this.pendingAck === null) {
      const ack = new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
      });
      // A caller that drops the promise (a connector's fire-and-forget report) must not turn a
      // refused commit into an unhandled rejection; callers that await it still see the error.
      ack.catch(ignore);
      this.pendingAck = ack;
    }
    return this.pendingAck;
  }

  /** Commits what is queued, unless a retry is already scheduled (the queue then joins it). */
  commitQueued(): void {
    if (this.retryTimer === null) this.attempt();
  }

  /**
   * One commit of everything queued, in one transaction. Returns null when it is durable (or
   * nothing was queued), otherwise the fault; the queue is then kept for a retry (another
   * connection's lock, within `commitRetryMs`) or rolled back and its writes refused.
   */
  attempt(): StoreFault | null {
    if (this.ops.length === 0 && this.queued.length === 0) {
      for (const w of this.takeWaiters()) w.resolve();
      return null;
    }
    const ops = this.ops;
    const changes = this.queued;
    const sinks = this.o.sinks;
    this.ops = [];
    this.queued = [];
    try {
      this.o.store.write(
        ops,
        changes.length === 0 || !sinks.staging ? undefined : (tx) => sinks.stage(tx, changes),
      );
    } catch (error) {
      // Back in front of anything queued meanwhile (a sink could have), in order.
      this.ops = ops.concat(this.ops);
      this.queued = changes.concat(this.queued);
      return this.failed(error);
    }
    const waiters = this.takeWaiters();
    for (const u of this.touched) u.undo = null;
    this.touched = [];
    this.endRetries();
    this.healthy();
    for (const w of waiters) w.resolve();
    this.o.stats.changesCommitted += changes.length;
    if (changes.length > 0) sinks.committed(changes);
    return null;
  }

  /**
   * Commits what is queued now, in one transaction. Throws `StoreUnavailableError` when the
   * store refuses it (the queue is then retried or rolled back, as for a group commit).
   */
  flushSync(): void {
    const fault = this.attempt();
    if (fault !== null) throw new StoreUnavailableError(fault);
  }

  /** Before a read from the store: commit what is queued if that can be done now, else read what is committed. */
  flushForRead(): void {
    if (this.retryTimer === null) this.attempt();
  }

  /** The last attempt of a shutdown, not retried: whatever cannot be committed is refused. */
  final(): StoreFault | null {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    return this.attempt();
  }

  private failed(error: unknown): StoreFault {
    const fault = this.noteFault(error);
    const now = this.o.clock.now();
    this.failingSince ??= now;
    if (fault.transient && !this.stopped && now - this.failingSince < this.o.commitRetryMs) {
      if (this.retryTimer === null) {
        this.retryDelayMs = Math.min(Math.max(this.retryDelayMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.attempt();
        }, this.retryDelayMs);
        this.retryTimer.unref();
      }
      return fault;
    }
    this.rollBack(fault);
    return fault;
  }

  /**
   * Forgets everything queued: each touched user gets its committed state back, users the queue
   * created are gone again, and every waiting write is refused with the fault.
   */
  private rollBack(fault: StoreFault): void {
    const touched = this.touched;
    const waiters = this.takeWaiters();
    const dropped = this.queued.length;
    this.touched = [];
    this.ops = [];
    this.queued = [];
    this.endRetries();
    for (const u of touched) this.o.restore(u);
    // Refused writes are worth a warning; the sweep's expiries, found again at every sweep while
    // the fault lasts, only at debug (the fault itself was logged once).
    const summary = { reason: fault.reason, users: touched.length, changes: dropped, writes: waiters.length };
    if (waiters.length > 0) this.o.log.warn(summary, 'rolled back changes the store could not commit');
    else this.o.log.debug(summary, 'rolled back changes the store could not commit');
    const refusal = new StoreUnavailableError(fault);
    for (const w of waiters) w.reject(refusal);
  }

  private endRetries(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryDelayMs = 0;
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
   * Runs a synchronous store call of a write outside the group commit (users, accounts). A
   * SQLite failure is noted like a failed commit and refused with 503; anything else is a bug.
   */
  guarded<T>(call: () => T): T {
    let result: T;
    try {
      result = call();
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      throw new StoreUnavailableError(this.noteFault(error));
    }
    return result;
  }

  /**
   * Why the store cannot commit, or null when it can. While it cannot, and no commit is being
   * retried anyway, a probe commit is tried at most every `probeIntervalMs`, so that readiness
   * comes back once the fault is gone even when no write arrives to find out.
   */
  storeFault(): StoreFault | null {
    if (this.fault === null || this.retryTimer !== null) return this.fault;
    const now = this.o.clock.now();
    if (now - this.lastProbeAt >= this.o.probeIntervalMs) {
      this.lastProbeAt = now;
      try {
        this.o.store.probe(now);
        this.healthy();
      } catch (error) {
        this.noteFault(error);
      }
    }
    return this.fault;
  }

  private takeWaiters(): Waiter[] {
    const waiters = this.waiters;
    this.waiters = [];
    this.pendingAck = null;
    return waiters;
  }
}
