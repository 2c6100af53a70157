/**
 * @module connectors/teams/poller
 * Polls linked users' presence with `POST /communications/getPresencesByUserId`, in batches of up
 * to 650 ids, within the tenant's sliding-window budget, pausing for `Retry-After` on 429 and
 * backing off on 5xx and network failures. Users named by a change notification are fetched
 * ahead of the cycle's batches. Every answer goes through the pure mapper; a value it does not
 * know is never guessed: it is logged once and produces no live observation.
 */

import { InProcessRateBuckets } from '../../src/core/coordination';
import type { RateBuckets, RateLimit } from '../../src/core/ports';
import { parseRetryAfter } from '../../src/core/retry-after';
import type { AppToken } from '../../src/oauth/app-token';
import { MAX_IDS_PER_CALL, type TeamsGraphClient, TeamsGraphError, TokenEndpointError } from './client';
import type { TeamsHealth } from './health';
import { chunks, lower, notificationUserId } from './ids';
import { backoffDelay, DEFAULT_BACKOFF_MS, GRAPH_PRESENCE_CALLS, GRAPH_PRESENCE_WINDOW_MS } from './limiter';
import { toTeamsPresence } from './map';
import type { TeamsRuntime } from './runtime';
import type { GraphChangeNotification, GraphPresence } from './types';

/** When a 429 comes without a readable Retry-After. */
const DEFAULT_RETRY_AFTER_MS = 30_000;

type Outcome = 'ok' | 'retry' | 'drop';

/** The TeamsConnectorOptions the poller reads (documented there), with the poll interval checked. */
export interface PollerOptions {
  readonly tenantId: string;
  readonly pollIntervalMs: number;
  readonly reconcileIntervalMs?: number;
  readonly rateLimit?: { readonly calls: number; readonly windowMs: number };
  readonly buckets?: RateBuckets;
  readonly backoffMs?: readonly number[];
  readonly random?: () => number;
  readonly timers?: boolean;
}

export interface PollerDeps {
  /** The app token; `{ force: true }` after Graph refused the one it gave. */
  readonly tokens: AppToken;
  /** Graph with the app token. */
  readonly graph: TeamsGraphClient;
  /** The users a live subscription covers at `now`: they are polled at the reconcile interval. */
  readonly covered: (now: number) => Set<string>;
}

export class PresencePoller {
  private readonly pollIntervalMs: number;
  private readonly reconcileIntervalMs: number;
  private readonly backoffMs: readonly number[];
  private readonly random: (() => number) | undefined;
  /** False: no timers of its own (tests drive it by hand). */
  private readonly timers: boolean;
  /** The tenant's Graph budget: a sliding window, kept where every node polling the tenant spends it. */
  private readonly buckets: RateBuckets;
  private readonly budgetKey: string;
  private readonly rate: RateLimit;

  private queue: string[][] = [];
  private readonly urgent = new Set<string>();
  private nextCycleAt = 0;
  private nextReconcileAt = 0;
  private blockedUntil = 0;
  private deferredUntil = 0;
  private failures = 0;
  private pumping: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly unknownLogged = new Set<string>();

  constructor(
    private readonly rt: TeamsRuntime,
    private readonly health: TeamsHealth,
    options: PollerOptions,
    private readonly deps: PollerDeps,
  ) {
    this.pollIntervalMs = options.pollIntervalMs;
    this.reconcileIntervalMs = Math.max(options.reconcileIntervalMs ?? 10 * 60_000, this.pollIntervalMs);
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.random = options.random;
    this.timers = options.timers !== false;
    this.buckets = options.buckets ?? new InProcessRateBuckets(rt.clock);
    this.budgetKey = `teams:${options.tenantId.toLowerCase()}:presence`;
    this.rate = {
      limit: options.rateLimit?.calls ?? GRAPH_PRESENCE_CALLS,
      windowMs: options.rateLimit?.windowMs ?? GRAPH_PRESENCE_WINDOW_MS,
    };
    if (!Number.isInteger(this.rate.limit) || this.rate.limit < 1)
      throw new RangeError('limit must be a positive integer');
    if (!(this.rate.windowMs > 0)) throw new RangeError('windowMs must be positive');
  }

  /** The drain under way, if any. */
  get draining(): Promise<void> | null {
    return this.pumping;
  }

  /** See TeamsConnector.tick. */
  tick(): Promise<void> {
    if (this.rt.ctx === null || this.rt.stopped) return Promise.resolve();
    const now = this.rt.clock.now();
    if (this.queue.length === 0 && now >= this.nextCycleAt && now >= this.blockedUntil) this.startCycle(now);
    return this.rt.track(this.pump());
  }

