/**
 * @module webhooks/outcome-log
 * The dispatcher's buffer of attempt outcomes and endpoint failure marks, written to the store in
 * batches.
 */

import { Backoff } from '../core/backoff';
import type { Log } from '../core/log';
import type { AsyncWebhookStore, AttemptRecord } from '../core/ports';
import { isStoreFault } from '../store/faults';

/** Outcomes are written at most this late... */
const FLUSH_DELAY_MS = 10;
/** ...or as soon as this many are waiting. */
const FLUSH_AT = 1000;

export class OutcomeLog {
  private outcomes: AttemptRecord[] = [];
  /** Endpoints whose `failingSince` changed, written with the outcomes. */
  failing: { endpointId: string; since: number | null }[] = [];
  private flushScheduled = false;
  /** Between writes of outcomes the store refused. */
  private readonly flushRetry = new Backoff(50, 5000);
  /** The write in progress; the next waits for it. */
  private writing: Promise<void> | null = null;
  /** `discard()` was called: nothing more is taken or written. */
  private discarded = false;

  constructor(
    private readonly store: AsyncWebhookStore,
    private readonly log: Log,
    /** Called after outcomes were written (they released their deliveries' claims, if any). */
    private readonly onWritten: () => void = () => undefined,
  ) {}

  /** Drops what is buffered and takes nothing more (a dispatcher that plays dead, for tests). */
  discard(): void {
    this.discarded = true;
    this.outcomes = [];
    this.failing = [];
  }

  record(outcome: AttemptRecord, status: AttemptRecord['status'], nextAttemptAt: number | null): void {
    if (this.discarded) return;
    outcome.status = status;
    outcome.nextAttemptAt = nextAttemptAt;
    this.outcomes.push(outcome);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.outcomes.length >= FLUSH_AT && this.writing === null) {
      void this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Outcomes are written a few ms late, many to a transaction: a commit per tick would cost
    // more than the requests. A crash in between only means those deliveries are sent again.
    const timer = setTimeout(
      () => {
        this.flushScheduled = false;
        void this.flush();
      },
      Math.max(this.flushRetry.current, FLUSH_DELAY_MS),
    );
    timer.unref();
  }

  /**
   * Writes buffered attempt outcomes in one transaction; resolves once everything buffered when
   * it was called is written (or, on a store fault, put back for a retry). One write at a time,
   * so outcomes and failure marks land in the order they were recorded. A crash before this only
   * means a delivery is sent again after restart (at least once), never that one is lost.
   */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
    if (this.outcomes.length === 0 && this.failing.length === 0) return;
    const outcomes = this.outcomes;
    const failing = this.failing;
    this.outcomes = [];
    this.failing = [];
    this.writing = this.write(outcomes, failing).finally(() => {
      this.writing = null;
    });
    await this.writing;
  }

  private async write(
    outcomes: AttemptRecord[],
    failing: { endpointId: string; since: number | null }[],
  ): Promise<void> {
    try {
      await this.store.writeOutcomes(outcomes, failing);
      this.flushRetry.reset();
      if (outcomes.length > 0) this.onWritten();
    } catch (error) {
      if (!isStoreFault(error)) {
        // One row no longer fits (its delivery is gone): write the others one by one rather than
        // retry a batch that can never succeed.
        await this.writeOneByOne(outcomes, failing);
        return;
      }
      this.outcomes = outcomes.concat(this.outcomes);
      this.failing = failing.concat(this.failing);
      this.flushRetry.next();
      this.log.error({ err: error }, 'writing webhook attempt outcomes failed; will retry');
      this.scheduleFlush();
    }
  }

  private async writeOneByOne(
    outcomes: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): Promise<void> {
    for (const outcome of outcomes) {
      try {
        await this.store.writeOutcomes([outcome], []);
      } catch (error) {
        this.log.warn(
          { err: error, delivery_id: outcome.deliveryId },
          'dropped the outcome of a vanished delivery',
        );
      }
    }
    try {
      await this.store.writeOutcomes([], failing);
    } catch (error) {
      this.log.error({ err: error }, 'writing webhook endpoint failure marks failed');
    }
    this.onWritten();
  }
}
