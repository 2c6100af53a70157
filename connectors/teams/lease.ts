/**
 * @module connectors/teams/lease
 * Several nodes (issue #16, `locks` shared): which node manages the tenant's presence
 * subscriptions. It is the holder of the lease lock `teams-subscriptions:<tenant>`, renewed at
 * every cron tick; only it creates, renews, reauthorizes and deletes them, so each is renewed
 * once. After every change it writes the set as the lock's note, and a node that takes the lock
 * (the holder stopped or died) adopts the set from the note and carries on renewing it: Graph
 * allows one presence subscription per user and app, so recreating them instead would be refused
 * (409) until the old ones lapsed. A stopping holder hands over (note written, lock released at
 * once) instead of deleting them. The other nodes read the note at their ticks to know who is
 * covered (polled at the reconcile interval).
 *
 * Apart from the subscription set (subscription-set.ts) because none of this touches Graph: it is
 * the lock, the note's format and the moments the lease is taken, kept, lost and handed over.
 * Without shared locks there is no lease: this process manages the subscriptions alone.
 */

import type { AccountRef, Lease, Locks } from '../../src/core/ports';
import type { TeamsRuntime } from './runtime';
import { MAX_SUBSCRIPTION_MS, type SubState } from './subscription-set';

/** The managing node's lease, renewed every cron tick (a minute by default): three ticks. */
export const SUBSCRIPTION_LEASE_MS = 3 * 60_000;

/** The coordination lock of a tenant's subscriptions. */
export const subscriptionLockKey = (tenantId: string): string =>
  `teams-subscriptions:${tenantId.toLowerCase()}`;

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

/** What the lease does to the subscriptions this node holds. */
export interface LeaseEvents {
  /**
   * This node took the lease: it holds the note's live subscriptions now. `askGraph`: the list
   * was lost (no note, or an old one), so Graph may hold live ones the note does not name.
   */
  readonly taken: (live: SubState[], askGraph: boolean) => void;
  /** The lease is gone: the subscriptions are the new holder's (it adopted them from the note). */
  readonly lost: () => void;
}

export class SubscriptionLease {
  /** Shared locks (several nodes), else null: this process manages the subscriptions alone. */
  private readonly locks: Locks | null;
  private readonly lockKey: string;
  private readonly leaseMs: number;
  /** This node's lease on managing the subscriptions (shared locks only). */
  private lease: Lease | null = null;
  /** Another node manages them: its subscriptions as its note last said (coverage only). */
  private followedSubs: SubState[] = [];

  constructor(
    private readonly rt: TeamsRuntime,
    options: { readonly tenantId: string; readonly locks?: Locks; readonly subscriptionLeaseMs?: number },
    private readonly events: LeaseEvents,
  ) {
    this.locks = options.locks?.shared === true ? options.locks : null;
    this.lockKey = subscriptionLockKey(options.tenantId);
    this.leaseMs = options.subscriptionLeaseMs ?? SUBSCRIPTION_LEASE_MS;
  }

  /** Whether the locks are shared by several nodes (else there is no lease to take). */
  get shared(): boolean {
    return this.locks !== null;
  }

  /** Whether this node manages the subscriptions: always alone; with shared locks, while it holds the lease. */
  get managing(): boolean {
    return this.locks === null || this.lease !== null;
  }

  /** The managing node's subscriptions as its note last said, while another node manages them. */
  get followed(): readonly SubState[] {
    return this.followedSubs;
  }

  /**
   * Keeps or takes the lease (shared locks); true when this node manages the subscriptions now.
   * A node that takes it adopts the set from the last holder's note; one that does not follows
   * the note for coverage.
   */
  async manage(): Promise<boolean> {
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
          // No note (Redis lost it) or one naming subscriptions already over (an old note): Graph
          // may hold live ones it does not name, which it would not let us create again.
          const askGraph = noted === null || adopted.length < noted.length;
          this.events.taken(adopted, askGraph);
          this.followedSubs = [];
          this.rt.log.info(
            { platform: 'teams', subscriptions: adopted.length, askingGraph: askGraph },
            'this node manages the Teams subscriptions now',
          );
          return true;
        }
      }
      this.followedSubs = subsOfNote(await locks.readNote(this.lockKey)) ?? [];
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
  async note(subs: Iterable<SubState>): Promise<void> {
    const lease = this.lease;
    if (this.locks === null || lease === null) return;
    try {
      if (!(await this.locks.writeNote(lease, noteOf(subs), MAX_SUBSCRIPTION_MS + this.leaseMs)))
        this.lost('another node took over the Teams subscriptions');
    } catch (e) {
      // Written again after the next change or tick; a successor meanwhile reads the last one.
      this.rt.log.warn(
        { platform: 'teams', err: e instanceof Error ? e.message : String(e) },
        'Teams subscriptions: noting them for the other nodes failed',
      );
    }
  }

  /**
   * A stop with shared locks: hands the subscriptions over instead of deleting them. The note
   * names them, and whoever takes the lease next adopts and renews them, without a gap in
   * notifications.
   */
  async handOver(subs: Iterable<SubState>): Promise<void> {
    const locks = this.locks;
    const lease = this.lease;
    if (locks !== null && lease !== null) {
      await this.note(subs);
      await locks.release(lease).catch(() => false);
      this.lease = null;
    }
    this.followedSubs = [];
  }

  private lost(message: string): void {
    this.lease = null;
    this.events.lost();
    this.rt.log.warn({ platform: 'teams' }, message);
  }
}
