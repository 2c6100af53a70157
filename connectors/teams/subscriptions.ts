/**
 * @module connectors/teams/subscriptions
 * Graph presence change-notification subscriptions, as the connector sees them: the options read
 * and checked, the clientState that proves a notification is ours, the first sync once the HTTP
 * server is up, renewals from a node-cron schedule, and one chain that every change to the set
 * goes through, so a sync, a renewal and a lifecycle event never work on it at the same time.
 *
 * The work is in two parts, each readable alone: subscription-set.ts holds the subscriptions and
 * does everything Graph is asked (grouping users up to 650 per subscription, create, renew,
 * reauthorize, delete, lifecycle events, a lost list taken up again through adopt.ts);
 * lease.ts says whether this node may do it (several nodes, `locks` shared: the holder of the
 * lease lock manages them, notes them for the others and hands them over at a stop). Nodes that
 * do not manage them still take notifications like the holder: the clientState is derived from
 * the shared secret key.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import cron, { type ScheduledTask } from 'node-cron';

import type { AccountRef, Locks } from '../../src/core/ports';
import { isSafeTokenUrl } from './client';
import type { TeamsHealth } from './health';
import { SubscriptionLease } from './lease';
import type { TeamsRuntime } from './runtime';
import { MAX_SUBSCRIPTION_MS, SubscriptionSet, type SubscriptionDeps } from './subscription-set';
import type { GraphLifecycleNotification } from './types';

/** A live subscription as the connector holds it. */
export interface TeamsSubscriptionInfo {
  readonly id: string;
  /** The user whose delegated token created it and renews it. */
  readonly owner: AccountRef;
  /** AAD object ids (lower case) it covers. */
  readonly userIds: readonly string[];
  readonly expiresAt: number;
}

/** The TeamsConnectorOptions the subscription manager reads (documented there). */
export interface SubscriptionOptions {
  readonly tenantId: string;
  /** Locks shared by the nodes: when `shared`, one node manages the subscriptions (lease.ts). */
  readonly locks?: Locks;
  /** The managing node's lease (default `SUBSCRIPTION_LEASE_MS`, lease.ts): longer than the cron's interval. */
  readonly subscriptionLeaseMs?: number;
  readonly delegatedTokenFor?: (account: AccountRef) => Promise<string | null>;
  readonly onDelegatedTokenRejected?: (account: AccountRef, reason: string) => void | Promise<void>;
  readonly notificationUrl?: string;
  readonly lifecycleNotificationUrl?: string;
  readonly clientState?: string;
  readonly subscriptionLifetimeMs?: number;
  readonly renewBeforeMs?: number;
  readonly subscriptionSyncIntervalMs?: number;
  readonly renewCron?: string;
  readonly firstSyncDelayMs?: number;
}

export class SubscriptionManager {
  private readonly clientStateDigest: Buffer;
  private readonly firstSyncDelayMs: number;
  private readonly renewCron: string;
  private readonly set: SubscriptionSet;
  private readonly lease: SubscriptionLease;
  private subChain: Promise<void> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | null = null;
  private cronTask: ScheduledTask | null = null;

  constructor(
    private readonly rt: TeamsRuntime,
    health: TeamsHealth,
    options: SubscriptionOptions,
    deps: SubscriptionDeps,
  ) {
    this.firstSyncDelayMs = options.firstSyncDelayMs ?? 5_000;
    this.renewCron = options.renewCron ?? '* * * * *';
    const lifetimeMs = options.subscriptionLifetimeMs ?? 55 * 60_000;
    const renewBeforeMs = options.renewBeforeMs ?? 10 * 60_000;
    if (!(lifetimeMs > 0 && lifetimeMs <= MAX_SUBSCRIPTION_MS)) {
      throw new RangeError('subscriptionLifetimeMs must be more than 0 and at most 60 minutes');
    }
    if (!(renewBeforeMs > 0 && renewBeforeMs < lifetimeMs)) {
      throw new RangeError('renewBeforeMs must be positive and shorter than the subscription lifetime');
    }
    const clientState = options.clientState ?? randomBytes(32).toString('base64url');
    if (clientState.length === 0 || clientState.length > 128) {
      throw new RangeError('clientState must be 1 to 128 characters (Graph limit)');
    }
    this.clientStateDigest = createHash('sha256').update(clientState).digest();
    const notificationUrl = options.notificationUrl ?? null;
    const lifecycleUrl =
      options.lifecycleNotificationUrl ??
      (notificationUrl === null ? null : `${notificationUrl.replace(/\/+$/, '')}/lifecycle`);
    for (const url of [notificationUrl, lifecycleUrl]) {
      // Graph itself refuses non-HTTPS notification URLs; failing here says so before any call.
      if (url !== null && !isSafeTokenUrl(new URL(url))) {
        throw new Error(`Teams notification URLs must use https (loopback http only for tests): ${url}`);
      }
    }
    this.set = new SubscriptionSet(
      rt,
      health,
      {
        lifetimeMs,
        renewBeforeMs,
        syncIntervalMs: options.subscriptionSyncIntervalMs ?? 5 * 60_000,
        clientState,
        notificationUrl,
        lifecycleUrl,
        delegatedTokenFor: options.delegatedTokenFor,
        onDelegatedTokenRejected: options.onDelegatedTokenRejected,
      },
      deps,
    );
    this.lease = new SubscriptionLease(rt, options, {
      taken: (live, askGraph) => this.set.take(live, askGraph),
      lost: () => this.set.clear(),
    });
  }

