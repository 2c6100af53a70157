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
 *
 * This class composes the parts and is the only one the host sees: `poller.ts` (batches, budget,
 * backoff), `subscriptions.ts` (the subscriptions' options, timers and one chain; the set and its
 * Graph calls in `subscription-set.ts`, which node manages them in `lease.ts`), `health.ts`, and
 * `runtime.ts` (the context, log and in-flight work they share).
 */

import { createHmac } from 'node:crypto';

import type { Env } from '../../src/config/env';
import type { Clock } from '../../src/core/clock';
import type {
  Connector,
  ConnectorContext,
  ConnectorDescriptor,
  ConnectorHealth,
} from '../../src/core/connector';
import { silentLog, type Log } from '../../src/core/log';
import type { AccountRef, Locks, RateBuckets } from '../../src/core/ports';
import type { AppToken } from '../../src/oauth/app-token';
import { isSafeTokenUrl, TeamsGraphClient, tokenEndpointError } from './client';
import { TeamsHealth } from './health';
import { teams } from './descriptor';
import { PresencePoller } from './poller';
import { TeamsRuntime } from './runtime';
import { SubscriptionManager, type TeamsSubscriptionInfo } from './subscriptions';
import type { GraphChangeNotification, GraphLifecycleNotification } from './types';

export { notificationUserId } from './ids';
export { MAX_SUBSCRIPTION_MS, presenceResource } from './subscription-set';
export type { TeamsSubscriptionInfo } from './subscriptions';

/** What Graph wants as a reply time for notifications; the inbound route answers at once. */
export const GRAPH_REPLY_WITHIN_MS = 3_000;

export interface TeamsConnectorOptions {
  /** MS_TENANT_ID: the tenant whose users are polled (accounts' workspace_id). */
  readonly tenantId: string;
  /** GRAPH_API_URL; default https://graph.microsoft.com. */
  readonly graphUrl?: string;
  /**
   * The app token: the tenant's client-credentials grant, from the OAuth layer's one token source
   * for it (src/oauth/app-token.ts `AppGrants`), which the composition root builds and
   * `connectApp` and the refresh sweep share. Called with `{ force: true }` after Graph's 401.
   */
  readonly appToken: AppToken;
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
  readonly onDelegatedTokenRejected?: (account: AccountRef, reason: string) => void | Promise<void>;
  /** `${PUBLIC_URL}/v1/inbound/teams`; Graph requires HTTPS (plain http only for loopback tests). */
  readonly notificationUrl?: string;
  /** Default: `${notificationUrl}/lifecycle`. */
  readonly lifecycleNotificationUrl?: string;
  /** The secret Graph echoes in every notification (≤ 128 chars). Random per process if absent. */
  readonly clientState?: string;
  /** Graph's presence budget per tenant (default 1,500 calls per 30 s). */
  readonly rateLimit?: { readonly calls: number; readonly windowMs: number };
  /** Where that budget is kept: shared by the nodes (the coordination's); default this process's. */
  readonly buckets?: RateBuckets;
  /**
   * The locks shared by the nodes (the coordination's). When shared, one node at a time manages
   * the subscriptions (creates and renews them), handing them over through the lock's note when
   * it stops or dies (lease.ts); default: this process manages them alone.
   */
  readonly locks?: Locks;
  /** That node's lease (default 3 min), renewed at every renewal tick. */
  readonly subscriptionLeaseMs?: number;
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

export class TeamsConnector implements Connector {
  readonly descriptor: ConnectorDescriptor = teams;

  private readonly o: TeamsConnectorOptions;
  private readonly rt: TeamsRuntime;
  private readonly status = new TeamsHealth();
  private readonly subs: SubscriptionManager;
  private readonly poller: PresencePoller;

  constructor(options: TeamsConnectorOptions) {
    this.o = options;
    this.rt = new TeamsRuntime(options.clock, options.log ?? silentLog, options.tenantId);
    // Checked here, not in the poller: the poller is built last, after the token source it uses,
    // and the poll interval has always been the first option checked.
    const pollIntervalMs = options.pollIntervalMs ?? 60_000;
    if (!(pollIntervalMs >= 1000)) throw new RangeError('pollIntervalMs must be at least 1000');
    this.subs = new SubscriptionManager(this.rt, this.status, options, {
      client: (token) => this.client(token),
      onMissed: (ids) => this.poller.fetchSoon(ids),
    });
    // The poller reads token failures as TokenEndpointError (its health messages name them).
    const tokens: AppToken = (request) =>
      options.appToken(request).catch((e: unknown) => Promise.reject(tokenEndpointError(e)));
    this.poller = new PresencePoller(
      this.rt,
      this.status,
      { ...options, pollIntervalMs },
      {
        tokens,
        graph: this.client(() => tokens()),
        covered: (now) => this.subs.coveredIds(now),
      },
    );
  }