  /** See TeamsConnector.handleChangeNotifications. */
  fetchNotified(items: readonly GraphChangeNotification[]): Promise<void> {
    if (this.rt.ctx === null || this.rt.stopped) return Promise.resolve();
    const index = this.rt.index();
    let added = 0;
    for (const item of items) {
      const id = notificationUserId(item);
      if (id === null || !index.has(id)) continue;
      this.urgent.add(id);
      added += 1;
    }
    if (added === 0) return Promise.resolve();
    return this.rt.track(
      this.pump().finally(() => {
        // Held back by the budget or a Retry-After: wake the loop when that ends, not at the next cycle.
        if (this.urgent.size > 0 && this.timers && !this.rt.stopped) {
          this.arm(this.nextWakeAt(this.rt.clock.now()) - this.rt.clock.now());
        }
      }),
    );
  }

  /** Fetches these users ahead of the cycle's batches (a subscription missed notifications). */
  fetchSoon(ids: readonly string[]): void {
    for (const id of ids) this.urgent.add(id);
    void this.rt.track(this.pump());
  }

  private startCycle(now: number): void {
    const index = this.rt.index();
    const covered = this.deps.covered(now);
    const reconcile = now >= this.nextReconcileAt;
    if (reconcile) this.nextReconcileAt = now + this.reconcileIntervalMs;
    const ids: string[] = [];
    const ctx = this.rt.ctx;
    for (const [id, accounts] of index)
      // Another node polls the accounts whose shares it holds; notified users are fetched by
      // whichever node received the notification (fetchNotified).
      if ((reconcile || !covered.has(id)) && accounts.some((a) => ctx?.polls?.(a) !== false)) ids.push(id);
    this.queue = chunks(ids, MAX_IDS_PER_CALL);
    this.nextCycleAt = now + this.pollIntervalMs;
  }

  /** One drain at a time; work added while it runs is picked up by the running one. */
  private pump(): Promise<void> {
    this.pumping ??= this.drain().finally(() => {
      this.pumping = null;
    });
    return this.pumping;
  }

  private async drain(): Promise<void> {
    while (!this.rt.stopped) {
      const now = this.rt.clock.now();
      if (now < this.blockedUntil) return;
      const fromUrgent = this.urgent.size > 0;
      const batch = fromUrgent ? [...this.urgent].slice(0, MAX_IDS_PER_CALL) : this.queue[0];
      if (batch === undefined || batch.length === 0) return;
      let wait: number;
      try {
        wait = await this.buckets.take(this.budgetKey, this.rate);
      } catch (e) {
        // The shared budget cannot be read (Redis down): backed off like a failed call.
        this.pollFailed(e);
        return;
      }
      if (wait > 0) {
        this.deferredUntil = now + wait;
        this.rt.log.debug({ platform: 'teams', waitMs: wait }, 'Graph presence budget used up; waiting');
        return;
      }
      const outcome = await this.fetchBatch(batch);
      if (outcome === 'retry') return;
      if (fromUrgent) for (const id of batch) this.urgent.delete(id);
      else this.queue.shift();
    }
  }

  private async fetchBatch(ids: readonly string[]): Promise<Outcome> {
    let presences: GraphPresence[];
    try {
      presences = await this.withAppToken(() => this.deps.graph.getPresencesByUserId(ids));
    } catch (e) {
      return this.pollFailed(e);
    }
    this.failures = 0;
    this.health.pollSucceeded(this.rt.clock.now());
    await this.reportAll(presences);
    return 'ok';
  }

