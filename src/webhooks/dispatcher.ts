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
 *
 * Claim mode (several nodes on one PostgreSQL outbox, `claims` set; main.ts turns it on with the
 * cluster, PRESENCE_REDIS_URL): each node sends only deliveries it claimed (`DeliveryClaims`,
 * core/ports/webhook-store.ts), so no node loads another's backlog and a dead node's deliveries
 * are taken over.
 * - The window of an endpoint is fed by `claimDue` instead of `loadPending` and `enqueue`: a claim
 *   round asks, per enabled endpoint not paused by a Retry-After, for up to
 *   `maxInFlightPerEndpoint` minus what this node holds, so whatever it claims it can send at once
 *   and nothing waits here that another node could send. Rounds run one at a time: in the turn
 *   after each of this node's commits (it claims the deliveries it just wrote, so the latency
 *   stays one query), after outcomes are written (they free the next delivery of their key), and
 *   every `claimEveryMs` (500 ms; other nodes' commits, retries coming due, ended leases).
 * - Order: `claimDue` hands out only the first pending delivery of each ordering key, and only
 *   when no one holds a live claim on it, so a FIFO here holds at most that head, and the next
 *   delivery of a user becomes claimable (by any node) only once the head's outcome is written.
 *   Two nodes never send two events of one user out of order. A failed attempt's outcome
 *   releases its claim: the retry is claimed again when due, by whichever node asks first.
 * - Coalescing reads the rest of a claimed head's run from the store (no one else can claim it)
 *   and merges it into the head (`EndpointQueue.coalesceClaimed`).
 * - The claims held (`held`: claimed and in memory, until the attempt ends) are renewed every
 *   `renewEveryMs` (a third of the 30 s lease), so a request in flight longer than the lease stays
 *   this node's; one the store says this node lost is dropped from memory (and its outcome not
 *   written). The outcome write releases a claim.
 * - A graceful stop hands over at once: requests cut off after the grace are not counted as
 *   attempts, and every claim still held is released, so another node's next round takes them.
 * - A node that dies keeps its claims until the lease ends; then another node claims them. A
 *   delivery may so be sent twice around a death (at least once), never lost: its row stays
 *   pending until an outcome is written.
 * One node (SQLite, or PostgreSQL without the cluster) takes no claims: everything above is off.
 */

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';

import { Agent } from 'undici';

import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import { parseRetryAfter } from '../core/retry-after';
import { describeError, httpError, request } from './attempt';
import { EndpointQueue, itemOfRow, type Fifo, type Item, type StagedDelivery } from './dispatch-queue';
import { OutcomeLog } from './outcome-log';
import { retryDelay } from './retry';
import { guardedLookup } from './ssrf';
import type {
  AsyncWebhookStore,
  AttemptRecord,
  ClaimedRow,
  DeliveryClaims,
  EndpointRecord,
} from '../core/ports';

export type { StagedDelivery } from './dispatch-queue';

/** Claim mode (several nodes on one outbox): see the module comment. */
export interface ClaimSettings {
  /** The outbox's claims (the PostgreSQL webhook store). */
  readonly store: DeliveryClaims;
  /** This node's name on its claims (default: random per dispatcher, so per start). */
  readonly node?: string;
  /** How long a claim lasts unless renewed: a dead node's deliveries wait this long (default 30 s). */
  readonly leaseMs?: number;
  /** Real time between claim rounds besides those after commits and outcomes (default 500 ms). */
  readonly claimEveryMs?: number;
  /** Real time between renewals of the claims held (default a third of the lease). */
  readonly renewEveryMs?: number;
}

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
  /** Claim mode (several nodes); absent or null: this node sends every pending delivery. */
  readonly claims?: ClaimSettings | null;
}

