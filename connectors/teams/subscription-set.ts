/**
 * @module connectors/teams/subscription-set
 * The presence subscriptions this node holds, and all the Graph work on them:
 * `/communications/presences?$filter=id in (…)` for up to 650 delegated users each, owned by one
 * of those users (Graph allows one presence subscription per user per app), at most 60 minutes
 * long; a sync groups the linked users with a delegated token into subscriptions and creates the
 * missing ones, a renewal extends those near their end, and lifecycle notifications reauthorize,
 * recreate or catch up on them. Every call is made with the owner's delegated token.
 *
 * A lost list (adopt.ts): when the lease says the list was lost (a node took the lock without a
 * note, Redis restarted empty, or with one naming subscriptions already over, an old note), the
 * next sync asks Graph, listing with each uncovered user's delegated token the subscriptions this
 * app made for them, and adopts its own before it creates any; and whenever Graph answers a
 * create with 409 (that owner already has one, e.g. from before a crash of a lone process), that
 * owner's listing is read and its subscription adopted. Those it cannot use (users no longer
 * linked, a duplicate) are deleted, so their owners are free again at once.
 *
 * Which node may do this work, and when, is SubscriptionManager's (subscriptions.ts): it runs
 * every method here on its one chain, and only while this node manages the subscriptions
 * (lease.ts), so nothing here guards against concurrent use.
 */

import type { AccountRef } from '../../src/core/ports';
import { parseIsoAssumingUtc, toIso } from '../../src/core/time';
import { MAX_IDS_PER_CALL, type TeamsGraphClient, TeamsGraphError } from './client';
import type { TeamsHealth } from './health';
import { ownSubscription } from './adopt';
import { chunks } from './ids';
import type { TeamsRuntime } from './runtime';
import type { GraphLifecycleNotification } from './types';

/** Graph's longest presence subscription (changenotifications-for-presence). */
export const MAX_SUBSCRIPTION_MS = 60 * 60_000;

/** A subscription as it is held, and as the lease's note names it. */
export interface SubState {
  id: string;
  owner: AccountRef;
  ownerId: string;
  ids: string[];
  expiresAt: number;
}

export interface SubscriptionDeps {
  /** Graph with the given bearer token. */
  readonly client: (token: () => Promise<string>) => TeamsGraphClient;
  /** A subscription missed notifications: its users are fetched at once. */
  readonly onMissed: (ids: readonly string[]) => void;
}

/** The settings the set works with, read and checked from the options by SubscriptionManager. */
export interface SetSettings {
  readonly lifetimeMs: number;
  readonly renewBeforeMs: number;
  readonly syncIntervalMs: number;
  /** The secret sent as clientState when creating subscriptions. */
  readonly clientState: string;
  readonly notificationUrl: string | null;
  readonly lifecycleUrl: string | null;
  /** Each linked user's delegated token; without it there are no subscriptions. */
  readonly delegatedTokenFor: ((account: AccountRef) => Promise<string | null>) | undefined;
  readonly onDelegatedTokenRejected:
    ((account: AccountRef, reason: string) => void | Promise<void>) | undefined;
}

/** The presence resource for a bulk subscription (changenotifications-for-presence). */
export function presenceResource(ids: readonly string[]): string {
  return `/communications/presences?$filter=id in (${ids.map((id) => `'${id}'`).join(', ')})`;
}

function parseExpiry(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const t = parseIsoAssumingUtc(value);
  return Number.isNaN(t) ? fallback : t;
}

export class SubscriptionSet {
  private readonly subs = new Map<string, SubState>();
  /** The list was lost (no note, or an old one): the next sync asks Graph before it creates. */
  private discover = false;
  /**
   * Subscriptions this node let go (removed, unrenewable, deleted) until their expiry: never
   * adopted again from a listing, which may still show them for a while.
   */
  private readonly refused = new Map<string, number>();
  private nextSyncAt = 0;

