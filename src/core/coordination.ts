/**
 * @module core/coordination
 * The in-process coordination: the ports of core/ports/coordination.ts for one node alone, the
 * default when no Redis is configured. Nothing is shared, so a lock is a map entry, a budget a
 * sliding window in memory, a delivery memory a bounded map, and the one node holds every
 * polling share. The pure pieces (the sliding window, the delivery memory) are what the
 * connectors used before the port existed, moved here so both sides share one definition.
 */

import { randomBytes } from 'node:crypto';

import type { Clock } from './clock';
import type {
  Coordination,
  DeliveryDedup,
  DeliveryDedupFactory,
  Lease,
  Locks,
  PollShares,
  RateBuckets,
  RateLimit,
} from './ports/coordination';

/** A lease owner's token: unguessable, so no other owner can forge a release. */
export const newLeaseToken = (): string => randomBytes(12).toString('base64url');

/**
 * At most `limit` calls in any window of `windowMs`, by times the caller passes in. Only the
 * times of the last `limit` calls are kept (a ring).
 */
export class SlidingWindow {
  private readonly stamps: number[];
  private head = 0;
  private size = 0;

  constructor(
    readonly limit: number,
    readonly windowMs: number,
  ) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer');
    if (!(windowMs > 0)) throw new RangeError('windowMs must be positive');
    this.stamps = new Array<number>(limit).fill(0);
  }

  /**
   * Takes one call at `now` and returns 0, or takes nothing and returns how many milliseconds
   * until a call is allowed.
   */
  take(now: number): number {
    const wait = this.waitMs(now);
    if (wait > 0) return wait;
    if (this.size === this.limit) {
      this.head = (this.head + 1) % this.limit;
      this.size -= 1;
    }
    this.stamps[(this.head + this.size) % this.limit] = now;
    this.size += 1;
    return 0;
  }

  /** How long until a call would be allowed (0: now), without taking one. */
  waitMs(now: number): number {
    if (this.size < this.limit) return 0;
    const oldest = this.stamps[this.head]!;
    return Math.max(0, oldest + this.windowMs - now);
  }

  /** Calls counted in the window ending at `now`. */
  used(now: number): number {
    let n = 0;
    for (let i = 0; i < this.size; i++) {
      if (this.stamps[(this.head + i) % this.limit]! > now - this.windowMs) n += 1;
    }
    return n;
  }
}

/**
 * Delivery ids seen recently, in arrival order, so that expiry and the size cap drop the oldest
 * first. One instance per route.
 */
export class SeenDeliveries {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  /** True the first time an id is offered (within the TTL), false for a repeat. */
  firstTime(id: string, now: number): boolean {
    for (const [old, at] of this.seen) {
      if (at + this.ttlMs > now && this.seen.size < this.max) break;
      this.seen.delete(old);
    }
    const at = this.seen.get(id);
    if (at !== undefined && at + this.ttlMs > now) return false;
    this.seen.delete(id); // re-inserted at the end: arrival order stays oldest first
    this.seen.set(id, now);
    return true;
  }

  /** Forgets an id whose work failed, so that the platform's retry is taken. */
  forget(id: string): void {
    this.seen.delete(id);
  }

  get size(): number {
    return this.seen.size;
  }
}

/** Locks of one process: single-flight among its own callers. */
export class InProcessLocks implements Locks {
  readonly shared = false;
  private readonly held = new Map<string, { token: string; expiresAt: number }>();
  private readonly notes = new Map<string, string>();

  constructor(private readonly clock: Clock) {}

  acquire(key: string, ttlMs: number): Promise<Lease | null> {
    const now = this.clock.now();
    const h = this.held.get(key);
    if (h !== undefined && h.expiresAt > now) return Promise.resolve(null);
    const lease = { key, token: newLeaseToken(), expiresAt: now + ttlMs };
    this.held.set(key, { token: lease.token, expiresAt: lease.expiresAt });
    return Promise.resolve(lease);
  }

  renew(lease: Lease, ttlMs: number): Promise<Lease | null> {
    const h = this.held.get(lease.key);
    if (h?.token !== lease.token) return Promise.resolve(null);
    h.expiresAt = this.clock.now() + ttlMs;
    return Promise.resolve({ ...lease, expiresAt: h.expiresAt });
  }

  release(lease: Lease): Promise<boolean> {
    if (this.held.get(lease.key)?.token !== lease.token) return Promise.resolve(false);
    this.held.delete(lease.key);
    return Promise.resolve(true);
  }

  /** The note is kept for the process's life: `keepMs` only bounds a shared store's memory. */
  writeNote(lease: Lease, note: string, _keepMs: number): Promise<boolean> {
    if (this.held.get(lease.key)?.token !== lease.token) return Promise.resolve(false);
    this.notes.set(lease.key, note);
    return Promise.resolve(true);
  }

  readNote(key: string): Promise<string | null> {
    return Promise.resolve(this.notes.get(key) ?? null);
  }
}

/** Budgets of one process: a sliding window per key. */
export class InProcessRateBuckets implements RateBuckets {
  private readonly windows = new Map<string, SlidingWindow>();

  constructor(private readonly clock: Clock) {}

  take(key: string, rate: RateLimit): Promise<number> {
    let w = this.windows.get(key);
    // A budget whose limit changed (an option) starts a new window rather than misread the old one.
    if (w === undefined || w.limit !== rate.limit || w.windowMs !== rate.windowMs) {
      w = new SlidingWindow(rate.limit, rate.windowMs);
      this.windows.set(key, w);
    }
    return Promise.resolve(w.take(this.clock.now()));
  }
}

/** Delivery memories of one process: `SeenDeliveries`, bounded by TTL and size. */
export function inProcessDeliveries(clock: Clock): DeliveryDedupFactory {
  return (_scope, { ttlMs, max }): DeliveryDedup => {
    const seen = new SeenDeliveries(ttlMs, max);
    return {
      firstTime: (id) => Promise.resolve(seen.firstTime(id, clock.now())),
      forget: (id) => {
        seen.forget(id);
        return Promise.resolve();
      },
    };
  };
}

/** The one node holds every share: it polls everything, at once, with nothing to renew. */
export const soleNodeShares: PollShares = {
  owns: () => true,
  renew: () => Promise.resolve(),
  release: () => Promise.resolve(),
  ttlMs: 30_000,
};

/** The coordination of a node alone (no Redis). */
export function inProcessCoordination(clock: Clock): Coordination {
  return {
    locks: new InProcessLocks(clock),
    buckets: new InProcessRateBuckets(clock),
    deliveries: inProcessDeliveries(clock),
    shares: soleNodeShares,
  };
}

/**
 * Runs `fn` while holding `key`, once across whoever shares `locks`: null (without running it)
 * when another holds the key. The lease is released after, whatever `fn` did; `fn` must end
 * well within `ttlMs`, or another may take the key meanwhile.
 */
export async function withLock<T>(
  locks: Locks,
  key: string,
  ttlMs: number,
  fn: (lease: Lease) => Promise<T>,
): Promise<{ value: T } | null> {
  const lease = await locks.acquire(key, ttlMs);
  if (lease === null) return null;
  try {
    return { value: await fn(lease) };
  } finally {
    await locks.release(lease).catch(() => false);
  }
}

/** The share target of a linked account (any strings, kept apart). */
export const accountTarget = (account: { workspaceId: string; externalId: string }): string =>
  JSON.stringify([account.workspaceId, account.externalId]);