  // ------------------------------------------------------------------ lifecycle

  start(ctx: ConnectorContext): Promise<void> {
    this.rt.ctx = ctx;
    if (this.o.log === undefined) this.rt.log = ctx.log;
    this.rt.stopped = false;
    if (this.o.timers !== false) {
      // Not awaited: a slow or failing Graph must not hold up the service's start.
      this.poller.arm(0);
      if (this.subs.enabled) this.subs.startTimers();
    }
    return Promise.resolve();
  }

  async stop(): Promise<void> {
    this.rt.stopped = true;
    this.poller.disarm();
    await this.subs.stopTimers();
    await this.whenIdle();
    await this.subs.deleteAll();
    this.rt.ctx = null;
  }

  health(): ConnectorHealth {
    const now = this.rt.clock.now();
    return this.status.report(this.rt.ctx === null ? null : this.poller.nextWakeAt(now));
  }

  /** Resolves when every piece of work started so far (polls, notifications, renewals) is done. */
  async whenIdle(): Promise<void> {
    while (this.rt.inflight.size > 0 || this.poller.draining !== null) {
      await Promise.allSettled([...this.rt.inflight, this.poller.draining, this.subs.chain]);
    }
    await this.subs.chain;
  }

  /** Whether a notification's clientState is ours (constant time). */
  verifyClientState(value: unknown): boolean {
    return this.subs.verifyClientState(value);
  }

  /** The live subscriptions, for tests and operators. */
  subscriptions(): TeamsSubscriptionInfo[] {
    return this.subs.list();
  }

  // ------------------------------------------------------------------ polling

  /**
   * Does whatever is due at the clock's now: starts a poll cycle when one is due and works
   * through the batches left, within the rate limit and any Retry-After or backoff pause.
   */
  tick(): Promise<void> {
    return this.poller.tick();
  }

  // ------------------------------------------------------------------ notifications

  /**
   * Basic change notifications, already checked for clientState by the inbound route: the users
   * they name (linked ones only) are fetched together, in one call per 650.
   */
  handleChangeNotifications(items: readonly GraphChangeNotification[]): Promise<void> {
    return this.poller.fetchNotified(items);
  }

  /** Lifecycle notifications (clientState checked): reauthorize, recreate, or fetch what was missed. */
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void> {
    return this.subs.handleLifecycleNotifications(items);
  }

  // ------------------------------------------------------------------ subscriptions

  /**
   * Brings the subscriptions in line with who has a delegated token now: keeps the ones that
   * still fit, deletes the rest, and subscribes every delegated user not yet covered.
   */
  syncSubscriptions(): Promise<void> {
    return this.subs.sync();
  }

  /**
   * Renews (PATCH) every subscription that expires within `renewBeforeMs`, drops the ones that
   * cannot be renewed, and syncs when one was dropped or a sync is due. Called every minute by
   * node-cron, and by tests after moving a FakeClock.
   */
  renewSubscriptions(): Promise<void> {
    return this.subs.renew();
  }

  private client(token: () => Promise<string>): TeamsGraphClient {
    return new TeamsGraphClient({ baseUrl: this.o.graphUrl, token, timeoutMs: this.o.requestTimeoutMs });
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
  /** The tenant's app grant token (`AppGrants.for('teams').token`). */
  readonly appToken: AppToken;
  readonly clock: Clock;
  readonly log?: Log;
  readonly delegatedTokenFor?: (account: AccountRef) => Promise<string | null>;
  readonly onDelegatedTokenRejected?: (account: AccountRef, reason: string) => void | Promise<void>;
  readonly pollIntervalMs?: number;
  readonly buckets?: RateBuckets;
  readonly locks?: Locks;
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
  if (env.MS_LOGIN_URL !== undefined) {
    // The client secret goes there (the app grant's token request).
    const loginUrl = new URL(env.MS_LOGIN_URL);
    if (!isSafeTokenUrl(loginUrl)) {
      throw new Error(
        `the Microsoft login URL must use https (plain http is accepted for loopback hosts only): ${loginUrl.origin}`,
      );
    }
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
    graphUrl: env.GRAPH_API_URL,
    appToken: deps.appToken,
    clock: deps.clock,
    log: deps.log,
    pollIntervalMs: deps.pollIntervalMs,
    buckets: deps.buckets,
    locks: deps.locks,
    delegatedTokenFor: deps.delegatedTokenFor,
    onDelegatedTokenRejected: deps.onDelegatedTokenRejected,
    notificationUrl,
    clientState:
      env.PRESENCE_SECRET_KEY === undefined ? undefined : teamsClientState(env.PRESENCE_SECRET_KEY),
  });
}