interface Claiming {
  readonly store: DeliveryClaims;
  readonly node: string;
  readonly leaseMs: number;
  readonly claimEveryMs: number;
  readonly renewEveryMs: number;
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
  /** Claim mode's settings, or null (one node). */
  private readonly claiming: Claiming | null;
  /** Claim mode: the deliveries this node claimed and holds in memory, until their attempt ends: id → endpoint. */
  private readonly held = new Map<number, string>();
  private claimRunning = false;
  private claimAgain = false;
  private claimScheduled = false;
  private claimTimer: NodeJS.Timeout | null = null;
  private renewTimer: NodeJS.Timeout | null = null;
  /** `abandon()` was called: nothing more is written. */
  private abandoned = false;

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
    const c = options.claims ?? null;
    const leaseMs = c?.leaseMs ?? 30_000;
    this.claiming =
      c === null
        ? null
        : {
            store: c.store,
            node: c.node ?? `webhooks-${randomBytes(6).toString('hex')}`,
            leaseMs,
            claimEveryMs: c.claimEveryMs ?? 500,
            renewEveryMs: c.renewEveryMs ?? Math.max(1, Math.floor(leaseMs / 3)),
          };
    // In claim mode a written outcome frees the next delivery of its ordering key (and a slot):
    // claim again at once.
    this.outcomes = new OutcomeLog(this.store, this.log, () => this.scheduleClaim());
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
    if (this.claiming === null) this.refill(q);
    else {
      q.spilled = false; // never read by loadPending: fed by claims
      this.scheduleClaim();
    }
  }

  removeEndpoint(id: string): void {
    const q = this.queues.get(id);
    if (q === undefined) return;
    q.removed = true;
    this.queues.delete(id);
    this.dropHeld(id); // its rows went with it
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
    if (this.claiming !== null) {
      // Disabled: failPending gave up its rows and released their claims. Re-enabled: claimed anew.
      q.spilled = false;
      this.dropHeld(id);
      this.scheduleClaim();
    } else if (q.ep.enabled) this.refill(q);
    this.schedulePump();
  }

  /**
   * Reads the endpoints' pending deliveries from the store again: for rows written outside the
   * intake (a replay), committed by now.
   */
  reload(endpointIds: Iterable<string>): void {
    if (this.claiming !== null) {
      this.scheduleClaim();
      return;
    }
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
      for (const id of ids) this.held.delete(id);
    }
    this.schedulePump();
  }

  // ---------------------------------------------------------------- intake

  /** Takes committed deliveries into memory and wakes the pump. */
  enqueue(staged: readonly StagedDelivery[]): void {
    if (staged.length === 0) return;
    if (this.claiming !== null) {
      // Committed, so claimable now: this node claims what it just wrote (unless another node's
      // round came first), in the next turn.
      this.scheduleClaim();
      return;
    }
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

  // ---------------------------------------------------------------- claim mode

  /** Claim mode: a claim round in the next turn (one runs at a time; one asked meanwhile follows). */
  private scheduleClaim(): void {
    if (this.claiming === null || !this.running || this.claimScheduled) return;
    this.claimScheduled = true;
    setImmediate(() => {
      this.claimScheduled = false;
      this.track(this.claimRound());
    });
  }

  /**
   * Claims due deliveries for every enabled endpoint with room (up to `maxInFlightPerEndpoint`
   * held, so that what this node claims it can send at once and nothing waits here that another
   * node could send), and takes them into the endpoint's window. Never rejects.
   */
  private async claimRound(): Promise<void> {
    const c = this.claiming;
    if (c === null) return;
    if (this.claimRunning) {
      this.claimAgain = true;
      return;
    }
    this.claimRunning = true;
    let took = false;
    try {
      do {
        this.claimAgain = false;
        for (const q of [...this.queues.values()]) {
          if (this.stopped) return;
          const now = this.clock.now();
          if (!q.ep.enabled || q.removed || q.pausedUntil > now) continue;
          const room = this.maxInFlightPerEndpoint - q.count;
          if (room <= 0) continue;
          const epoch = q.epoch;
          let rows: ClaimedRow[];
          try {
            rows = await c.store.claimDue(c.node, now, c.leaseMs, room, [q.ep.id]);
          } catch (error) {
            this.log.error({ err: error, endpoint_id: q.ep.id }, 'claiming webhook deliveries failed');
            return; // the next round (timer, commit, outcome) tries again
          }
          if (this.stopped || q.removed || epoch !== q.epoch) {
            // Stopped, deleted or reset while claiming: not ours to send; hand them back.
            await this.releaseQuietly(rows.map((r) => r.id));
            this.claimAgain = !this.stopped;
            continue;
          }
          for (const r of rows) {
            if (this.held.has(r.id)) continue; // held already (its lease had ended and it was re-claimed)
            this.held.set(r.id, q.ep.id);
            q.add(itemOfRow(r));
            took = true;
          }
        }
      } while (this.claimAgain && !this.stopped);
    } finally {
      this.claimRunning = false;
      if (took) this.schedulePump();
    }
  }

  /**
   * Moves the end of every claim held to now + the lease, so a request in flight longer than the
   * lease (or a delivery waiting out a Retry-After pause) stays this node's. A claim the store no
   * longer has for this node (its lease ended while this node stalled and another node claimed
   * it, or its row was given up) is dropped from memory: the other node sends it.
   */
  async renewClaims(): Promise<void> {
    const c = this.claiming;
    if (c === null || this.held.size === 0 || this.abandoned) return;
    const ids = [...this.held.keys()];
    let kept: number[];
    try {
      kept = await c.store.renewClaims(c.node, ids, this.clock.now() + c.leaseMs);
    } catch (error) {
      this.log.error({ err: error }, 'renewing webhook delivery claims failed; will retry');
      return;
    }
    const still = new Set(kept);
    const lost = new Map<string, Set<number>>();
    for (const id of ids) {
      const endpointId = this.held.get(id);
      if (still.has(id) || endpointId === undefined) continue; // renewed, or its attempt ended meanwhile
      let set = lost.get(endpointId);
      if (set === undefined) lost.set(endpointId, (set = new Set()));
      set.add(id);
    }
    if (lost.size === 0) return;
    this.log.warn(
      { deliveries: [...lost.values()].reduce((n, ids) => n + ids.size, 0) },
      'webhook delivery claims lost (their lease ended); another node sends them',
    );
    this.forget(lost);
  }

  /** Forgets the claims held on an endpoint's deliveries (its rows went, or were given up). */
  private dropHeld(endpointId: string): void {
    for (const [id, ep] of this.held) if (ep === endpointId) this.held.delete(id);
  }

  private async releaseQuietly(ids: readonly number[]): Promise<void> {
    if (ids.length === 0 || this.claiming === null) return;
    try {
      await this.claiming.store.releaseClaims(this.claiming.node, ids);
    } catch (error) {
      // Not handed over: they are claimed again once their lease ends.
      this.log.error({ err: error, deliveries: ids.length }, 'releasing webhook delivery claims failed');
    }
  }

  // ---------------------------------------------------------------- the pump

  /** Production mode: pump on commits and completions, and on a timer for retries. */
  start(): void {
    if (this.stopped) throw new Error('a stopped webhook dispatcher cannot start again');
    this.running = true;
    const c = this.claiming;
    if (c !== null && this.claimTimer === null) {
      // Other nodes' commits, retries coming due and ended leases are found by this round.
      this.claimTimer = setInterval(() => this.scheduleClaim(), c.claimEveryMs);
      this.claimTimer.unref();
      this.renewTimer = setInterval(() => this.track(this.renewClaims()), c.renewEveryMs);
      this.renewTimer.unref();
      this.scheduleClaim();
    }
    this.schedulePump();
  }

  /** Claim mode's timers off. */
  private stopClaimTimers(): void {
    if (this.claimTimer !== null) clearInterval(this.claimTimer);
    if (this.renewTimer !== null) clearInterval(this.renewTimer);
    this.claimTimer = null;
    this.renewTimer = null;
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
    if (this.claiming === null && q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
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
      item =
        this.claiming === null
          ? await q.coalesce(this.store, fifo, head, now)
          : await q.coalesceClaimed(this.store, this.claiming.store, fifo, head, now);
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
    if (item === null) this.held.delete(head.id); // cancelled out: coalesced, its claim released
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
    if (this.abandoned) return; // a "dead" node writes nothing
    if (this.claiming !== null && this.stopped && statusCode === null) {
      // Cut off by a graceful stop: handed over as it is, not counted as an attempt; `stop`
      // releases its claim, so another node sends it at once (the receiver may have had it
      // already: at least once).
      return;
    }
    item.attempts += 1;
    // Claim mode: the attempt is over; its outcome releases the claim once written.
    this.held.delete(item.id);
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
        // Claim mode: the outcome releases the claim, so the retry is claimed again when due, by
        // whichever node comes first (still the head of its key: the order holds).
        if (this.claiming !== null) q.drop(fifo);
      }
    }
    q.requeue(fifo);
    if (this.claiming === null && q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
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
      if (this.claiming !== null) {
        // Outcomes written release their claims and free the next of each key; then claim.
        await this.flushOutcomes();
        if (this.stopped) break;
        await this.claimRound();
      }
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
    this.stopClaimTimers();
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
    // Claim mode: hand over at once what was claimed and not sent (the attempts cut off above
    // released theirs with their outcomes), so another node claims it at its next round.
    const held = [...this.held.keys()];
    this.held.clear();
    await this.releaseQuietly(held);
  }

  /**
   * Stops at once without writing anything more: no outcome, no release, no renewal; requests in
   * flight are cut off. What a node that dies leaves behind (its claims end with their lease),
   * for tests of the takeover.
   */
  async abandon(): Promise<void> {
    if (this.stopped) return;
    this.abandoned = true;
    this.stopped = true;
    this.running = false;
    this.stopClaimTimers();
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.held.clear();
    this.outcomes.discard();
    await this.agent.destroy();
    await this.drained();
    await this.settled();
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
