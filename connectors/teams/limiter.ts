/**
 * @module connectors/teams/limiter
 * Graph's presence budget and the connector's waiting rules, as pure functions of a time the
 * caller passes in (so a FakeClock drives them in tests): a sliding-window limiter for "1,500
 * requests per 30 seconds per application per tenant" and the backoff schedule for 5xx and
 * network failures. `Retry-After` is read by src/core/retry-after.
 */

/** Graph's documented presence limit (getPresencesByUserId and presence GET). */
export const GRAPH_PRESENCE_CALLS = 1500;
export const GRAPH_PRESENCE_WINDOW_MS = 30_000;

/**
 * A sliding window rather than a token bucket: Graph counts requests in a window, so a bucket
 * refilled at the average rate could still put 1,500 + refill calls into one 30-second window.
 * Only the times of the last `limit` calls are kept.
 */
export class SlidingWindowLimiter {
  private readonly stamps: number[];
  private head = 0;
  private size = 0;

  constructor(
    readonly limit: number = GRAPH_PRESENCE_CALLS,
    readonly windowMs: number = GRAPH_PRESENCE_WINDOW_MS,
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

/** Backoff after consecutive failures: 5 s, 15 s, 30 s, 1 min, 2 min, then 5 min. */
export const DEFAULT_BACKOFF_MS: readonly number[] = [5_000, 15_000, 30_000, 60_000, 120_000, 300_000];

/**
 * The delay before retry `failures` (1 = after the first failure), with up to 20 % jitter so that
 * many instances recovering from one outage do not return in step.
 */
export function backoffDelay(
  failures: number,
  steps: readonly number[] = DEFAULT_BACKOFF_MS,
  random: () => number = Math.random,
): number {
  if (steps.length === 0) return 0;
  const base = steps[Math.min(Math.max(failures, 1), steps.length) - 1]!;
  return Math.round(base * (1 + 0.2 * random()));
}
