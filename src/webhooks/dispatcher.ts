/**
 * @module webhooks/dispatcher
 * The delivery worker. The outbox in the store is the truth; this keeps a window of it in memory so
 * that sending needs no SELECT per delivery, and writes outcomes back in batches.
 *
 * Shape of the state, per endpoint (independent of every other endpoint):
 * - one FIFO per ordering key (`u:<user_id>` for presence, `k:<platform>` for connectors,
 *   ...). Only the head of a FIFO is ever in flight, so a later event for a user is never sent
 *   before an earlier one that is still being retried (head-of-line per endpoint and user), while
 *   other users' FIFOs carry on.
 * - a min-heap of idle FIFOs by the time their head may be tried (retry time, coalescing window);
 * - at most `maxInFlightPerEndpoint` requests at once, so one slow endpoint holds only its own
 *   slots; a dead one's retries wait in its own heap;
 * - at most `maxQueuedPerEndpoint` deliveries in memory. Past that the endpoint "spills": new
 *   deliveries stay only in the store and are loaded, in id order, as the window drains. The window is
 *   always a prefix (by id) of the endpoint's pending deliveries, so the order within each FIFO stays exact.
 *
 * Time comes from the injected Clock. `runDue()` does one round by hand (tests with FakeClock);
 * `start()` adds the production drive: a pump on the next tick after every commit and completion,
 * and a timer for the next retry.
 */

import { performance } from 'node:perf_hooks';

import { Agent } from 'undici';

import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import { parseRetryAfter } from '../core/retry-after';
import { describeError, httpError, request } from './attempt';
import { EndpointQueue, type Fifo, type Item, type StagedDelivery } from './dispatch-queue';
import { OutcomeLog } from './outcome-log';
import { retryDelay } from './retry';
import { guardedLookup } from './ssrf';
import type { AsyncWebhookStore, AttemptRecord, EndpointRecord } from '../core/ports';

export type { StagedDelivery } from './dispatch-queue';

export interface DispatcherOptions {
  readonly store: AsyncWebhookStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly retrySchedule: readonly number[];
  readonly jitter: number;
  readonly random: () => number;
  readonly timeoutMs: number;
  readonly maxInFlightPerEndpoint: number;
  readonly maxQueuedPerEndpoint: number;
  readonly disableAfterMs: number;
  readonly allowPrivateTargets: boolean;
  readonly userAgent: string;
  /** Called when an endpoint must be disabled (410, or failing too long). */
  readonly onDisable: (endpoint: EndpointRecord, reason: 'gone' | 'failing', detail: string) => Promise<void>;
}

export class Dispatcher {
  private readonly store: AsyncWebhookStore;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly retrySchedule: readonly number[];
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly maxInFlightPerEndpoint: number;
  private readonly maxQueuedPerEndpoint: number;
  private readonly disableAfterMs: number;
  private readonly allowPrivateTargets: boolean;
  private readonly userAgent: string;
  private readonly onDisable: DispatcherOptions['onDisable'];
  private readonly queues = new Map<string, EndpointQueue>();
  private readonly agent: Agent;
  private readonly maxStepMs: number;
  private readonly outcomes: OutcomeLog;
  /** Requests in flight over all endpoints, and who waits for that to reach zero. */
  private sending = 0;
  private drainWaiters: (() => void)[] = [];
  private running = false;
  private stopped = false;
  private pumpScheduled = false;
  private refillScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Number.POSITIVE_INFINITY;
  /** Store reads and writes the pump started and does not wait for (refills, disabling): `runDue` and `idle` do. */
  private readonly background = new Set<Promise<void>>();