  /** Runs a call with the app token; after a 401 the cached token is dropped and the call retried once. */
  private async withAppToken<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof TeamsGraphError) || e.kind !== 'unauthorized') throw e;
      // Forced: the cached token is dropped and a new one fetched before the retry uses it.
      await this.deps.tokens({ force: true });
      return call();
    }
  }

  private pollFailed(e: unknown): Outcome {
    const now = this.rt.clock.now();
    const fail = (level: 'down' | 'degraded', message: string, waitMs: number): Outcome => {
      this.blockedUntil = now + waitMs;
      this.health.pollFailed(level, message);
      this.rt.log[level === 'down' ? 'error' : 'warn']({ platform: 'teams', retryInMs: waitMs }, message);
      return 'retry';
    };
    if (e instanceof TokenEndpointError) {
      this.failures += 1;
      const wait = backoffDelay(this.failures, this.backoffMs, this.random);
      if (e.transient) return fail('degraded', `${e.message}; retrying`, wait);
      return fail(
        'down',
        `${e.message}; check MS_TENANT_ID, MS_CLIENT_ID and MS_CLIENT_SECRET (an expired or deleted secret must be replaced)`,
        wait,
      );
    }
    if (e instanceof TeamsGraphError) {
      switch (e.kind) {
        case 'rate_limited': {
          const wait = parseRetryAfter(e.retryAfter, now) ?? DEFAULT_RETRY_AFTER_MS;
          return fail('degraded', `${e.message}; pausing ${Math.ceil(wait / 1000)} s as Graph asked`, wait);
        }
        case 'server':
        case 'network': {
          this.failures += 1;
          const wait = Math.max(
            backoffDelay(this.failures, this.backoffMs, this.random),
            parseRetryAfter(e.retryAfter, now) ?? 0,
          );
          return fail(
            'degraded',
            `${e.message}; retry ${this.failures} in ${Math.ceil(wait / 1000)} s`,
            wait,
          );
        }
        case 'unauthorized':
          this.failures += 1;
          return fail(
            'down',
            `${e.message}: Graph refused a fresh app token; check the app registration and its secret`,
            backoffDelay(this.failures, this.backoffMs, this.random),
          );
        case 'forbidden':
          this.failures += 1;
          return fail(
            'down',
            `${e.message}: the app needs the application permission Presence.Read.All with admin consent`,
            backoffDelay(this.failures, this.backoffMs, this.random),
          );
        default: {
          // A 400 for one batch (an id Graph does not accept) must not stall every later batch.
          const message = `${e.message}; batch skipped`;
          this.health.error(message);
          this.rt.log.error({ platform: 'teams' }, message);
          return 'drop';
        }
      }
    }
    this.failures += 1;
    const message = `Teams poll failed: ${e instanceof Error ? e.message : String(e)}`;
    return fail('degraded', message, backoffDelay(this.failures, this.backoffMs, this.random));
  }

  private async reportAll(presences: readonly GraphPresence[]): Promise<void> {
    const ctx = this.rt.ctx;
    if (ctx === null) return;
    const now = this.rt.clock.now();
    const index = this.rt.index();
    const covered = this.deps.covered(now);
    const acks: Promise<boolean>[] = [];
    for (const p of presences) {
      if (typeof p?.id !== 'string' || typeof p.availability !== 'string' || typeof p.activity !== 'string') {
        this.rt.logOnce('malformed', 'Graph returned a presence without id, availability or activity');
        continue;
      }
      const accounts = index.get(lower(p.id));
      if (accounts === undefined) continue;
      const mapped = toTeamsPresence(p, now);
      if (mapped === null) {
        this.logUnknown(p);
        continue;
      }
      const ttlMs = this.ttlFor(covered.has(lower(p.id)) ? this.reconcileIntervalMs : this.pollIntervalMs);
      for (const account of accounts) acks.push(ctx.report({ account, presence: mapped, ttlMs }));
    }
    const results = await Promise.allSettled(acks);
    for (const r of results) {
      if (r.status === 'rejected')
        this.rt.log.error({ platform: 'teams', err: r.reason as unknown }, 'report failed');
    }
  }

  /**
   * A report lives for two intervals plus a minute: one missed poll does not make the user look
   * stale, two do.
   */
  private ttlFor(intervalMs: number): number {
    return 2 * intervalMs + 60_000;
  }

  private logUnknown(p: GraphPresence): void {
    const key = `${lower(p.availability)}/${lower(p.activity)}`;
    if (this.unknownLogged.has(key)) return;
    this.unknownLogged.add(key);
    this.rt.log.warn(
      { platform: 'teams', availability: p.availability, activity: p.activity },
      'Teams presence value not known to the mapper: not guessed, no live observation from it (logged once per value)',
    );
  }

  nextWakeAt(now: number): number {
    const pending = this.queue.length > 0 || this.urgent.size > 0;
    const at = pending
      ? Math.max(this.blockedUntil, this.deferredUntil)
      : Math.max(this.nextCycleAt, this.blockedUntil);
    return Math.max(at, now);
  }

  /** The real-time loop: sleeps until the next thing is due, by the injected clock's reckoning. */
  arm(delayMs: number): void {
    if (this.rt.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.tick()
          .catch((e: unknown) => this.rt.log.error({ platform: 'teams', err: e }, 'Teams poll loop failed'))
          .finally(() => this.arm(this.nextWakeAt(this.rt.clock.now()) - this.rt.clock.now()));
      },
      Math.min(Math.max(delayMs, 100), this.pollIntervalMs),
    );
    this.timer.unref();
  }

  disarm(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
}
