/**
 * @module core/ports/coordination
 * What several nodes must agree on beyond the stores (issue #16): locks that one node holds at a
 * time, shares of the polling work, platform rate budgets all nodes spend together, and
 * deliveries processed once. Two implementations: in-process (`core/coordination.ts`, the one
 * node's default, nothing shared) and Redis (`store/redis/coordination.ts`, for several nodes).
 *
 * Time is the caller's injected clock throughout (a lease's end, a bucket's window, a delivery's
 * memory), as for the Redis hot state's expiries: one time frame with the schedules the callers
 * keep by the same clock, and tests drive expiry with a FakeClock. The cost is that nodes' clocks
 * must agree to well within a lease or a window (NTP does: milliseconds against tens of seconds);
 * see ARCHITECTURE.md.
 */

/** A lock held: its key, the owner's token (the proof of ownership) and when it ends. */
export interface Lease {
  readonly key: string;
  readonly token: string;
  /** By the implementation's clock; after it, another owner may take the key. */
  readonly expiresAt: number;
}

/**
 * Locks with an owner token and a TTL. Renewing and releasing compare the token first (a
 * compare-and-delete), so an owner whose lease ended and was taken by another cannot end or
 * extend the other's: the fencing that matters when a node stalls past its lease.
 */
export interface Locks {
  /** Takes `key` for `ttlMs` when nobody holds it (or the holder's lease ended); else null. */
  acquire(key: string, ttlMs: number): Promise<Lease | null>;
  /** Extends a lease still held by its token (from now); null when it is not (or no longer) ours. */
  renew(lease: Lease, ttlMs: number): Promise<Lease | null>;
  /** Ends a lease held by its token at once; false when it is not ours (any more). */
  release(lease: Lease): Promise<boolean>;
  /**
   * Writes the holder's note of `lease.key` (what its successor needs to carry on, e.g. the Graph
   * subscriptions it manages) while the token owns the lock (fenced like `renew`); false when it
   * does not. The note outlives the lease (its holder dying is when it matters), and is collected
   * `keepMs` after it was written.
   */
  writeNote(lease: Lease, note: string, keepMs: number): Promise<boolean>;
  /** The last note written by a holder of `key`, or null. */
  readNote(key: string): Promise<string | null>;
  /**
   * Whether the locks are shared by other processes (Redis): then a note outlives this process
   * and a stopping holder can hand over; in-process locks and notes end with the process.
   */
  readonly shared: boolean;
}

/** A platform budget: at most `limit` calls in any window of `windowMs`. */
export interface RateLimit {
  readonly limit: number;
  readonly windowMs: number;
}

/**
 * Rate budgets that every node spends together. A sliding window, not a refilling bucket:
 * platforms count calls in a window (Slack per minute, Graph per 30 s), and a bucket refilled at
 * the average rate can let `limit` + the refill into one window.
 */
export interface RateBuckets {
  /** Takes one call from `key`'s budget now and answers 0, or takes nothing and answers how many ms until one is allowed. */
  take(key: string, rate: RateLimit): Promise<number>;
}

/** Delivery ids of one route, remembered for a while, so a push is processed once. */
export interface DeliveryDedup {
  /** True the first time `id` is offered (within the memory's TTL), false for a repeat. */
  firstTime(id: string): Promise<boolean>;
  /** Forgets an id whose work failed, so the platform's retry is taken. */
  forget(id: string): Promise<void>;
}

/** Opens the delivery memory of one route: `scope` names it (e.g. `slack:events`); `max` bounds memory that has no TTL of its own. */
export type DeliveryDedupFactory = (scope: string, options: { ttlMs: number; max: number }) => DeliveryDedup;

/**
 * The polling work, split into shares: each target of a group (a linked account of a platform)
 * is polled by the one node holding its share, a lease that node renews. A node takes its fair
 * part of the free shares (targets / live nodes, rounded up) and gives up what is over it when a
 * node joins; a dead node's shares are free when their leases end; `release` frees a stopping
 * node's shares at once.
 */
export interface PollShares {
  /** Whether this node polls `target` now: it holds the share and the lease has not ended. Synchronous: polling loops ask it per target. */
  owns(group: string, target: string): boolean;
  /** Renews this node's shares of `group`, frees those no longer in `targets`, and takes its fair part of the free ones. */
  renew(group: string, targets: readonly string[]): Promise<void>;
  /** Frees every share of `group` this node holds (a graceful stop). */
  release(group: string): Promise<void>;
  /** How long a share lasts unrenewed: renew well within it (the host renews every third of it). */
  readonly ttlMs: number;
}

/** The coordination of one node. */
export interface Coordination {
  readonly locks: Locks;
  readonly buckets: RateBuckets;
  readonly deliveries: DeliveryDedupFactory;
  readonly shares: PollShares;
}
