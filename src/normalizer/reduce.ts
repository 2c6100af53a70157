/**
 * @module normalizer/reduce
 * The reducer (docs/api.md, How the status is decided), pure: given a user's observations, override and the time, which
 * state wins. The engine runs it on every content change and on every expiry; reads run
 * `toPresence` (view.ts), which builds on the same helpers.
 */

import {
  effectiveStatus,
  isLive,
  liveCustomStatus,
  sameCustomStatus,
  SOURCE_RANK,
  type Activity,
  type CustomStatus,
  type Ladder,
  type Observation,
  type Override,
  type Source,
  type Status,
} from '../core/presence';

export interface Reduction {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source | null;
  /** The observation that won, or null when an override won or nothing is live. */
  readonly winner: Observation | null;
  readonly override: Override | null;
}

/**
 * A device entry stands in for its platform only when the platform sends no platform-level report
 * (device heartbeats do not; Discord does, and its `client_status` devices are detail).
 */
export function countsForPlatform(obs: Observation, all: readonly Observation[]): boolean {
  if (obs.device === '') return true;
  for (const other of all) {
    if (other.platform === obs.platform && other.device === '') return false;
  }
  return true;
}

/**
 * Which of two live observations wins: the stronger tier, then the status higher on the ladder,
 * then the one whose state changed most recently, then the most recent report. Ties on content
 * age use `changedAt` rather than `observedAt` so that periodic polls of unchanged states do not
 * flip the winner back and forth between two platforms (see README, Decisions).
 */
export function beats(a: Observation, b: Observation, now: number, ladder: Ladder): boolean {
  const tier = SOURCE_RANK[a.source] - SOURCE_RANK[b.source];
  if (tier !== 0) return tier < 0;
  const rung = ladder.rank(effectiveStatus(a, now)) - ladder.rank(effectiveStatus(b, now));
  if (rung !== 0) return rung < 0;
  if (a.changedAt !== b.changedAt) return a.changedAt > b.changedAt;
  if (a.observedAt !== b.observedAt) return a.observedAt > b.observedAt;
  // Deterministic last resort, so that the same inputs always give the same answer.
  return a.platform < b.platform || (a.platform === b.platform && a.device < b.device);
}

/** The winning live observation among those that count, or null. */
export function pickWinner(
  observations: readonly Observation[],
  now: number,
  ladder: Ladder,
): Observation | null {
  let best: Observation | null = null;
  for (const obs of observations) {
    if (!isLive(obs, now) || !countsForPlatform(obs, observations)) continue;
    if (best === null || beats(obs, best, now, ladder)) best = obs;
  }
  return best;
}

/**
 * The custom status shown is the one of the strongest-tier live observation that has one, the
 * most recently changed first. It does not depend on which observation won the status, so a
 * Slack status text survives while Teams decides the status.
 */
export function pickCustomStatus(observations: readonly Observation[], now: number): CustomStatus | null {
  let best: Observation | null = null;
  let bestStatus: CustomStatus | null = null;
  for (const obs of observations) {
    if (!isLive(obs, now)) continue;
    const cs = liveCustomStatus(obs.customStatus, now);
    if (cs === null) continue;
    if (
      best === null ||
      SOURCE_RANK[obs.source] < SOURCE_RANK[best.source] ||
      (obs.source === best.source && obs.changedAt > best.changedAt)
    ) {
      best = obs;
      bestStatus = cs;
    }
  }
  return bestStatus;
}

export function liveOverride(override: Override | null, now: number): Override | null {
  return override !== null && override.expiresAt > now ? override : null;
}

export function reduce(
  observations: readonly Observation[],
  override: Override | null,
  now: number,
  ladder: Ladder,
): Reduction {
  const ov = liveOverride(override, now);
  if (ov !== null) {
    // An override beats everything, manual platform states included.
    return {
      status: ov.status,
      activity: ov.activity,
      customStatus: liveCustomStatus(ov.customStatus, now) ?? pickCustomStatus(observations, now),
      source: 'manual',
      winner: null,
      override: ov,
    };
  }
  const winner = pickWinner(observations, now, ladder);
  if (winner === null) {
    return {
      status: 'offline',
      activity: null,
      customStatus: null,
      source: null,
      winner: null,
      override: null,
    };
  }
  return {
    status: effectiveStatus(winner, now),
    activity: winner.activity,
    customStatus: pickCustomStatus(observations, now),
    source: winner.source,
    winner,
    override: null,
  };
}

/** Which of status, activity and custom_status differ: the `changed` list of a webhook. */
export function changedFields(
  before: Pick<Reduction, 'status' | 'activity' | 'customStatus'>,
  after: Pick<Reduction, 'status' | 'activity' | 'customStatus'>,
): ('status' | 'activity' | 'custom_status')[] {
  const changed: ('status' | 'activity' | 'custom_status')[] = [];
  if (before.status !== after.status) changed.push('status');
  if (before.activity !== after.activity) changed.push('activity');
  if (!sameCustomStatus(before.customStatus, after.customStatus)) changed.push('custom_status');
  return changed;
}

/**
 * The earliest moment after `now` at which reducing again could give another answer: an
 * observation or override expiring, a decay step ending, a custom status expiring.
 */
export function nextCheckAt(
  observations: readonly Observation[],
  override: Override | null,
  now: number,
): number {
  // Plain loops and a module-level helper, no closure: a load calls this once per user, and a
  // closure made per call costs an allocation (and, under tsx, a `__name` property definition).
  let next = Number.POSITIVE_INFINITY;
  if (override !== null) {
    next = earlierAfter(next, override.expiresAt, now);
    next = earlierAfter(next, override.customStatus?.expiresAt ?? null, now);
  }
  for (const obs of observations) {
    if (!isLive(obs, now)) continue;
    next = earlierAfter(next, obs.expiresAt, now);
    next = earlierAfter(next, obs.customStatus?.expiresAt ?? null, now);
    if (obs.decay !== null) {
      for (const step of obs.decay) next = earlierAfter(next, obs.observedAt + step.untilMs, now);
    }
  }
  return next;
}

/** `next`, or `at` when it is later than `now` and earlier than `next`. */
function earlierAfter(next: number, at: number | null, now: number): number {
  return at !== null && at > now && at < next ? at : next;
}
