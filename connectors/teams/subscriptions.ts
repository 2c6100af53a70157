/**
 * @module connectors/teams/subscriptions
 * Graph presence change-notification subscriptions: `/communications/presences?$filter=id in (…)`
 * for up to 650 delegated users each, owned by one of those users (Graph allows one presence
 * subscription per user per app), at most 60 minutes long, renewed ahead of expiry from a
 * node-cron schedule, and reauthorized, recreated or caught up on as lifecycle notifications say.
 * Every change to the set goes through one chain, so a sync, a renewal and a lifecycle event
 * never work on it at the same time.
 *
 * Several nodes (issue #16, `locks` shared): one node manages the tenant's subscriptions, the
 * holder of the lease lock `teams-subscriptions:<tenant>`, renewed at every cron tick; only it
 * creates, renews, reauthorizes and deletes them, so each is renewed once. After every change it
 * writes the set as the lock's note, and a node that takes the lock (the holder stopped or died)
 * adopts the set from the note and carries on renewing it: Graph allows one presence
 * subscription per user and app, so recreating them instead would be refused (409) until the old
 * ones lapsed. A stopping holder hands over (note written, lock released at once) instead of
 * deleting them. The other nodes read the note at their ticks to know who is covered (polled at
 * the reconcile interval) and take notifications like the holder (the clientState is derived
 * from the shared secret key).
 *
 * A lost list (adopt.ts): a node taking the lock without a note (Redis restarted empty) or with
 * one naming subscriptions already over (an old note) asks Graph, listing with each uncovered
 * user's delegated token the subscriptions this app made for them, and adopts its own before it
 * creates any; and whenever Graph answers a create with 409 (that owner already has one, e.g.
 * from before a crash of a lone process), that owner's listing is read and its subscription
 * adopted. Those it cannot use (users no longer linked, a duplicate) are deleted, so their
 * owners are free again at once.
 */

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

import cron, { type ScheduledTask } from 'node-cron';

import type { AccountRef, Lease, Locks } from '../../src/core/ports';
import { parseIsoAssumingUtc, toIso } from '../../src/core/time';
import { isSafeTokenUrl, MAX_IDS_PER_CALL, type TeamsGraphClient, TeamsGraphError } from './client';
import type { TeamsHealth } from './health';
import { ownSubscription } from './adopt';
import { chunks } from './ids';
import type { TeamsRuntime } from './runtime';
import type { GraphLifecycleNotification } from './types';

/** Graph's longest presence subscription (changenotifications-for-presence). */
export const MAX_SUBSCRIPTION_MS = 60 * 60_000;

/** The managing node's lease, renewed every cron tick (a minute by default): three ticks. */
export const SUBSCRIPTION_LEASE_MS = 3 * 60_000;

/** The coordination lock of a tenant's subscriptions. */
export const subscriptionLockKey = (tenantId: string): string =>
  `teams-subscriptions:${tenantId.toLowerCase()}`;

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
  /** Locks shared by the nodes: when `shared`, one node manages the subscriptions (see above). */
  readonly locks?: Locks;
  /** The managing node's lease (default `SUBSCRIPTION_LEASE_MS`): longer than the cron's interval. */
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

export interface SubscriptionDeps {
  /** Graph with the given bearer token. */
  readonly client: (token: () => Promise<string>) => TeamsGraphClient;
  /** A subscription missed notifications: its users are fetched at once. */
  readonly onMissed: (ids: readonly string[]) => void;
}

interface SubState {
  id: string;
  owner: AccountRef;
  ownerId: string;
  ids: string[];
  expiresAt: number;
}

/** The presence resource for a bulk subscription (changenotifications-for-presence). */
export function presenceResource(ids: readonly string[]): string {
  return `/communications/presences?$filter=id in (${ids.map((id) => `'${id}'`).join(', ')})`;
}

/** The note the managing node writes: its subscriptions, for whoever manages them next. */
function noteOf(subs: Iterable<SubState>): string {
  return JSON.stringify({ v: 1, subs: [...subs] });
}

function isAccount(v: unknown): v is AccountRef {
  const a = v as Partial<AccountRef> | null;
  return (
    typeof a?.platform === 'string' && typeof a.externalId === 'string' && typeof a.workspaceId === 'string'
  );
}

