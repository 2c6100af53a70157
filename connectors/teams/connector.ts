/**
 * @module connectors/teams/connector
 * The Microsoft Teams connector: polls linked users' presence through Microsoft Graph with the
 * app's own token, and, for users whose delegated connection gives a token, keeps presence
 * change-notification subscriptions alive so that changes arrive within seconds.
 *
 * - Polling: `POST /communications/getPresencesByUserId` in batches of up to 650 ids, at most
 *   1,500 calls per 30 s for the tenant (a sliding window), pausing for `Retry-After` on 429 and
 *   backing off on 5xx and network failures. Every answer goes through the pure mapper; a value
 *   it does not know is never guessed: it is logged once and produces no live observation.
 * - Subscriptions: `/communications/presences?$filter=id in (…)` for up to 650 delegated users
 *   each, owned by one of those users (Graph allows one presence subscription per user per app),
 *   at most 60 minutes long, renewed ahead of expiry from a node-cron schedule. Basic
 *   notifications carry no availability, so each inbound batch is fetched with one
 *   getPresencesByUserId call. Users covered by a live subscription are polled at the slower
 *   reconcile interval, because Graph never says when it dropped a notification.
 *
 * Everything is driven by methods that read the injected clock (`tick`, `renewSubscriptions`,
 * `syncSubscriptions`, `handleChangeNotifications`, `handleLifecycleNotifications`); the real
 * timers in `start` only call them, so tests drive the connector with a FakeClock.
 */

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import cron, { type ScheduledTask } from 'node-cron';

import type { Env } from '../../src/config/env';
import type { Clock } from '../../src/core/clock';
import type {
  Connector,
  ConnectorContext,
  ConnectorDescriptor,
  ConnectorHealth,
} from '../../src/core/connector';
import { silentLog, type Log } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import {
  AppTokenSource,
  isSafeTokenUrl,
  MAX_IDS_PER_CALL,
  TeamsGraphClient,
  TeamsGraphError,
  TokenEndpointError,
} from './client';
import { teams } from './index';
import { backoffDelay, DEFAULT_BACKOFF_MS, parseRetryAfter, SlidingWindowLimiter } from './limiter';
import { toTeamsPresence } from './map';
import type { GraphChangeNotification, GraphLifecycleNotification, GraphPresence } from './types';

/** Graph's longest presence subscription (changenotifications-for-presence). */
export const MAX_SUBSCRIPTION_MS = 60 * 60_000;
/** What Graph wants as a reply time for notifications; the inbound route answers at once. */
export const GRAPH_REPLY_WITHIN_MS = 3_000;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** When a 429 comes without a readable Retry-After. */
const DEFAULT_RETRY_AFTER_MS = 30_000;

export interface TeamsConnectorOptions {
  /** MS_TENANT_ID: the tenant whose users are polled (accounts' workspace_id). */
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** GRAPH_API_URL; default https://graph.microsoft.com. */
  readonly graphUrl?: string;
  /** MS_LOGIN_URL; default https://login.microsoftonline.com. */
  readonly loginUrl?: string;
  /** Client-credentials scope; default https://graph.microsoft.com/.default. */
  readonly scope?: string;
  readonly clock: Clock;
  /** Defaults to the log the connector host passes in `start`. */
  readonly log?: Log;
  /** How often linked users without a live subscription are polled (default 60 s). */
  readonly pollIntervalMs?: number;
  /** How often users covered by a live subscription are polled anyway (default 10 min). */
  readonly reconcileIntervalMs?: number;
  /**
   * A delegated access token (Presence.Read.All, from the person's own connection) for an
   * account, or null when the person has none. Without it, or without `notificationUrl`, the
   * connector only polls.
   */
  readonly delegatedTokenFor?: (account: AccountRef) => Promise<string | null>;
  /** Graph refused an account's delegated token (401): the connection needs to be re-authorized. */
  readonly onDelegatedTokenRejected?: (account: AccountRef, reason: string) => void;
  /** `${PUBLIC_URL}/v1/inbound/teams`; Graph requires HTTPS (plain http only for loopback tests). */
  readonly notificationUrl?: string;
  /** Default: `${notificationUrl}/lifecycle`. */
  readonly lifecycleNotificationUrl?: string;
  /** The secret Graph echoes in every notification (≤ 128 chars). Random per process if absent. */
  readonly clientState?: string;
  /** Graph's presence budget per tenant (default 1,500 calls per 30 s). */
  readonly rateLimit?: { readonly calls: number; readonly windowMs: number };
  /** Requested lifetime of a subscription (default 55 min; Graph's maximum is 60). */
  readonly subscriptionLifetimeMs?: number;
  /** Renew a subscription when it has less than this left (default 10 min). */
  readonly renewBeforeMs?: number;
  /** How often the set of subscribed users is brought up to date (default 5 min). */
  readonly subscriptionSyncIntervalMs?: number;
  /** When renewals run (node-cron; default every minute). */
  readonly renewCron?: string;
  /** Waits after consecutive 5xx/network failures. */
  readonly backoffMs?: readonly number[];
  /** For backoff jitter; tests pass `() => 0`. */
  readonly random?: () => number;
  /** Per Graph request (default 10 s). */
  readonly requestTimeoutMs?: number;
  /** After `start`, how long before the first subscription sync (the HTTP server must be up). */
  readonly firstSyncDelayMs?: number;
  /** Run real timers (poll loop, renewal cron). Tests say false and call the methods. */
  readonly timers?: boolean;
}

