/**
 * @module connectors/teams/limiter
 * Graph's presence budget and the connector's waiting rules, as pure functions of a time the
 * caller passes in (so a FakeClock drives them in tests): a sliding-window limiter for "1,500
 * requests per 30 seconds per application per tenant" and the backoff schedule for 5xx and
 * network failures. `Retry-After` is read by src/core/retry-after.
 */

import { SlidingWindow } from '../../src/core/coordination';

/** Graph's documented presence limit (getPresencesByUserId and presence GET). */
export const GRAPH_PRESENCE_CALLS = 1500;
export const GRAPH_PRESENCE_WINDOW_MS = 30_000;

/**
 * A sliding window rather than a token bucket: Graph counts requests in a window, so a bucket
 * refilled at the average rate could still put 1,500 + refill calls into one 30-second window.
 * The window itself is core's (the in-process rate budget); this one has Graph's limit by default.
 */
export class SlidingWindowLimiter extends SlidingWindow {
  constructor(limit: number = GRAPH_PRESENCE_CALLS, windowMs: number = GRAPH_PRESENCE_WINDOW_MS) {
    super(limit, windowMs);
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