/**
 * The subscriptions a note names (those it cannot read are left out), or null for no note or
 * one that is not a note at all.
 */
function subsOfNote(note: string | null): SubState[] | null {
  if (note === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(note);
  } catch {
    return null;
  }
  const subs = (parsed as { subs?: unknown } | null)?.subs;
  if (!Array.isArray(subs)) return null;
  return subs.filter(
    (s): s is SubState =>
      typeof s === 'object' &&
      s !== null &&
      typeof (s as SubState).id === 'string' &&
      typeof (s as SubState).ownerId === 'string' &&
      typeof (s as SubState).expiresAt === 'number' &&
      isAccount((s as SubState).owner) &&
      Array.isArray((s as SubState).ids) &&
      (s as SubState).ids.every((id) => typeof id === 'string'),
  );
}

function parseExpiry(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const t = parseIsoAssumingUtc(value);
  return Number.isNaN(t) ? fallback : t;
}

export class SubscriptionManager {
  private readonly lifetimeMs: number;
  private readonly renewBeforeMs: number;
  private readonly syncIntervalMs: number;
  private readonly clientStateDigest: Buffer;
  /** The secret sent as clientState when creating subscriptions. */
  private readonly clientState: string;
  private readonly notificationUrl: string | null;
  private readonly lifecycleUrl: string | null;
  /** Each linked user's delegated token; without it there are no subscriptions. */
  private readonly delegatedTokenFor: SubscriptionOptions['delegatedTokenFor'];
  private readonly onDelegatedTokenRejected: SubscriptionOptions['onDelegatedTokenRejected'];
  private readonly firstSyncDelayMs: number;
  private readonly renewCron: string;

  private readonly subs = new Map<string, SubState>();
  /** Shared locks (several nodes), else null: this process manages the subscriptions alone. */
  private readonly locks: Locks | null;
  private readonly lockKey: string;
  private readonly leaseMs: number;
  /** This node's lease on managing the subscriptions (shared locks only). */
  private lease: Lease | null = null;
  /** Another node manages them: its subscriptions as its note last said (coverage only). */
  private followed: SubState[] = [];
  /** The list was lost (no note, or an old one): the next sync asks Graph before it creates. */
  private discover = false;
  /**
   * Subscriptions this manager let go (removed, unrenewable, deleted) until their expiry: never
   * adopted again from a listing, which may still show them for a while.
   */
  private readonly refused = new Map<string, number>();
  private nextSyncAt = 0;
  private subChain: Promise<void> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | null = null;
  private cronTask: ScheduledTask | null = null;

  constructor(
    private readonly rt: TeamsRuntime,
    private readonly health: TeamsHealth,
    options: SubscriptionOptions,
    private readonly deps: SubscriptionDeps,
  ) {
    this.locks = options.locks?.shared === true ? options.locks : null;
    this.lockKey = subscriptionLockKey(options.tenantId);
    this.leaseMs = options.subscriptionLeaseMs ?? SUBSCRIPTION_LEASE_MS;
    this.delegatedTokenFor = options.delegatedTokenFor;
    this.onDelegatedTokenRejected = options.onDelegatedTokenRejected;
    this.firstSyncDelayMs = options.firstSyncDelayMs ?? 5_000;
    this.renewCron = options.renewCron ?? '* * * * *';
    this.lifetimeMs = options.subscriptionLifetimeMs ?? 55 * 60_000;
    this.renewBeforeMs = options.renewBeforeMs ?? 10 * 60_000;
    this.syncIntervalMs = options.subscriptionSyncIntervalMs ?? 5 * 60_000;
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
  }

  get enabled(): boolean {
    return this.delegatedTokenFor !== undefined && this.notificationUrl !== null;
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
    return [...this.subs.values()].map((s) => ({
      id: s.id,
      owner: s.owner,
      userIds: [...s.ids],
      expiresAt: s.expiresAt,
    }));
  }

  coveredIds(now: number): Set<string> {
    const out = new Set<string>();
    for (const s of [...this.subs.values(), ...this.followed])
      if (s.expiresAt > now) for (const id of s.ids) out.add(id);
    return out;
  }

