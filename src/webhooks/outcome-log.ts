/**
 * @module webhooks/outcome-log
 * The dispatcher's buffer of attempt outcomes and endpoint failure marks, written to the store in
 * batches.
 */

import type { Log } from '../core/log';
import type { AttemptRecord, WebhookStore } from '../core/ports';

/** Outcomes are written at most this late... */
const FLUSH_DELAY_MS = 10;
/** ...or as soon as this many are waiting. */
const FLUSH_AT = 1000;

export class OutcomeLog {
  private outcomes: AttemptRecord[] = [];
  /** Endpoints whose `failingSince` changed, written with the outcomes. */
  failing: { endpointId: string; since: number | null }[] = [];
  private flushScheduled = false;
  private flushRetryMs = 0;

  constructor(
    private readonly store: WebhookStore,
    private readonly log: Log,
  ) {}

  record(outcome: AttemptRecord, status: AttemptRecord['status'], nextAttemptAt: number | null): void {
    outcome.status = status;
    outcome.nextAttemptAt = nextAttemptAt;
    this.outcomes.push(outcome);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.outcomes.length >= FLUSH_AT) {
      this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Outcomes are written a few ms late, many to a transaction: a commit per tick would cost
    // more than the requests. A crash in between only means those deliveries are sent again.
    const timer = setTimeout(
      () => {
        this.flushScheduled = false;
        this.flush();
      },
      Math.max(this.flushRetryMs, FLUSH_DELAY_MS),
    );
    timer.unref();
  }

  /**
   * Writes buffered attempt outcomes in one transaction. A crash before this only means a
   * delivery is sent again after restart (at least once), never that one is lost.
   */
  flush(): void {
    if (this.outcomes.length === 0 && this.failing.length === 0) return;
    const outcomes = this.outcomes;
    const failing = this.failing;
    this.outcomes = [];
    this.failing = [];
    try {
      this.store.writeOutcomes(outcomes, failing);
      this.flushRetryMs = 0;
    } catch (error) {
      if (String((error as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT')) {
        // One row no longer fits (its delivery is gone): write the others one by one rather than
        // retry a batch that can never succeed.
        this.writeOneByOne(outcomes, failing);
        return;
      }
      this.outcomes = outcomes.concat(this.outcomes);
      this.failing = failing.concat(this.failing);
      this.flushRetryMs = Math.min(Math.max(this.flushRetryMs * 2, 50), 5000);
      this.log.error({ err: error }, 'writing webhook attempt outcomes failed; will retry');
      this.scheduleFlush();
    }
  }

  private writeOneByOne(
    outcomes: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): void {
    for (const outcome of outcomes) {
      try {
        this.store.writeOutcomes([outcome], []);
      } catch (error) {
        this.log.warn(
          { err: error, delivery_id: outcome.deliveryId },
          'dropped the outcome of a vanished delivery',
        );
      }
    }
    try {
      this.store.writeOutcomes([], failing);
    } catch (error) {
      this.log.error({ err: error }, 'writing webhook endpoint failure marks failed');
    }
  }
}
