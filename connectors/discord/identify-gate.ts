/**
 * @module connectors/discord/identify-gate
 * When the bot may start a new gateway session (IDENTIFY). Pure: it is told the time.
 *
 * Discord allows 1,000 IDENTIFY calls per 24 hours per bot; going over ends every session and
 * resets the bot token (https://discord.com/developers/docs/events/gateway#session-start-limit).
 * RESUMEs are free, so discord.js resumes when it can, but a session that keeps failing (invalid
 * session, a gateway that accepts and drops) would make it re-identify every half second. The
 * gate spaces IDENTIFYs at least `minGapMs` apart (max_concurrency 1 = one per 5 s), doubles the
 * gap for each one after a session that did not last `stableMs`, and never lets more than
 * `dailyCap` through in any 24 hours.
 */

const DAY_MS = 24 * 3600_000;

export interface IdentifyGateOptions {
  /** The shortest gap between two IDENTIFYs; default 5 s (Discord's max_concurrency 1). */
  readonly minGapMs?: number;
  /** The longest the backoff grows to; default 10 minutes. */
  readonly backoffMaxMs?: number;
  /** A session that lasted this long resets the backoff; default 60 s. */
  readonly stableMs?: number;
  /** IDENTIFYs allowed in any 24 hours; default 900 of Discord's 1,000, leaving room for restarts. */
  readonly dailyCap?: number;
}

export class IdentifyGate {
  private readonly minGapMs: number;
  private readonly backoffMaxMs: number;
  private readonly stableMs: number;
  readonly dailyCap: number;
  /** When each IDENTIFY of the last 24 hours went (or will go), ascending. */
  private readonly times: number[] = [];
  /** IDENTIFYs since the last session that lasted. */
  private unstable = 0;
  private readyAt: number | null = null;

  constructor(options: IdentifyGateOptions = {}) {
    this.minGapMs = options.minGapMs ?? 5000;
    this.backoffMaxMs = Math.max(this.minGapMs, options.backoffMaxMs ?? 10 * 60_000);
    this.stableMs = options.stableMs ?? 60_000;
    this.dailyCap = Math.max(1, options.dailyCap ?? 900);
  }

  /**
   * Books the next IDENTIFY and says how long to wait before sending it (0: now). The booking
   * counts against the cap even if the attempt is later abandoned: Discord may have counted it.
   */
  reserve(now: number): number {
    this.prune(now);
    if (this.readyAt !== null && now - this.readyAt >= this.stableMs) this.unstable = 0;
    this.readyAt = null;
    let at = now;
    const last = this.times[this.times.length - 1];
    if (last !== undefined) {
      const gap =
        this.unstable === 0
          ? this.minGapMs
          : Math.min(this.backoffMaxMs, this.minGapMs * 2 ** Math.min(this.unstable, 30));
      at = Math.max(at, last + gap);
    }
    if (this.times.length >= this.dailyCap) {
      at = Math.max(at, this.times[this.times.length - this.dailyCap]! + DAY_MS);
    }
    this.times.push(at);
    if (last !== undefined) this.unstable += 1;
    return at - now;
  }

  /** The session that the last IDENTIFY opened is ready; if it lasts, the backoff resets. */
  ready(now: number): void {
    this.readyAt = now;
  }

  /** IDENTIFYs booked in the 24 hours up to `now`. */
  countSince(now: number): number {
    this.prune(now);
    return this.times.length;
  }

  private prune(now: number): void {
    while (this.times.length > 0 && this.times[0]! <= now - DAY_MS) this.times.shift();
  }
}