  /** Whether this node manages the subscriptions: always alone; with shared locks, while it holds the lease. */
  get managing(): boolean {
    return this.locks === null || this.lease !== null;
  }

  /** See TeamsConnector.syncSubscriptions. */
  sync(): Promise<void> {
    return this.rt.track(this.serial(() => this.managed(() => this.doSync())));
  }

  /** See TeamsConnector.renewSubscriptions. */
  renew(): Promise<void> {
    return this.rt.track(this.serial(() => this.managed(() => this.doRenew())));
  }

  /** Runs `work` if this node manages the subscriptions (taking or keeping the lease first), then notes the set. */
  private async managed(work: () => Promise<void>): Promise<void> {
    if (!this.enabled || this.rt.ctx === null || this.rt.stopped) return;
    if (!(await this.manage())) return;
    await work();
    await this.note();
  }

  /**
   * Keeps or takes the lease (shared locks); true when this node manages the subscriptions now.
   * A node that takes it adopts the set from the last holder's note; one that does not follows
   * the note for coverage.
   */
  private async manage(): Promise<boolean> {
    const locks = this.locks;
    if (locks === null) return true;
    try {
      if (this.lease !== null) {
        const renewed = await locks.renew(this.lease, this.leaseMs);
        if (renewed !== null) {
          this.lease = renewed;
          return true;
        }
        this.lost('another node took over the Teams subscriptions');
      } else {
        const lease = await locks.acquire(this.lockKey, this.leaseMs);
        if (lease !== null) {
          this.lease = lease;
          const now = this.rt.clock.now();
          const noted = subsOfNote(await locks.readNote(this.lockKey));
          const adopted = (noted ?? []).filter((s) => s.expiresAt > now);
          this.subs.clear();
          for (const s of adopted) this.subs.set(s.id, s);
          this.followed = [];
          // No note (Redis lost it) or one naming subscriptions already over (an old note): Graph
          // may hold live ones it does not name, which it would not let us create again.
          this.discover = noted === null || adopted.length < noted.length;
          this.rt.log.info(
            { platform: 'teams', subscriptions: adopted.length, askingGraph: this.discover },
            'this node manages the Teams subscriptions now',
          );
          return true;
        }
      }
      this.followed = subsOfNote(await locks.readNote(this.lockKey)) ?? [];
      return false;
    } catch (e) {
      // The coordination cannot be reached: the lease is ours until its end by our clock, and
      // another node may take it after, so this node stops managing then.
      const lease = this.lease;
      if (lease !== null && this.rt.clock.now() < lease.expiresAt) return true;
      if (lease !== null) this.lost('the Teams subscriptions lease ended unrenewed');
      this.rt.log.warn(
        { platform: 'teams', err: e instanceof Error ? e.message : String(e) },
        'Teams subscriptions: the coordination is unreachable',
      );
      return false;
    }
  }

  /** Writes the set as the lease's note (shared locks, while held); a refused write means the lease is gone. */
  private async note(): Promise<void> {
    const lease = this.lease;
    if (this.locks === null || lease === null) return;
    try {
      if (
        !(await this.locks.writeNote(lease, noteOf(this.subs.values()), MAX_SUBSCRIPTION_MS + this.leaseMs))
      )
        this.lost('another node took over the Teams subscriptions');
    } catch (e) {
      // Written again after the next change or tick; a successor meanwhile reads the last one.
      this.rt.log.warn(
        { platform: 'teams', err: e instanceof Error ? e.message : String(e) },
        'Teams subscriptions: noting them for the other nodes failed',
      );
    }
  }

  /** The lease is gone: the subscriptions are the new holder's (it adopted them from the note). */
  private lost(message: string): void {
    this.lease = null;
    this.subs.clear();
    this.rt.log.warn({ platform: 'teams' }, message);
  }

  /** See TeamsConnector.handleLifecycleNotifications. */
  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void> {
    if (this.rt.ctx === null || this.rt.stopped) return Promise.resolve();
    return this.rt.track(
      this.serial(async () => {
        // With shared locks, the managing node acts on them (another node holds none).
        if (this.locks !== null && !(await this.manage())) {
          this.rt.log.debug(
            { platform: 'teams', items: items.length },
            'lifecycle notifications left to the node managing the Teams subscriptions',
          );
          return;
        }
        await this.lifecycle(items);
        await this.note();
      }),
    );
  }

