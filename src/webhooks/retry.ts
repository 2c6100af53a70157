/**
 * @module webhooks/retry
 * When to try a delivery again (docs/api.md, Delivery): a schedule of delays, with jitter so that a
 * recovering endpoint is not hit by every retry at the same instant. `Retry-After` is read by
 * core/retry-after.
 */

const S = 1000;
const M = 60 * S;
const H = 60 * M;

/**
 * Delay before each attempt: attempt 1 at once, attempt 2 after 5 s, ... attempt 8 after 10 h.
 * After the last attempt fails the delivery is given up (`failed`).
 */
export const DEFAULT_RETRY_SCHEDULE: readonly number[] = [
  0,
  5 * S,
  5 * M,
  30 * M,
  2 * H,
  5 * H,
  10 * H,
  10 * H,
];

/** The default jitter: each delay is moved by up to ±10 %. */
export const DEFAULT_JITTER = 0.1;

/**
 * The delay before attempt `attempts + 1`, after `attempts` failed ones; null when the schedule is
 * exhausted. `random` is in [0, 1).
 */
export function retryDelay(
  schedule: readonly number[],
  attempts: number,
  jitter: number,
  random: () => number,
): number | null {
  const base = schedule[attempts];
  if (base === undefined) return null;
  if (base === 0 || jitter === 0) return base;
  return Math.max(0, Math.round(base * (1 + jitter * (2 * random() - 1))));
}