  constructor(options: DispatcherOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.log = options.log;
    this.retrySchedule = options.retrySchedule;
    this.jitter = options.jitter;
    this.random = options.random;
    this.timeoutMs = options.timeoutMs;
    this.maxInFlightPerEndpoint = options.maxInFlightPerEndpoint;
    this.maxQueuedPerEndpoint = options.maxQueuedPerEndpoint;
    this.disableAfterMs = options.disableAfterMs;
    this.allowPrivateTargets = options.allowPrivateTargets;
    this.userAgent = options.userAgent;
    this.onDisable = options.onDisable;
    this.maxStepMs = Math.max(0, ...this.retrySchedule);
    this.outcomes = new OutcomeLog(this.store, this.log);
    this.agent = new Agent({
      connect: {
        timeout: this.timeoutMs,
        // The connection-time half of the SSRF guard (DNS rebinding).
        ...(this.allowPrivateTargets ? {} : { lookup: guardedLookup }),
      },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  // ---------------------------------------------------------------- endpoints

  addEndpoint(ep: EndpointRecord): void {
    const q = new EndpointQueue(ep);
    this.queues.set(ep.id, q);
    this.refill(q);
  }

  removeEndpoint(id: string): void {
    const q = this.queues.get(id);
    if (q === undefined) return;
    q.removed = true;
    this.queues.delete(id);
  }

  /**
   * Forgets what is in memory for the endpoint (it was disabled: its pending rows are failed; or
   * re-enabled: it starts over from the store). Outcomes of requests still in flight are recorded but
   * no longer move its queue.
   */
  resetEndpoint(id: string): void {
    const q = this.queues.get(id);
    if (q === undefined) return;
    q.reset();
    if (q.ep.enabled) this.refill(q);
    this.schedulePump();
  }

  /**
   * Reads the endpoints' pending deliveries from the store again: for rows written outside the
   * intake (a replay), committed by now.
   */
  reload(endpointIds: Iterable<string>): void {
    for (const id of endpointIds) {
      const q = this.queues.get(id);
      if (q === undefined) continue;
      q.spilled = true;
      this.refill(q);
    }
  }

  /**
   * Drops deliveries whose rows were deleted (a deleted user's events) from memory. One in flight
   * is marked instead: its outcome is then neither recorded nor retried.
   */
  forget(byEndpoint: ReadonlyMap<string, ReadonlySet<number>>): void {
    for (const [endpointId, ids] of byEndpoint) {
      const q = this.queues.get(endpointId);
      if (q === undefined || ids.size === 0) continue;
      q.forget(ids);
    }
    this.schedulePump();
  }

  // ---------------------------------------------------------------- intake

  /** Takes committed deliveries into memory and wakes the pump. */
  enqueue(staged: readonly StagedDelivery[]): void {
    if (staged.length === 0) return;
    for (const s of staged) {
      const q = this.queues.get(s.endpointId);
      if (q === undefined || !q.ep.enabled) continue;
      q.take(s, this.maxQueuedPerEndpoint);
    }
    this.schedulePump();
  }

  /** Loads pending deliveries after the window from the store while there is room, then pumps. */
  private refill(q: EndpointQueue): void {
    this.track(q.refill(this.store, this.log, this.maxQueuedPerEndpoint).then(() => this.schedulePump()));
  }

  /** Keeps `work` (which never rejects) until it settles, for `runDue` and `idle`. */
  private track(work: Promise<void>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /** Settles once the store work started so far is over. */
  private async settled(): Promise<void> {
    while (this.background.size > 0) await Promise.all([...this.background]);
  }

  // ---------------------------------------------------------------- the pump

  /** Production mode: pump on commits and completions, and on a timer for retries. */
  start(): void {
    if (this.stopped) throw new Error('a stopped webhook dispatcher cannot start again');
    this.running = true;
    this.schedulePump();
  }

  private schedulePump(): void {
    if (!this.running || this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      void this.pump(); // each send settles by itself and never rejects
    });
  }

  private pump(): Promise<void>[] {
    const started: Promise<void>[] = [];
    try {
      const now = this.clock.now();
      for (const q of this.queues.values()) this.pumpEndpoint(q, now, started);
    } catch (error) {
      this.log.error({ err: error }, 'the webhook dispatcher failed a round; it will try again');
    }
    this.armTimer();
    return started;
  }

  private pumpEndpoint(q: EndpointQueue, now: number, started: Promise<void>[]): void {
    if (!q.ep.enabled) return;
    if (q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
    if (q.pausedUntil > now) return;
    const max = this.maxInFlightPerEndpoint;
    while (q.inFlight < max) {
      const top = q.heap.peek();
      if (top === undefined || top.readyAt > now) return;
      const fifo = q.heap.pop()!;
      const item = fifo.first!;
      fifo.busy = true;
      q.inFlight += 1;
      this.sending += 1;
      const coalescing =
        q.ep.coalesceMs > 0 && item.attempts === 0 && !item.replay && item.type === 'presence.changed';
      started.push(
        coalescing ? this.coalesceThenSend(q, fifo, item, now) : this.send(q, fifo, item, q.epoch),
      );
    }
  }

  /**
   * Writes the coalescing of the FIFO's head run, then sends what is left of it. Held as one
   * attempt in flight meanwhile, so the FIFO and the endpoint's slots stay taken.
   */
  private async coalesceThenSend(q: EndpointQueue, fifo: Fifo, head: Item, now: number): Promise<void> {
    const epoch = q.epoch;
    let item: Item | null;
    try {
      item = await q.coalesce(this.store, fifo, head, now);
    } catch (error) {
      this.log.error(
        { err: error, endpoint_id: q.ep.id },
        'coalescing webhook deliveries failed; will retry',
      );
      head.nextAt = now + 1000; // the store failed: try again in a second, uncoalesced if need be
      this.release(q, fifo, epoch);
      return;
    }
    if (item !== null && epoch === q.epoch && !q.removed) return this.send(q, fifo, item, epoch);
    this.release(q, fifo, epoch);
  }

  /** Gives back a FIFO's slot that no request used (its run cancelled out, or the store failed). */
  private release(q: EndpointQueue, fifo: Fifo, epoch: number): void {
    q.inFlight -= 1;
    if (epoch === q.epoch && !q.removed) {
      fifo.busy = false;
      q.requeue(fifo);
    }
    this.done();
    this.schedulePump();
  }

  private armTimer(): void {
    if (!this.running) return;
    let next = Number.POSITIVE_INFINITY;
    for (const q of this.queues.values()) {
      if (!q.ep.enabled || q.inFlight >= this.maxInFlightPerEndpoint) continue;
      const top = q.heap.peek();
      if (top !== undefined) next = Math.min(next, Math.max(top.readyAt, q.pausedUntil));
    }
    if (next >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (!Number.isFinite(next)) return;
    // Capped at a second, so a clock that runs faster than real time (the demo) or jumps is
    // noticed soon.
    const delay = Math.min(Math.max(0, next - this.clock.now()), 1000);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Number.POSITIVE_INFINITY;
      void this.pump();
    }, delay);
    this.timer.unref();
  }

  // ---------------------------------------------------------------- one attempt

  private async send(q: EndpointQueue, fifo: Fifo, item: Item, epoch: number): Promise<void> {
    const startedAt = this.clock.now();
    const timestamp = Math.floor(startedAt / 1000);
    const t0 = performance.now();
    const result = await request(
      this.agent,
      q,
      item,
      startedAt,
      timestamp,
      this.userAgent,
      this.allowPrivateTargets,
    );
    // Once the status is known it decides, whatever happens to the body afterwards.
    let statusCode = result.statusCode;
    let error = statusCode === null ? describeError(result.error, this.timeoutMs) : null;
    const retryAfter = result.retryAfter;
    const latencyMs = Math.round(performance.now() - t0);
    // undici bounds the connect and the wait for headers each by the timeout (a per-request
    // AbortSignal would cost ~7 % of throughput); an answer later than the limit overall is
    // still a failure, so "a 2xx within the timeout" holds exactly.
    if (statusCode !== null && latencyMs > this.timeoutMs) {
      error = `answered ${statusCode} after ${latencyMs} ms, over the ${this.timeoutMs} ms limit`;
      statusCode = null;
    }
    try {
      this.complete(q, fifo, item, epoch, startedAt, statusCode, error, latencyMs, retryAfter);
    } catch (e) {
      this.log.error({ err: e, endpoint_id: q.ep.id }, 'recording a webhook attempt failed');
    }
    this.done();
  }

  /** One request (or coalescing) fewer in flight. */
  private done(): void {
    this.sending -= 1;
    if (this.sending === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** Resolves when no request is in flight. */
  private drained(): Promise<void> {
    if (this.sending === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private complete(
    q: EndpointQueue,
    fifo: Fifo,
    item: Item,
    epoch: number,
    startedAt: number,
    statusCode: number | null,
    error: string | null,
    latencyMs: number,
    retryAfter: string | undefined,
  ): void {
    q.inFlight -= 1;
    item.attempts += 1;
    if (q.removed) return; // its rows went with it
    if (item.forgotten) {
      // Its user was deleted while it was in flight: the row is gone, so is any retry.
      if (epoch === q.epoch) {
        fifo.busy = false;
        q.drop(fifo);
        q.requeue(fifo);
      }
      this.schedulePump();
      return;
    }
    const now = this.clock.now();
    const ok = statusCode !== null && statusCode >= 200 && statusCode < 300;
    const errorText = ok ? null : (error ?? httpError(statusCode!));
    // No closure here: this runs once per delivery, and allocation shows at 10k/s.
    const outcome: AttemptRecord = {
      deliveryId: item.id,
      attempt: item.attempts,
      at: startedAt,
      statusCode,
      latencyMs,
      error: errorText,
      nextAttemptAt: null,
      status: 'delivered',
    };
    if (epoch !== q.epoch) {
      // The endpoint was disabled (its pending rows failed) or reset meanwhile.
      this.outcomes.record(outcome, ok ? 'delivered' : 'failed', null);
      this.schedulePump();
      return;
    }
    fifo.busy = false;
    const ep = q.ep;
    if (ok) {
      this.outcomes.record(outcome, 'delivered', null);
      q.drop(fifo);
      if (ep.failingSince !== null) {
        ep.failingSince = null;
        this.outcomes.failing.push({ endpointId: ep.id, since: null });
      }
    } else if (statusCode === 410) {
      this.outcomes.record(outcome, 'failed', null);
      q.drop(fifo);
      this.disable(ep, 'gone', 'the endpoint answered 410 Gone');
      return;
    } else {
      if (ep.failingSince === null) {
        ep.failingSince = startedAt;
        this.outcomes.failing.push({ endpointId: ep.id, since: startedAt });
      }
      if (now - ep.failingSince >= this.disableAfterMs) {
        this.outcomes.record(outcome, 'failed', null);
        q.drop(fifo);
        const days = Math.round(this.disableAfterMs / 86_400_000);
        this.disable(ep, 'failing', `every attempt failed for ${days} days (last: ${errorText})`);
        return;
      }
      const asked = statusCode === 429 || statusCode === 503 ? parseRetryAfter(retryAfter, now) : null;
      const delay =
        item.attempts >= this.retrySchedule.length
          ? null
          : asked !== null
            ? Math.min(asked, this.maxStepMs)
            : retryDelay(this.retrySchedule, item.attempts, this.jitter, this.random);
      if (delay === null) {
        this.outcomes.record(outcome, 'failed', null); // schedule exhausted: given up; the FIFO moves on
        q.drop(fifo);
      } else {
        item.nextAt = now + delay;
        this.outcomes.record(outcome, 'pending', item.nextAt);
        if (asked !== null) q.pausedUntil = Math.max(q.pausedUntil, item.nextAt);
      }
    }
    q.requeue(fifo);
    if (q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
    this.schedulePump();
  }

  /** Disables an endpoint from the pump (`onDisable` writes it), tracked for `idle`. */
  private disable(ep: EndpointRecord, reason: 'gone' | 'failing', detail: string): void {
    this.track(
      this.onDisable(ep, reason, detail).catch((error: unknown) => {
        this.log.error({ err: error, endpoint_id: ep.id }, 'disabling a webhook endpoint failed');
      }),
    );
  }

  /**
   * Writes buffered attempt outcomes in one transaction. A crash before this only means a
   * delivery is sent again after restart (at least once), never that one is lost.
   */
  flushOutcomes(): Promise<void> {
    return this.outcomes.flush();
  }

  // ---------------------------------------------------------------- driving it by hand

  /**
   * Sends everything due now, waits for those attempts, and repeats while that made more due
   * (the next event of a FIFO). Resolves to the number of attempts made. For tests and tools.
   */
  async runDue(): Promise<number> {
    let attempts = 0;
    for (;;) {
      await this.settled();
      const started = this.pump();
      if (started.length === 0 && this.background.size === 0) break;
      attempts += started.length;
      await Promise.all(started);
    }
    await this.flushOutcomes();
    return attempts;
  }

  /** Resolves when nothing is in flight and nothing is due now. */
  async idle(): Promise<void> {
    for (;;) {
      await this.runDue();
      if (this.sending === 0 && this.background.size === 0) {
        await this.flushOutcomes();
        return;
      }
      await this.drained();
    }
  }

  /**
   * Stops pumping; waits up to `graceMs` for requests in flight, then cuts them off (they count
   * as failed attempts and are retried after the next start). Final: the HTTP agent is closed.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.sending > 0) {
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        this.drained(),
        new Promise<void>((resolve) => {
          timeout = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timeout);
    }
    await this.agent.destroy();
    await this.drained();
    await this.settled();
    await this.flushOutcomes();
  }

  stats(): { queued: number; inFlight: number; spilledEndpoints: number } {
    let queued = 0;
    let inFlight = 0;
    let spilled = 0;
    for (const q of this.queues.values()) {
      queued += q.count;
      inFlight += q.inFlight;
      if (q.spilled) spilled += 1;
    }
    return { queued, inFlight, spilledEndpoints: spilled };
  }
}