  private async lifecycle(items: readonly GraphLifecycleNotification[]): Promise<void> {
    let lost = false;
    for (const item of items) {
      const sub = typeof item.subscriptionId === 'string' ? this.subs.get(item.subscriptionId) : undefined;
      if (sub === undefined) {
        this.rt.log.info(
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
          this.let(sub);
          lost = true;
          break;
        case 'missed':
          this.deps.onMissed(sub.ids);
          break;
        default:
          this.rt.log.info({ platform: 'teams', event: item.lifecycleEvent }, 'lifecycle event ignored');
      }
    }
    if (lost) await this.doSync();
  }

  /**
   * A stop's end of the subscriptions. Alone: deletes every one still live (Graph allows one
   * presence subscription per user and app: deleting ours lets the next start create them again
   * at once instead of waiting up to an hour for them to lapse). With shared locks: hands them
   * over, noted, with the lease released at once.
   */
  deleteAll(): Promise<void> {
    return this.serial(async () => {
      if (this.locks !== null) {
        // Several nodes: hand over instead. The note names them, and whoever takes the lease
        // next adopts and renews them, without a gap in notifications.
        const lease = this.lease;
        if (lease !== null) {
          await this.note();
          await this.locks.release(lease).catch(() => false);
          this.lease = null;
        }
        this.subs.clear();
        this.followed = [];
        return;
      }
      for (const sub of [...this.subs.values()]) {
        this.subs.delete(sub.id);
        if (sub.expiresAt <= this.rt.clock.now()) continue;
        const token = await this.delegatedToken(sub.owner);
        if (token !== null) await this.deleteRemote(sub, token);
      }
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

  private async doSync(): Promise<void> {
    if (!this.enabled || this.rt.ctx === null || this.rt.stopped) return;
    const now = this.rt.clock.now();
    this.nextSyncAt = now + this.syncIntervalMs;
    const delegated = new Map<string, { account: AccountRef; token: string }>();
    for (const [id, accounts] of this.rt.index()) {
      for (const account of accounts) {
        const token = await this.delegatedToken(account);
        if (token !== null) {
          delegated.set(id, { account, token });
          break;
        }
      }
    }
    for (const [id, expiresAt] of this.refused) if (expiresAt <= now) this.refused.delete(id);
    let problem: string | null = null;
    const covered = new Set<string>();
    for (const sub of [...this.subs.values()]) {
      const fits =
        sub.expiresAt > now && delegated.has(sub.ownerId) && sub.ids.every((id) => delegated.has(id));
      if (fits) {
        for (const id of sub.ids) covered.add(id);
        continue;
      }
      this.let(sub);
      const owner = delegated.get(sub.ownerId);
      if (owner !== undefined && sub.expiresAt > now) await this.deleteRemote(sub, owner.token);
    }
    const uncovered = (): string[] => [...delegated.keys()].filter((id) => !covered.has(id)).sort();
    if (this.discover) {
      this.discover = false;
      // In id order, as subscriptions are created (owned by one of the first ids of a group): one
      // listing usually covers a whole group of 650.
      for (const id of uncovered()) {
        if (!covered.has(id)) await this.adoptListed(id, delegated, covered);
      }
    }
    // A 409 whose subscription was adopted changes what is uncovered: work it out again (bounded:
    // each pass adopts at least one subscription or ends).
    for (let pass = 0; pass < 3; pass++) {
      let again = false;
      for (const ids of chunks(uncovered(), MAX_IDS_PER_CALL)) {
        const outcome = await this.create(ids, delegated, covered);
        if (outcome === 'adopted') {
          again = true;
          break;
        }
        if (outcome !== 'created') {
          problem = outcome.problem;
          break;
        }
      }
      if (!again) break;
    }
    this.health.setSubProblem(problem);
  }

  /** Lets a subscription go: no longer held, and never adopted again from a listing. */
  private let(sub: SubState): void {
    this.subs.delete(sub.id);
    this.refused.set(sub.id, Math.max(sub.expiresAt, this.rt.clock.now() + MAX_SUBSCRIPTION_MS));
  }

  /**
   * Lists the subscriptions this app made for `ownerId` (its delegated token) and adopts those
   * that are the connector's own and cover only linked users none of the held ones cover; an own
   * one that does not fit is deleted (its owner may then own a new one at once). How many it
   * adopted.
   */
  private async adoptListed(
    ownerId: string,
    delegated: ReadonlyMap<string, { account: AccountRef; token: string }>,
    covered: Set<string>,
  ): Promise<number> {
    const owner = delegated.get(ownerId);
    if (owner === undefined || this.notificationUrl === null || this.lifecycleUrl === null) return 0;
    let listed;
    try {
      listed = await this.graphAs(owner.token).listSubscriptions();
    } catch (e) {
      // Not fatal: creating goes on, and a 409 for this owner asks again.
      this.rt.log.warn(
        { platform: 'teams', err: e instanceof Error ? e.message : String(e) },
        'listing the Teams subscriptions of a user failed',
      );
      if (e instanceof TeamsGraphError && e.kind === 'unauthorized') this.rejected(owner.account, e.message);
      return 0;
    }
    const now = this.rt.clock.now();
    let adopted = 0;
    for (const g of listed) {
      const own = ownSubscription(g, {
        notificationUrl: this.notificationUrl,
        lifecycleUrl: this.lifecycleUrl,
        ownerId,
        now,
      });
      if (own === null || this.subs.has(own.id) || this.refused.has(own.id)) continue;
      const sub: SubState = { ...own, owner: owner.account, ownerId };
      if (sub.ids.some((id) => covered.has(id) || !delegated.has(id))) {
        this.let(sub);
        await this.deleteRemote(sub, owner.token);
        continue;
      }
      this.subs.set(sub.id, sub);
      for (const id of sub.ids) covered.add(id);
      adopted += 1;
      this.rt.log.info(
        { platform: 'teams', subscriptionId: sub.id, users: sub.ids.length },
        'Teams presence subscription found at Graph and adopted',
      );
    }
    return adopted;
  }

  /**
   * Creates one subscription for `ids`, owned by the first of them whose token Graph takes;
   * 'adopted' when a 409 led to adopting the owner's existing one instead.
   */
  private async create(
    ids: string[],
    delegated: ReadonlyMap<string, { account: AccountRef; token: string }>,
    covered: Set<string>,
  ): Promise<'created' | 'adopted' | { problem: string }> {
    const url = this.notificationUrl!;
    const lifecycle = this.lifecycleUrl!;
    for (const ownerId of ids.slice(0, 3)) {
      const owner = delegated.get(ownerId)!;
      const now = this.rt.clock.now();
      try {
        const created = await this.graphAs(owner.token).createSubscription({
          changeType: 'updated',
          notificationUrl: url,
          lifecycleNotificationUrl: lifecycle,
          resource: presenceResource(ids),
          expirationDateTime: toIso(now + this.lifetimeMs),
          clientState: this.clientState,
        });
        this.subs.set(created.id, {
          id: created.id,
          owner: owner.account,
          ownerId,
          ids,
          expiresAt: parseExpiry(created.expirationDateTime, now + this.lifetimeMs),
        });
        this.rt.log.info(
          { platform: 'teams', subscriptionId: created.id, users: ids.length },
          'Teams presence subscription created',
        );
        return 'created';
      } catch (e) {
        const err = e instanceof TeamsGraphError ? e : null;
        const message = `creating a Teams presence subscription failed: ${e instanceof Error ? e.message : String(e)}`;
        this.rt.log.warn({ platform: 'teams', users: ids.length }, message);
        if (err?.kind === 'unauthorized') {
          this.rejected(owner.account, err.message);
          continue;
        }
        // 409: they already own one (from before a crash, or the note was lost): ours, it is
        // adopted instead. 403 (this user lacks the delegated permission) and a 409 for one that
        // is not ours are about the owner: another user of the batch may own it.
        if (err?.kind === 'conflict' && (await this.adoptListed(ownerId, delegated, covered)) > 0) {
          return 'adopted';
        }
        if (err?.kind === 'forbidden' || err?.kind === 'conflict') continue;
        if (err?.kind === 'client') {
          return {
            problem: `${message} (Graph validates the notification URL: it must be public HTTPS and answer the validationToken handshake)`,
          };
        }
        return { problem: message };
      }
    }
    return {
      problem: 'creating a Teams presence subscription failed for every owner tried; those users are polled',
    };
  }

  private async doRenew(): Promise<void> {
    if (!this.enabled || this.rt.ctx === null || this.rt.stopped) return;
    const now = this.rt.clock.now();
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
      const outcome = await this.renewOne(sub, token);
      if (outcome === 'drop') lost = true;
      else if (outcome !== 'ok') problem = outcome.problem;
    }
    // A lost list is looked for at Graph at once, before users go uncovered for long.
    if (lost || this.discover || now >= this.nextSyncAt) await this.doSync();
    else this.health.setSubProblem(problem);
  }

  /** 'ok', 'drop' (the subscription is gone or unusable), or a problem to retry next minute. */
  private async renewOne(sub: SubState, token: string): Promise<'ok' | 'drop' | { problem: string }> {
    const now = this.rt.clock.now();
    try {
      const res = await this.graphAs(token).renewSubscription(sub.id, toIso(now + this.lifetimeMs));
      sub.expiresAt = parseExpiry(res?.expirationDateTime, now + this.lifetimeMs);
      this.rt.log.debug({ platform: 'teams', subscriptionId: sub.id }, 'Teams presence subscription renewed');
      return 'ok';
    } catch (e) {
      const err = e instanceof TeamsGraphError ? e : null;
      const message = `renewing Teams subscription ${sub.id} failed: ${e instanceof Error ? e.message : String(e)}`;
      this.rt.log.warn({ platform: 'teams', subscriptionId: sub.id }, message);
      if (err?.kind === 'unauthorized') this.rejected(sub.owner, err.message);
      if (
        err !== null &&
        ['unauthorized', 'forbidden', 'not_found', 'client', 'conflict'].includes(err.kind)
      ) {
        this.let(sub);
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
      await this.graphAs(token).reauthorizeSubscription(sub.id);
      this.rt.log.info({ platform: 'teams', subscriptionId: sub.id }, 'Teams subscription reauthorized');
      return true;
    } catch (e) {
      this.rt.log.warn(
        { platform: 'teams', subscriptionId: sub.id },
        `reauthorizing failed (${e instanceof Error ? e.message : String(e)}); renewing instead`,
      );
      if (e instanceof TeamsGraphError && e.kind === 'unauthorized') {
        this.rejected(sub.owner, e.message);
        this.subs.delete(sub.id);
        return false;
      }
    }
    const outcome = await this.renewOne(sub, token);
    if (outcome === 'ok') return true;
    this.subs.delete(sub.id);
    return false;
  }

  private async deleteRemote(sub: SubState, token: string): Promise<void> {
    try {
      await this.graphAs(token).deleteSubscription(sub.id);
    } catch (e) {
      // A subscription Graph cannot find has already gone; any other failure lets it lapse.
      if (!(e instanceof TeamsGraphError && e.kind === 'not_found')) {
        this.rt.log.warn(
          { platform: 'teams', subscriptionId: sub.id },
          `deleting a Teams subscription failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
  }

  /** Graph as the user whose delegated token this is. */
  private graphAs(token: string): TeamsGraphClient {
    return this.deps.client(() => Promise.resolve(token));
  }

  private async delegatedToken(account: AccountRef): Promise<string | null> {
    const get = this.delegatedTokenFor;
    if (get === undefined) return null;
    try {
      const token = await get(account);
      return typeof token === 'string' && token !== '' ? token : null;
    } catch (e) {
      this.rt.log.warn(
        { platform: 'teams', externalId: account.externalId, err: e instanceof Error ? e.message : 'error' },
        'no delegated Teams token for this account',
      );
      return null;
    }
  }

  private rejected(account: AccountRef, reason: string): void {
    // Not awaited (it records the connection's health in the store).
    Promise.resolve()
      .then(() => this.onDelegatedTokenRejected?.(account, reason))
      .catch((e: unknown) =>
        this.rt.log.error({ platform: 'teams', err: e }, 'onDelegatedTokenRejected failed'),
      );
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
