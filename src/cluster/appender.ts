/**
 * @module cluster/appender
 * This node's side of the shared change log: a change sink (core/changes.ts) that appends every
 * committed change to the Redis log, after its commit and in commit order.
 *
 * - Before: a commit goes ahead only while the Redis connection is up (`stage` checks it, no
 *   round trip), so a write during a Redis outage is refused with 503 before anything is
 *   committed (store/faults.ts `change_log_unavailable`).
 * - After: the change is durable (its version and its webhook event are in the database), so it
 *   must reach the log whatever happens. Appends go one at a time, in commit order; one that
 *   fails is retried, with back-off, until it lands, and those behind it wait. An append that
 *   failed but had landed is not logged twice (the log skips a version it already holds).
 */

import { Backoff } from '../core/backoff';
import type { ChangeSink, PresenceChange, StoreTx } from '../core/changes';
import type { Log } from '../core/log';
import type { RedisHotState } from '../store/redis';
import { changeEntry, encodeEntry, type ClusterEntry } from './entry';

/** Back-off between attempts of an append that failed. */
const RETRY_FIRST_MS = 20;
const RETRY_MAX_MS = 1_000;

/** Thrown inside a commit while Redis is down: the commit is refused (503), nothing is written. */
export class ChangeLogUnavailableError extends Error {
  override name = 'ChangeLogUnavailableError';
  constructor() {
    super('the shared change log (Redis) is unavailable');
  }
}

interface Pending {
  readonly userId: string;
  /** 0 for a deletion. */
  readonly version: number;
  readonly aggregate: string;
  readonly entry: string;
}

export class Appender implements ChangeSink {
  readonly wantsState = true;
  private readonly queue: Pending[] = [];
  private pumping = false;
  private readonly backoff = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  /** Set while appends fail (the first failure's time is not kept: readiness says "now"). */
  failing = false;
  /** Appends that landed, for tests and /metrics. */
  appended = 0;

  constructor(
    private readonly hot: RedisHotState,
    private readonly node: string,
    private readonly log: Log,
  ) {}

  /** Inside the commit: refuses it while Redis is down, before anything is written. */
  stage(_tx: StoreTx, _changes: readonly PresenceChange[]): void {
    this.check();
  }

  /** Throws `ChangeLogUnavailableError` while the connection is down. */
  check(): void {
    const refusal = this.refusal();
    if (refusal !== null) throw refusal;
  }

  /** Asked before a commit with changes: its users without one are then committed apart. */
  refusal(): Error | null {
    return this.hot.connected ? null : new ChangeLogUnavailableError();
  }

  committed(changes: readonly PresenceChange[]): void {
    for (const c of changes) {
      const entry = changeEntry(this.node, c);
      this.queue.push({
        userId: c.userId,
        version: c.version,
        aggregate: JSON.stringify(entry.state.aggregate),
        entry: encodeEntry(entry),
      });
    }
    this.pump();
  }

  /** A user's deletion, once committed. */
  deleted(userId: string): void {
    const entry: ClusterEntry = { kind: 'delete', node: this.node, userId };
    this.queue.push({ userId, version: 0, aggregate: '', entry: encodeEntry(entry) });
    this.pump();
  }

  /** Appends not landed yet. */
  get backlog(): number {
    return this.queue.length;
  }

  private pump(): void {
    if (this.pumping || this.timer !== null || this.stopped) return;
    this.pumping = true;
    void this.drain().finally(() => {
      this.pumping = false;
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0 && !this.stopped) {
      const p = this.queue[0]!;
      try {
        if (p.version === 0) await this.hot.appendDeletion(p.userId, p.entry);
        else await this.hot.appendChange(p.userId, p.version, p.aggregate, p.entry);
      } catch (error) {
        if (!this.failing)
          this.log.error({ err: error }, 'a committed change could not reach the change log; retrying');
        this.failing = true;
        this.timer = setTimeout(() => {
          this.timer = null;
          this.pump();
        }, this.backoff.next());
        this.timer.unref();
        return;
      }
      this.queue.shift();
      this.appended += 1;
      if (this.failing) this.log.info({ backlog: this.queue.length }, 'the change log takes appends again');
      this.failing = false;
      this.backoff.reset();
    }
  }

  /** Waits (at most `limitMs`) for the backlog to land; stops retrying after. */
  async stop(limitMs = 2_000): Promise<void> {
    // Counted in 10 ms waits, not read from a clock: a bound, not a measurement.
    for (let waited = 0; this.queue.length > 0 && waited < limitMs; waited += 10)
      await new Promise((r) => setTimeout(r, 10));
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.queue.length > 0)
      this.log.error({ backlog: this.queue.length }, 'stopped with committed changes not in the change log');
  }
}