  constructor(
    private readonly rt: TeamsRuntime,
    private readonly health: TeamsHealth,
    private readonly settings: SetSettings,
    private readonly deps: SubscriptionDeps,
  ) {}

  get enabled(): boolean {
    return this.settings.delegatedTokenFor !== undefined && this.settings.notificationUrl !== null;
  }

  /** The subscriptions held. */
  values(): IterableIterator<SubState> {
    return this.subs.values();
  }

  /** This node took the lease: it holds the note's live subscriptions, asking Graph first when `askGraph`. */
  take(live: readonly SubState[], askGraph: boolean): void {
    this.subs.clear();
    for (const s of live) this.subs.set(s.id, s);
    this.discover = askGraph;
  }

  /** Holds none any more (the lease went to another node, or they were handed over). */
  clear(): void {
    this.subs.clear();
  }

  /** Matches the subscriptions to the linked users with a delegated token; see TeamsConnector.syncSubscriptions. */
  async sync(): Promise<void> {
    if (!this.enabled || this.rt.ctx === null || this.rt.stopped) return;
    const now = this.rt.clock.now();
    this.nextSyncAt = now + this.settings.syncIntervalMs;
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
    const { notificationUrl, lifecycleUrl } = this.settings;
    if (owner === undefined || notificationUrl === null || lifecycleUrl === null) return 0;
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
        notificationUrl,
        lifecycleUrl,
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
    const url = this.settings.notificationUrl!;
    const lifecycle = this.settings.lifecycleUrl!;
    for (const ownerId of ids.slice(0, 3)) {
      const owner = delegated.get(ownerId)!;
      const now = this.rt.clock.now();
      try {
        const created = await this.graphAs(owner.token).createSubscription({
          changeType: 'updated',
          notificationUrl: url,
          lifecycleNotificationUrl: lifecycle,
          resource: presenceResource(ids),
          expirationDateTime: toIso(now + this.settings.lifetimeMs),
          clientState: this.settings.clientState,
        });
        this.subs.set(created.id, {
          id: created.id,
          owner: owner.account,
          ownerId,
          ids,
          expiresAt: parseExpiry(created.expirationDateTime, now + this.settings.lifetimeMs),
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

  /** Renews those near their end; see TeamsConnector.renewSubscriptions. */
  async renew(): Promise<void> {
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
      if (sub.expiresAt - now > this.settings.renewBeforeMs) continue;
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
    if (lost || this.discover || now >= this.nextSyncAt) await this.sync();
    else this.health.setSubProblem(problem);
  }

  /** 'ok', 'drop' (the subscription is gone or unusable), or a problem to retry next minute. */
  private async renewOne(sub: SubState, token: string): Promise<'ok' | 'drop' | { problem: string }> {
    const now = this.rt.clock.now();
    try {
      const res = await this.graphAs(token).renewSubscription(sub.id, toIso(now + this.settings.lifetimeMs));
      sub.expiresAt = parseExpiry(res?.expirationDateTime, now + this.settings.lifetimeMs);
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

  /** See TeamsConnector.handleLifecycleNotifications. */
  async lifecycle(items: readonly GraphLifecycleNotification[]): Promise<void> {
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
    if (lost) await this.sync();
  }

  /**
   * Alone, at a stop: deletes every one still live (Graph allows one presence subscription per
   * user and app: deleting ours lets the next start create them again at once instead of waiting
   * up to an hour for them to lapse).
   */
  async deleteAll(): Promise<void> {
    for (const sub of [...this.subs.values()]) {
      this.subs.delete(sub.id);
      if (sub.expiresAt <= this.rt.clock.now()) continue;
      const token = await this.delegatedToken(sub.owner);
      if (token !== null) await this.deleteRemote(sub, token);
    }
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
    const get = this.settings.delegatedTokenFor;
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
      .then(() => this.settings.onDelegatedTokenRejected?.(account, reason))
      .catch((e: unknown) =>
        this.rt.log.error({ platform: 'teams', err: e }, 'onDelegatedTokenRejected failed'),
      );
  }
}