  get enabled(): boolean {
    return this.set.enabled;
  }

  /** The end of the chain of subscription work started so far. */
  get chain(): Promise<void> {
    return this.subChain;
  }

  /** The first sync once the HTTP server is up, then renewals on the cron schedule. */
  startTimers(): void {
    this.syncTimer = setTimeout(() => void this.rt.track(this.sync()), this.firstSyncDelayMs);
    this.syncTimer.unref();
    this.cronTask = cron.schedule(this.renewCron, () => this.rt.track(this.renew()), {
      name: 'teams-subscription-renewal',
      noOverlap: true,
      unref: true,
      logger: this.cronLogger(),
    });
  }

  async stopTimers(): Promise<void> {
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    this.syncTimer = null;
    if (this.cronTask !== null) await this.cronTask.destroy();
    this.cronTask = null;
  }

  /** Whether a notification's clientState is ours (constant time). */
  verifyClientState(value: unknown): boolean {
    if (typeof value !== 'string') return false;
    return timingSafeEqual(createHash('sha256').update(value).digest(), this.clientStateDigest);
  }

  list(): TeamsSubscriptionInfo[] {
    return [...this.set.values()].map((s) => ({
      id: s.id,
      owner: s.owner,
      userIds: [...s.ids],
      expiresAt: s.expiresAt,
    }));
  }

  coveredIds(now: number): Set<string> {
    const out = new Set<string>();
    for (const s of [...this.set.values(), ...this.lease.followed])
      if (s.expiresAt > now) for (const id of s.ids) out.add(id);
    return out;
  }

  /** Whether this node manages the subscriptions: always alone; with shared locks, while it holds the lease. */
  get managing(): boolean {
    return this.lease.managing;
  }

  /** See TeamsConnector.syncSubscriptions. */
  sync(): Promise<void> {
    return this.rt.track(this.serial(() => this.managed(() => this.set.sync())));
  }

  /** See TeamsConnector.renewSubscriptions. */
  renew(): Promise<void> {
    return this.rt.track(this.serial(() => this.managed(() => this.set.renew())));
  }

  /** Runs `work` if this node manages the subscriptions (taking or keeping the lease first), then notes the set. */
  private async managed(work: () => Promise<void>): Promise<void> {
    if (!this.enabled || this.rt.ctx === null || this.rt.stopped) return;
    if (!(await this.lease.manage())) return;
    await work();
    await this.lease.note(this.set.values());
  }

  /** See TeamsConnector.handleLifecycleNotifications. */
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void> {
    if (this.rt.ctx === null || this.rt.stopped) return Promise.resolve();
    return this.rt.track(
      this.serial(async () => {
        // With shared locks, the managing node acts on them (another node holds none).
        if (this.lease.shared && !(await this.lease.manage())) {
          this.rt.log.debug(
            { platform: 'teams', items: items.length },
            'lifecycle notifications left to the node managing the Teams subscriptions',
          );
          return;
        }
        await this.set.lifecycle(items);
        await this.lease.note(this.set.values());
      }),
    );
  }

  /**
   * A stop's end of the subscriptions. Alone: deletes every one still live (see
   * SubscriptionSet.deleteAll). With shared locks: hands them over, noted, with the lease
   * released at once (see SubscriptionLease.handOver).
   */
  deleteAll(): Promise<void> {
    return this.serial(async () => {
      if (this.lease.shared) {
        await this.lease.handOver(this.set.values());
        this.set.clear();
        return;
      }
      await this.set.deleteAll();
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.subChain.then(fn, fn);
    this.subChain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  private cronLogger(): {
    info(m: string): void;
    warn(m: string): void;
    error(m: string | Error): void;
    debug(m: string | Error): void;
  } {
    const text = (m: string | Error): string => (typeof m === 'string' ? m : m.message);
    return {
      info: (m) => this.rt.log.debug({ platform: 'teams' }, text(m)),
      warn: (m) => this.rt.log.warn({ platform: 'teams' }, text(m)),
      error: (m) => this.rt.log.error({ platform: 'teams' }, text(m)),
      debug: (m) => this.rt.log.debug({ platform: 'teams' }, text(m)),
    };
  }
}
