/**
 * @module core/presence
 * The vocabulary of presence (docs/api.md): statuses, the configurable ladder, activities,
 * source tiers, platforms, and the shapes of observations and of the presence object.
 * Pure data and tiny helpers only: no I/O, no clock.
 */

export const STATUSES = ['online', 'idle', 'busy', 'away', 'offline'] as const;
export type Status = (typeof STATUSES)[number];

export const ACTIVITIES = [
  'in_call',
  'in_meeting',
  'presenting',
  'focus',
  'do_not_disturb',
  'out_of_office',
  'off_work',
] as const;
export type Activity = (typeof ACTIVITIES)[number];

/** Strongest first: the reducer takes the first tier that has a live observation. */
export const SOURCES = ['manual', 'app', 'inferred'] as const;
export type Source = (typeof SOURCES)[number];

export const REAL_PLATFORMS = ['discord', 'slack', 'teams', 'zoom', 'whatsapp', 'linkedin'] as const;
export type RealPlatform = (typeof REAL_PLATFORMS)[number];
export const PLATFORMS = [...REAL_PLATFORMS, 'device', 'simulated'] as const;
export type Platform = (typeof PLATFORMS)[number];

export const USER_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,128}$/;

export interface CustomStatus {
  readonly text: string;
  readonly emoji: string | null;
  /** ms since epoch, or null for "until cleared". */
  readonly expiresAt: number | null;
}

/**
 * An inferred observation decays through steps: `online` for the first step's span after the
 * signal, then the next status, and so on; past the last step it has expired.
 */
export interface DecayStep {
  readonly status: Status;
  /** ms after the signal at which this step ends. */
  readonly untilMs: number;
}

/** What a platform mapper produces from one raw payload: normalized, not yet timed. */
export interface NormalizedState {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source;
  /** The platform's own value(s), kept verbatim for `platforms.<p>.raw`. */
  readonly raw: unknown;
  /** A short human form of `raw` for `explain`, e.g. "Busy/InAMeeting". */
  readonly label: string;
}

/** One platform's (or one device's) report about one user, as the engine keeps it. */
export interface Observation extends NormalizedState {
  readonly platform: Platform;
  /** '' for the platform-level report; otherwise a device key (Discord client, heartbeat device id). */
  readonly device: string;
  /** Last time this state was reported (a refresh moves it). */
  observedAt: number;
  /** When the content (status, activity, custom status, raw) last changed. */
  readonly changedAt: number;
  /** When this observation stops counting. */
  expiresAt: number;
  /** Present for inferred observations whose status fades with time. */
  readonly decay: readonly DecayStep[] | null;
}

/** A manual override set through the API: it beats every observation until it expires or is cleared. */
export interface Override {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly setAt: number;
  readonly expiresAt: number;
}

/** The default ladder (docs/api.md); a deployment may reorder it with PRESENCE_LADDER. */
export const DEFAULT_LADDER: readonly Status[] = STATUSES;

/**
 * A ladder is an ordering of all five statuses. `rank` is 0 for the most present status, so
 * "higher on the ladder" means "smaller rank".
 */
export class Ladder {
  private readonly ranks: Record<Status, number>;

  constructor(readonly order: readonly Status[] = DEFAULT_LADDER) {
    const seen = new Set(order);
    if (order.length !== STATUSES.length || seen.size !== STATUSES.length) {
      throw new Error(`a ladder must list each of ${STATUSES.join(', ')} exactly once`);
    }
    for (const s of order) {
      if (!(STATUSES as readonly string[]).includes(s)) throw new Error(`unknown status "${s}" in ladder`);
    }
    this.ranks = Object.fromEntries(order.map((s, i) => [s, i])) as Record<Status, number>;
  }

  rank(status: Status): number {
    return this.ranks[status];
  }

  /** Parses "online,idle,busy,away,offline"; throws with a readable message when it is not a ladder. */
  static parse(text: string): Ladder {
    return new Ladder(text.split(',').map((s) => s.trim()) as Status[]);
  }
}

export const SOURCE_RANK: Record<Source, number> = { manual: 0, app: 1, inferred: 2 };

/** Status of an observation at `now`, following its decay steps when it has them. */
export function effectiveStatus(obs: Observation, now: number): Status {
  if (obs.decay === null) return obs.status;
  const age = now - obs.observedAt;
  for (const step of obs.decay) {
    if (age < step.untilMs) return step.status;
  }
  return 'offline';
}

export function isLive(obs: Observation, now: number): boolean {
  return obs.expiresAt > now;
}

export function sameCustomStatus(a: CustomStatus | null, b: CustomStatus | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return a.text === b.text && a.emoji === b.emoji && a.expiresAt === b.expiresAt;
}

/** A custom status counts only until its own expiry. */
export function liveCustomStatus(cs: CustomStatus | null, now: number): CustomStatus | null {
  if (cs === null) return null;
  return cs.expiresAt !== null && cs.expiresAt <= now ? null : cs;
}