/** A live subscription as the connector holds it. */
export interface TeamsSubscriptionInfo {
  readonly id: string;
  /** The user whose delegated token created it and renews it. */
  readonly owner: AccountRef;
  /** AAD object ids (lower case) it covers. */
  readonly userIds: readonly string[];
  readonly expiresAt: number;
}

interface SubState {
  id: string;
  owner: AccountRef;
  ownerId: string;
  ids: string[];
  expiresAt: number;
}

type Outcome = 'ok' | 'retry' | 'drop';

const lower = (s: string): string => s.toLowerCase();

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The presence resource for a bulk subscription (changenotifications-for-presence). */
export function presenceResource(ids: readonly string[]): string {
  return `/communications/presences?$filter=id in (${ids.map((id) => `'${id}'`).join(', ')})`;
}

/** The user a basic notification is about: `resourceData.id`, else its `@odata.id`/resource path. */
export function notificationUserId(item: GraphChangeNotification): string | null {
  const id = item.resourceData?.id;
  if (typeof id === 'string' && GUID.test(id)) return lower(id);
  for (const path of [item.resourceData?.['@odata.id'], item.resource]) {
    if (typeof path !== 'string') continue;
    const m = /(?:users|presences)\/([0-9a-f-]{36})/i.exec(path) ?? /\('([0-9a-f-]{36})'\)/i.exec(path);
    if (m !== null && GUID.test(m[1]!)) return lower(m[1]!);
  }
  return null;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function parseExpiry(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  // Graph writes 7 fractional digits and sometimes no zone; both read as UTC.
  const v = /[zZ]|[+-]\d\d:\d\d$/.test(value) ? value : `${value}Z`;
  const t = Date.parse(v);
  return Number.isNaN(t) ? fallback : t;
}

export class TeamsConnector implements Connector {
  readonly descriptor: ConnectorDescriptor = teams;

  private readonly o: TeamsConnectorOptions;
  private readonly clock: Clock;
  private readonly pollIntervalMs: number;
  private readonly reconcileIntervalMs: number;
  private readonly lifetimeMs: number;
  private readonly renewBeforeMs: number;
  private readonly syncIntervalMs: number;
  private readonly backoffMs: readonly number[];
  private readonly tokens: AppTokenSource;
  private readonly graph: TeamsGraphClient;
  private readonly limiter: SlidingWindowLimiter;
  private readonly clientStateDigest: Buffer;
  private readonly tenant: string;
  /** The secret sent as clientState when creating subscriptions. */
  private readonly clientState: string;
  private readonly notificationUrl: string | null;
  private readonly lifecycleUrl: string | null;

  private ctx: ConnectorContext | null = null;
  private log: Log;
  private stopped = false;

  // polling
  private queue: string[][] = [];
  private readonly urgent = new Set<string>();
  private nextCycleAt = 0;
  private nextReconcileAt = 0;
  private blockedUntil = 0;
  private deferredUntil = 0;
  private failures = 0;
  private pumping: Promise<void> | null = null;

  // subscriptions
  private readonly subs = new Map<string, SubState>();
  private nextSyncAt = 0;
  private subChain: Promise<void> = Promise.resolve();

  // health
  private problem: { level: 'down' | 'degraded'; message: string } | null = null;
  private subProblem: string | null = null;
  private lastSuccessAt: number | null = null;
  private lastError: string | null = null;

  private readonly unknownLogged = new Set<string>();
  private readonly skippedLogged = new Set<string>();
  private readonly inflight = new Set<Promise<unknown>>();
  private timer: NodeJS.Timeout | null = null;
  private syncTimer: NodeJS.Timeout | null = null;
  private cronTask: ScheduledTask | null = null;

  constructor(options: TeamsConnectorOptions) {
    this.o = options;
    this.clock = options.clock;
    this.log = options.log ?? silentLog;
    this.tenant = lower(options.tenantId);
    this.pollIntervalMs = options.pollIntervalMs ?? 60_000;
    this.reconcileIntervalMs = Math.max(options.reconcileIntervalMs ?? 10 * 60_000, this.pollIntervalMs);
    this.lifetimeMs = options.subscriptionLifetimeMs ?? 55 * 60_000;
    this.renewBeforeMs = options.renewBeforeMs ?? 10 * 60_000;
    this.syncIntervalMs = options.subscriptionSyncIntervalMs ?? 5 * 60_000;
    this.backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    if (!(this.pollIntervalMs >= 1000)) throw new RangeError('pollIntervalMs must be at least 1000');
    if (!(this.lifetimeMs > 0 && this.lifetimeMs <= MAX_SUBSCRIPTION_MS)) {
      throw new RangeError('subscriptionLifetimeMs must be more than 0 and at most 60 minutes');
    }
    if (!(this.renewBeforeMs > 0 && this.renewBeforeMs < this.lifetimeMs)) {
      throw new RangeError('renewBeforeMs must be positive and shorter than the subscription lifetime');
    }
    this.clientState = options.clientState ?? randomBytes(32).toString('base64url');
    if (this.clientState.length === 0 || this.clientState.length > 128) {
      throw new RangeError('clientState must be 1 to 128 characters (Graph limit)');
    }
    this.clientStateDigest = createHash('sha256').update(this.clientState).digest();
    this.notificationUrl = options.notificationUrl ?? null;
    this.lifecycleUrl =
      options.lifecycleNotificationUrl ??
      (this.notificationUrl === null ? null : `${this.notificationUrl.replace(/\/+$/, '')}/lifecycle`);
    for (const url of [this.notificationUrl, this.lifecycleUrl]) {
      // Graph itself refuses non-HTTPS notification URLs; failing here says so before any call.
      if (url !== null && !isSafeTokenUrl(new URL(url))) {
        throw new Error(`Teams notification URLs must use https (loopback http only for tests): ${url}`);
      }
    }
    this.tokens = new AppTokenSource({
      tenantId: options.tenantId,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      loginUrl: options.loginUrl,
      scope: options.scope,
      clock: options.clock,
      timeoutMs: options.requestTimeoutMs,
    });
    this.graph = this.client(() => this.tokens.get());
    this.limiter = new SlidingWindowLimiter(options.rateLimit?.calls, options.rateLimit?.windowMs);
  }

  // ------------------------------------------------------------------ lifecycle

  start(ctx: ConnectorContext): Promise<void> {
    this.ctx = ctx;
    if (this.o.log === undefined) this.log = ctx.log;
    this.stopped = false;
    if (this.o.timers !== false) {
      // Not awaited: a slow or failing Graph must not hold up the service's start.
      this.arm(0);
      if (this.subscriptionsEnabled) {
        this.syncTimer = setTimeout(
          () => void this.track(this.syncSubscriptions()),
          this.o.firstSyncDelayMs ?? 5_000,
        );
        this.syncTimer.unref();
        this.cronTask = cron.schedule(
          this.o.renewCron ?? '* * * * *',
          () => this.track(this.renewSubscriptions()),
          {
            name: 'teams-subscription-renewal',
            noOverlap: true,
            unref: true,
            logger: this.cronLogger(),
          },
        );
      }
    }
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.timer = this.syncTimer = null;
    if (this.cronTask !== null) await this.cronTask.destroy();
    this.cronTask = null;
    await this.whenIdle();
    // Graph allows one presence subscription per user and app: deleting ours lets the next start
    // create them again at once instead of waiting up to an hour for them to lapse.
    await this.serial(async () => {
      for (const sub of [...this.subs.values()]) {
        this.subs.delete(sub.id);
        if (sub.expiresAt <= this.clock.now()) continue;
        const token = await this.delegatedToken(sub.owner);
        if (token !== null) await this.deleteRemote(sub, token);
      }
    });
    this.ctx = null;
  }

  health(): ConnectorHealth {
    const now = this.clock.now();
    const state =
      this.problem?.level === 'down'
        ? 'down'
        : this.problem !== null || this.subProblem !== null
          ? 'degraded'
          : 'ok';
    return {
      state,
      lastSuccessAt: this.lastSuccessAt,
      lastError: this.problem?.message ?? this.subProblem ?? this.lastError,
      nextPollAt: this.ctx === null ? null : this.nextWakeAt(now),
    };
  }

  /** Resolves when every piece of work started so far (polls, notifications, renewals) is done. */
  async whenIdle(): Promise<void> {
    while (this.inflight.size > 0 || this.pumping !== null) {
      await Promise.allSettled([...this.inflight, this.pumping, this.subChain]);
    }
    await this.subChain;
  }

  /** Whether a notification's clientState is ours (constant time). */
  verifyClientState(value: unknown): boolean {
    if (typeof value !== 'string') return false;
    return timingSafeEqual(createHash('sha256').update(value).digest(), this.clientStateDigest);
  }

  /** The live subscriptions, for tests and operators. */
  subscriptions(): TeamsSubscriptionInfo[] {
    return [...this.subs.values()].map((s) => ({
      id: s.id,
      owner: s.owner,
      userIds: [...s.ids],
      expiresAt: s.expiresAt,
    }));
  }

  // ------------------------------------------------------------------ polling

  /**
   * Does whatever is due at the clock's now: starts a poll cycle when one is due and works
   * through the batches left, within the rate limit and any Retry-After or backoff pause.
   */
  tick(): Promise<void> {
    if (this.ctx === null || this.stopped) return Promise.resolve();
    const now = this.clock.now();
    if (this.queue.length === 0 && now >= this.nextCycleAt && now >= this.blockedUntil) this.startCycle(now);
    return this.track(this.pump());
  }

  private startCycle(now: number): void {
    const index = this.index();
    const covered = this.coveredIds(now);
    const reconcile = now >= this.nextReconcileAt;
    if (reconcile) this.nextReconcileAt = now + this.reconcileIntervalMs;
    const ids: string[] = [];
    for (const id of index.keys()) if (reconcile || !covered.has(id)) ids.push(id);
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
    while (!this.stopped) {
      const now = this.clock.now();
      if (now < this.blockedUntil) return;
      const fromUrgent = this.urgent.size > 0;
      const batch = fromUrgent ? [...this.urgent].slice(0, MAX_IDS_PER_CALL) : this.queue[0];
      if (batch === undefined || batch.length === 0) return;
      const wait = this.limiter.take(now);
      if (wait > 0) {
        this.deferredUntil = now + wait;
        this.log.debug({ platform: 'teams', waitMs: wait }, 'Graph presence budget used up; waiting');
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
      presences = await this.withAppToken(() => this.graph.getPresencesByUserId(ids));
    } catch (e) {
      return this.pollFailed(e);
    }
    this.failures = 0;
    this.problem = null;
    this.lastSuccessAt = this.clock.now();
    await this.reportAll(presences);
    return 'ok';
  }

  /** Runs a call with the app token; after a 401 the cached token is dropped and the call retried once. */
  private async withAppToken<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (e) {
      if (!(e instanceof TeamsGraphError) || e.kind !== 'unauthorized') throw e;
      this.tokens.invalidate();
      return call();
    }
  }

  private pollFailed(e: unknown): Outcome {
    const now = this.clock.now();
    const fail = (level: 'down' | 'degraded', message: string, waitMs: number): Outcome => {
      this.blockedUntil = now + waitMs;
      this.problem = { level, message };
      this.lastError = message;
      this.log[level === 'down' ? 'error' : 'warn']({ platform: 'teams', retryInMs: waitMs }, message);
      return 'retry';
    };
    if (e instanceof TokenEndpointError) {
      this.failures += 1;
      const wait = backoffDelay(this.failures, this.backoffMs, this.o.random);
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
            backoffDelay(this.failures, this.backoffMs, this.o.random),
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
            backoffDelay(this.failures, this.backoffMs, this.o.random),
          );
        case 'forbidden':
          this.failures += 1;
          return fail(
            'down',
            `${e.message}: the app needs the application permission Presence.Read.All with admin consent`,
            backoffDelay(this.failures, this.backoffMs, this.o.random),
          );
        default: {
          // A 400 for one batch (an id Graph does not accept) must not stall every later batch.
          const message = `${e.message}; batch skipped`;
          this.lastError = message;
          this.log.error({ platform: 'teams' }, message);
          return 'drop';
        }
      }
    }
    this.failures += 1;
    const message = `Teams poll failed: ${e instanceof Error ? e.message : String(e)}`;
    return fail('degraded', message, backoffDelay(this.failures, this.backoffMs, this.o.random));
  }

  private async reportAll(presences: readonly GraphPresence[]): Promise<void> {
    const ctx = this.ctx;
    if (ctx === null) return;
    const now = this.clock.now();
    const index = this.index();
    const covered = this.coveredIds(now);
    const acks: Promise<boolean>[] = [];
    for (const p of presences) {
      if (typeof p?.id !== 'string' || typeof p.availability !== 'string' || typeof p.activity !== 'string') {
        this.logOnce(
          this.skippedLogged,
          'malformed',
          'Graph returned a presence without id, availability or activity',
        );
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
        this.log.error({ platform: 'teams', err: r.reason as unknown }, 'report failed');
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
    this.log.warn(
      { platform: 'teams', availability: p.availability, activity: p.activity },
      'Teams presence value not known to the mapper: not guessed, no live observation from it (logged once per value)',
    );
  }

  private logOnce(seen: Set<string>, key: string, message: string, extra: object = {}): void {
    if (seen.has(key)) return;
    seen.add(key);
    this.log.warn({ platform: 'teams', ...extra }, message);
  }

  /** Linked Teams accounts of this tenant, by lower-cased AAD object id. */
  private index(): Map<string, AccountRef[]> {
    const out = new Map<string, AccountRef[]>();
    const anyTenant = !GUID.test(this.tenant);
    for (const a of this.ctx?.accounts() ?? []) {
      if (a.platform !== 'teams') continue;
      if (!anyTenant && a.workspaceId !== '' && lower(a.workspaceId) !== this.tenant) {
        this.logOnce(
          this.skippedLogged,
          `tenant:${a.workspaceId}`,
          'Teams account of another tenant skipped',
          {
            workspaceId: a.workspaceId,
          },
        );
        continue;
      }
      if (!GUID.test(a.externalId)) {
        // Graph answers 400 to the whole batch for one malformed id.
        this.logOnce(
          this.skippedLogged,
          `id:${a.externalId}`,
          'Teams account skipped: external_id must be the AAD object id (a GUID)',
          { externalId: a.externalId },
        );
        continue;
      }
      const id = lower(a.externalId);
      const list = out.get(id);
      if (list === undefined) out.set(id, [a]);
      else list.push(a);
    }
    return out;
  }

  private coveredIds(now: number): Set<string> {
    const out = new Set<string>();
    for (const s of this.subs.values()) if (s.expiresAt > now) for (const id of s.ids) out.add(id);
    return out;
  }

  private nextWakeAt(now: number): number {
    const pending = this.queue.length > 0 || this.urgent.size > 0;
    const at = pending
      ? Math.max(this.blockedUntil, this.deferredUntil)
      : Math.max(this.nextCycleAt, this.blockedUntil);
    return Math.max(at, now);
  }

  /** The real-time loop: sleeps until the next thing is due, by the injected clock's reckoning. */
  private arm(delayMs: number): void {
    if (this.stopped) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = setTimeout(
      () => {
        this.timer = null;
        void this.tick()
          .catch((e: unknown) => this.log.error({ platform: 'teams', err: e }, 'Teams poll loop failed'))
          .finally(() => this.arm(this.nextWakeAt(this.clock.now()) - this.clock.now()));
      },
      Math.min(Math.max(delayMs, 100), this.pollIntervalMs),
    );
    this.timer.unref();
  }

  // ------------------------------------------------------------------ notifications

  /**
   * Basic change notifications, already checked for clientState by the inbound route: the users
   * they name (linked ones only) are fetched together, in one call per 650.
   */
  handleChangeNotifications(items: readonly GraphChangeNotification[]): Promise<void> {
    if (this.ctx === null || this.stopped) return Promise.resolve();
    const index = this.index();
    let added = 0;
    for (const item of items) {
      const id = notificationUserId(item);
      if (id === null || !index.has(id)) continue;
      this.urgent.add(id);
      added += 1;
    }
    if (added === 0) return Promise.resolve();
    return this.track(
      this.pump().finally(() => {
        // Held back by the budget or a Retry-After: wake the loop when that ends, not at the next cycle.
        if (this.urgent.size > 0 && this.o.timers !== false && !this.stopped) {
          this.arm(this.nextWakeAt(this.clock.now()) - this.clock.now());
        }
      }),
    );
  }

  /** Lifecycle notifications (clientState checked): reauthorize, recreate, or fetch what was missed. */
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void> {
    if (this.ctx === null || this.stopped) return Promise.resolve();
    return this.track(
      this.serial(async () => {
        let lost = false;
        for (const item of items) {
          const sub =
            typeof item.subscriptionId === 'string' ? this.subs.get(item.subscriptionId) : undefined;
          if (sub === undefined) {
            this.log.info(
              { platform: 'teams', subscriptionId: item.subscriptionId, event: item.lifecycleEvent },
              'lifecycle notification for a subscription this process does not hold; ignored',
            );
            continue;
          }
          switch (item.lifecycleEvent) {
            case 'reauthorizationRequired':
              if (!(await this.reauthorize(sub))) lost = true;
              break;
            case 'subscriptionRemoved':
              this.subs.delete(sub.id);
              lost = true;
              break;
            case 'missed':
              for (const id of sub.ids) this.urgent.add(id);
              void this.track(this.pump());
              break;
            default:
              this.log.info({ platform: 'teams', event: item.lifecycleEvent }, 'lifecycle event ignored');
          }
        }
        if (lost) await this.doSync();
      }),
    );
  }

  // ------------------------------------------------------------------ subscriptions

  private get subscriptionsEnabled(): boolean {
    return this.o.delegatedTokenFor !== undefined && this.notificationUrl !== null;
  }

  /**
   * Brings the subscriptions in line with who has a delegated token now: keeps the ones that
   * still fit, deletes the rest, and subscribes every delegated user not yet covered.
   */
  syncSubscriptions(): Promise<void> {
    return this.track(this.serial(() => this.doSync()));
  }

  /**
   * Renews (PATCH) every subscription that expires within `renewBeforeMs`, drops the ones that
   * cannot be renewed, and syncs when one was dropped or a sync is due. Called every minute by
   * node-cron, and by tests after moving a FakeClock.
   */
  renewSubscriptions(): Promise<void> {
    return this.track(this.serial(() => this.doRenew()));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.subChain.then(fn, fn);
    this.subChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private async doSync(): Promise<void> {
    if (!this.subscriptionsEnabled || this.ctx === null || this.stopped) return;
    const now = this.clock.now();
    this.nextSyncAt = now + this.syncIntervalMs;
    const delegated = new Map<string, { account: AccountRef; token: string }>();
    for (const [id, accounts] of this.index()) {
      for (const account of accounts) {
        const token = await this.delegatedToken(account);
        if (token !== null) {
          delegated.set(id, { account, token });
          break;
        }
      }
    }
    let problem: string | null = null;
    const covered = new Set<string>();
    for (const sub of [...this.subs.values()]) {
      const fits =
        sub.expiresAt > now && delegated.has(sub.ownerId) && sub.ids.every((id) => delegated.has(id));
      if (fits) {
        for (const id of sub.ids) covered.add(id);
        continue;
      }
      this.subs.delete(sub.id);
      const owner = delegated.get(sub.ownerId);
      if (owner !== undefined && sub.expiresAt > now) await this.deleteRemote(sub, owner.token);
    }
    const uncovered = [...delegated.keys()].filter((id) => !covered.has(id)).sort();
    for (const ids of chunks(uncovered, MAX_IDS_PER_CALL)) {
      const failure = await this.create(ids, delegated);
      if (failure !== null) {
        problem = failure;
        break;
      }
    }
    this.setSubProblem(problem);
  }

  /** Creates one subscription for `ids`, owned by the first of them whose token Graph takes. */
  private async create(
    ids: string[],
    delegated: ReadonlyMap<string, { account: AccountRef; token: string }>,
  ): Promise<string | null> {
    const url = this.notificationUrl!;
    const lifecycle = this.lifecycleUrl!;
    for (const ownerId of ids.slice(0, 3)) {
      const owner = delegated.get(ownerId)!;
      const now = this.clock.now();
      try {
        const created = await this.client(() => Promise.resolve(owner.token)).createSubscription({
          changeType: 'updated',
          notificationUrl: url,
          lifecycleNotificationUrl: lifecycle,
          resource: presenceResource(ids),
          expirationDateTime: iso(now + this.lifetimeMs),
          clientState: this.clientState,
        });
        this.subs.set(created.id, {
          id: created.id,
          owner: owner.account,
          ownerId,
          ids,
          expiresAt: parseExpiry(created.expirationDateTime, now + this.lifetimeMs),
        });
        this.log.info(
          { platform: 'teams', subscriptionId: created.id, users: ids.length },
          'Teams presence subscription created',
        );
        return null;
      } catch (e) {
        const err = e instanceof TeamsGraphError ? e : null;
        const message = `creating a Teams presence subscription failed: ${e instanceof Error ? e.message : String(e)}`;
        this.log.warn({ platform: 'teams', users: ids.length }, message);
        if (err?.kind === 'unauthorized') {
          this.rejected(owner.account, err.message);
          continue;
        }
        // 403 (this user lacks the delegated permission) and 409 (they already own one, e.g.
        // from before a crash) are about the owner: another user of the batch may own it.
        if (err?.kind === 'forbidden' || err?.kind === 'conflict') continue;
        if (err?.kind === 'client') {
          return `${message} (Graph validates the notification URL: it must be public HTTPS and answer the validationToken handshake)`;
        }
        return message;
      }
    }
    return 'creating a Teams presence subscription failed for every owner tried; those users are polled';
  }

  private async doRenew(): Promise<void> {
    if (!this.subscriptionsEnabled || this.ctx === null || this.stopped) return;
    const now = this.clock.now();
    let lost = false;
    let problem: string | null = null;
    for (const sub of [...this.subs.values()]) {
      if (sub.expiresAt <= now) {
        this.subs.delete(sub.id);
        lost = true;
        continue;
      }
      if (sub.expiresAt - now > this.renewBeforeMs) continue;
      const token = await this.delegatedToken(sub.owner);
      if (token === null) {
        this.subs.delete(sub.id);
        lost = true;
        continue;
      }
      const outcome = await this.renew(sub, token);
      if (outcome === 'drop') lost = true;
      else if (outcome !== 'ok') problem = outcome.problem;
    }
    if (lost || now >= this.nextSyncAt) await this.doSync();
    else this.setSubProblem(problem);
  }

  /** 'ok', 'drop' (the subscription is gone or unusable), or a problem to retry next minute. */
  private async renew(sub: SubState, token: string): Promise<'ok' | 'drop' | { problem: string }> {
    const now = this.clock.now();
    try {
      const res = await this.client(() => Promise.resolve(token)).renewSubscription(
        sub.id,
        iso(now + this.lifetimeMs),
      );
      sub.expiresAt = parseExpiry(res?.expirationDateTime, now + this.lifetimeMs);
      this.log.debug({ platform: 'teams', subscriptionId: sub.id }, 'Teams presence subscription renewed');
      return 'ok';
    } catch (e) {
      const err = e instanceof TeamsGraphError ? e : null;
      const message = `renewing Teams subscription ${sub.id} failed: ${e instanceof Error ? e.message : String(e)}`;
      this.log.warn({ platform: 'teams', subscriptionId: sub.id }, message);
      if (err?.kind === 'unauthorized') this.rejected(sub.owner, err.message);
      if (
        err !== null &&
        ['unauthorized', 'forbidden', 'not_found', 'client', 'conflict'].includes(err.kind)
      ) {
        this.subs.delete(sub.id);
        return 'drop';
      }
      return { problem: message };
    }
  }

  /** reauthorizationRequired: reauthorize; failing that renew; failing that the caller recreates. */
  private async reauthorize(sub: SubState): Promise<boolean> {
    const token = await this.delegatedToken(sub.owner);
    if (token === null) {
      this.subs.delete(sub.id);
      return false;
    }
    try {
      await this.client(() => Promise.resolve(token)).reauthorizeSubscription(sub.id);
      this.log.info({ platform: 'teams', subscriptionId: sub.id }, 'Teams subscription reauthorized');
      return true;
    } catch (e) {
      this.log.warn(
        { platform: 'teams', subscriptionId: sub.id },
        `reauthorizing failed (${e instanceof Error ? e.message : String(e)}); renewing instead`,
      );
      if (e instanceof TeamsGraphError && e.kind === 'unauthorized') {
        this.rejected(sub.owner, e.message);
        this.subs.delete(sub.id);
        return false;
      }
    }
    const outcome = await this.renew(sub, token);
    if (outcome === 'ok') return true;
    this.subs.delete(sub.id);
    return false;
  }

  private async deleteRemote(sub: SubState, token: string): Promise<void> {
    try {
      await this.client(() => Promise.resolve(token)).deleteSubscription(sub.id);
    } catch (e) {
      // A subscription Graph cannot find has already gone; any other failure lets it lapse.
      if (!(e instanceof TeamsGraphError && e.kind === 'not_found')) {
        this.log.warn(
          { platform: 'teams', subscriptionId: sub.id },
          `deleting a Teams subscription failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  }

  private setSubProblem(problem: string | null): void {
    this.subProblem = problem;
    if (problem !== null) this.lastError = problem;
  }

  private async delegatedToken(account: AccountRef): Promise<string | null> {
    const get = this.o.delegatedTokenFor;
    if (get === undefined) return null;
    try {
      const token = await get(account);
      return typeof token === 'string' && token !== '' ? token : null;
    } catch (e) {
      this.log.warn(
        { platform: 'teams', externalId: account.externalId, err: e instanceof Error ? e.message : 'error' },
        'no delegated Teams token for this account',
      );
      return null;
    }
  }

  private rejected(account: AccountRef, reason: string): void {
    try {
      this.o.onDelegatedTokenRejected?.(account, reason);
    } catch (e) {
      this.log.error({ platform: 'teams', err: e }, 'onDelegatedTokenRejected failed');
    }
  }

  private client(token: () => Promise<string>): TeamsGraphClient {
    return new TeamsGraphClient({ baseUrl: this.o.graphUrl, token, timeoutMs: this.o.requestTimeoutMs });
  }

  private cronLogger(): {
    info(m: string): void;
    warn(m: string): void;
    error(m: string | Error): void;
    debug(m: string | Error): void;
  } {
    const text = (m: string | Error): string => (typeof m === 'string' ? m : m.message);
    return {
      info: (m) => this.log.debug({ platform: 'teams' }, text(m)),
      warn: (m) => this.log.warn({ platform: 'teams' }, text(m)),
      error: (m) => this.log.error({ platform: 'teams' }, text(m)),
      debug: (m) => this.log.debug({ platform: 'teams' }, text(m)),
    };
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    void p.then(
      () => this.inflight.delete(p),
      () => this.inflight.delete(p),
    );
    return p;
  }
}

/**
 * A stable clientState derived from the service's secret key, so notifications of subscriptions
 * created before a restart are still recognized; never the key itself.
 */
export function teamsClientState(secretKey: string): string {
  return createHmac('sha256', Buffer.from(secretKey, 'base64'))
    .update('teams-graph-client-state')
    .digest('base64url');
}

export interface TeamsFromEnvDeps {
  readonly clock: Clock;
  readonly log?: Log;
  readonly delegatedTokenFor?: (account: AccountRef) => Promise<string | null>;
  readonly onDelegatedTokenRejected?: (account: AccountRef, reason: string) => void;
  readonly pollIntervalMs?: number;
}

/**
 * The connector as `presence serve` runs it, or null when MS_TENANT_ID, MS_CLIENT_ID or
 * MS_CLIENT_SECRET is missing. Subscriptions need PUBLIC_URL (HTTPS) and delegated tokens.
 */
export function teamsConnectorFromEnv(env: Env, deps: TeamsFromEnvDeps): TeamsConnector | null {
  if (
    env.MS_TENANT_ID === undefined ||
    env.MS_CLIENT_ID === undefined ||
    env.MS_CLIENT_SECRET === undefined
  ) {
    return null;
  }
  const publicUrl = env.PUBLIC_URL?.replace(/\/+$/, '');
  const notificationUrl =
    publicUrl !== undefined && isSafeTokenUrl(new URL(publicUrl))
      ? `${publicUrl}/v1/inbound/teams`
      : undefined;
  if (notificationUrl === undefined) {
    deps.log?.info(
      { platform: 'teams' },
      'Teams change notifications off: PUBLIC_URL is not set to an https URL; linked users are polled only',
    );
  }
  return new TeamsConnector({
    tenantId: env.MS_TENANT_ID,
    clientId: env.MS_CLIENT_ID,
    clientSecret: env.MS_CLIENT_SECRET,
    graphUrl: env.GRAPH_API_URL,
    loginUrl: env.MS_LOGIN_URL,
    clock: deps.clock,
    log: deps.log,
    pollIntervalMs: deps.pollIntervalMs,
    delegatedTokenFor: deps.delegatedTokenFor,
    onDelegatedTokenRejected: deps.onDelegatedTokenRejected,
    notificationUrl,
    clientState:
      env.PRESENCE_SECRET_KEY === undefined ? undefined : teamsClientState(env.PRESENCE_SECRET_KEY),
  });
}
