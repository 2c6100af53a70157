/**
 * @module core/figures
 * The operations figures of the dashboard and `/metrics` (README, "The operations figures"),
 * defined once as pure functions and small state machines that are handed the time: no clock, no
 * timer, no I/O. `http/figures.ts` feeds them from the running service.
 */

import type { Status } from './presence';

/** How long a rate looks back: changes/s and heartbeats/s are averages over the last minute. */
export const RATE_WINDOW_MS = 60_000;
/** An offline transition reversed within this long is a flap (the seed's "false offline"). */
export const FLAP_WINDOW_MS = 30_000;
/** The "recent flaps" figure counts the flaps of the last ten minutes. */
export const RECENT_FLAPS_MS = 600_000;

/**
 * The rate of a counter that only rises, from samples of it (the service takes one a second):
 * the rise from the newest sample taken at least a window before the newest one (or the oldest
 * sample, early on) to the newest, divided by the time between them. A single sample is a rate of
 * 0: nothing is known yet.
 */
export class CounterRate {
  private readonly samples: { at: number; total: number }[] = [];

  constructor(private readonly windowMs: number = RATE_WINDOW_MS) {}

  /** Records the counter's value at `at` (times must not go backwards). */
  sample(at: number, total: number): void {
    this.samples.push({ at, total });
    // Keep one sample at or before the window's start, so that the window is covered in full.
    while (this.samples.length > 2 && this.samples[1]!.at <= at - this.windowMs) this.samples.shift();
  }

  /** Per second over the window ending at the newest sample. */
  perSecond(): number {
    const last = this.samples[this.samples.length - 1];
    if (last === undefined) return 0;
    const first = this.samples[0]!;
    const seconds = (last.at - first.at) / 1000;
    return seconds <= 0 ? 0 : Math.max(0, last.total - first.total) / seconds;
  }

  /** How much the counter rose over the window ending at the newest sample. */
  increase(): number {
    const last = this.samples[this.samples.length - 1];
    if (last === undefined) return 0;
    return Math.max(0, last.total - this.samples[0]!.total);
  }
}

/**
 * Flaps: a user's aggregate went to `offline` and left it again within `FLAP_WINDOW_MS`. The
 * detector is told each committed status change, in commit order; it remembers, per user, only
 * when they last went offline, and forgets that once the window has passed.
 */
export class FlapDetector {
  private readonly wentOffline = new Map<string, number>();
  private flapsTotal = 0;

  constructor(private readonly windowMs: number = FLAP_WINDOW_MS) {}

  /** One committed change of a user's status; true when it reverses an offline within the window. */
  observe(userId: string, from: Status, to: Status, at: number): boolean {
    if (from === to) return false;
    if (to === 'offline') {
      this.wentOffline.set(userId, at);
      return false;
    }
    if (from !== 'offline') return false;
    const since = this.wentOffline.get(userId);
    this.wentOffline.delete(userId);
    if (since === undefined || at - since > this.windowMs) return false;
    this.flapsTotal += 1;
    return true;
  }

  /** Forgets offline transitions older than the window: they can no longer become flaps. */
  prune(now: number): void {
    for (const [userId, at] of this.wentOffline)
      if (now - at > this.windowMs) this.wentOffline.delete(userId);
  }

  /** Flaps seen since start. */
  get total(): number {
    return this.flapsTotal;
  }

  /** Offline transitions still within the window (what it holds in memory). */
  get pending(): number {
    return this.wentOffline.size;
  }
}

/** The share of tracked users whose presence is stale (0 with nobody tracked). */
export function staleRatio(staleUsers: number, trackedUsers: number): number {
  return trackedUsers <= 0 ? 0 : Math.min(1, Math.max(0, staleUsers / trackedUsers));
}

/** Webhook deliveries not finished yet: waiting (first attempts and retries) plus in flight. */
export function webhookBacklog(queued: number, inFlight: number): number {
  return Math.max(0, queued) + Math.max(0, inFlight);
}

/** The figures as the dashboard shows them (and `/metrics` exposes, by these names). */
export interface OpsFigures {
  readonly tracked_users: number;
  readonly changes_per_second: number;
  readonly heartbeats_per_second: number;
  readonly stream_connections: number;
  readonly stale_ratio: number;
  readonly flaps_total: number;
  readonly flaps_recent: number;
  readonly missed_device_pings_total: number;
  readonly webhook_backlog: number;
}
