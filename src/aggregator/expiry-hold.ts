/**
 * @module aggregator/expiry-hold
 * Expiries decided elsewhere (several-node mode, src/cluster/expiry.ts). With several nodes, an
 * observation's expiry lives in Redis: a heartbeat refresh taken by another node moves it there
 * and never reaches this node's memory, so the expiry held here may be long past while the
 * observation is live. So in this mode the engine never lets time alone end an observation: one
 * that is not ended counts as live (its expiry held open) until the Redis sweep, on whichever
 * node takes it, ends it through `PresenceEngine.expire`, a change like any other that every
 * node then takes from the change log.
 *
 * "Ended" is written into the observation itself, so that it travels with the change to the
 * other nodes: an observation is ended when it expires no later than it was observed (a device a
 * platform stopped listing is ended so already, and the sweep ends an observation the same way).
 * Pure: no I/O.
 */

import type { Observation } from '../core/presence';

/** What the engine tells the holder of the expiries about each observation it keeps. */
export interface ExpiryHold {
  /**
   * `write`: a new or changed observation (queued for the next commit); `refresh`: the same
   * report again, with its times moved (`expiresAt` later, or earlier for a shortened one).
   */
  observed(userId: string, o: Observation, kind: 'write' | 'refresh'): void;
}

/** True for an observation that time or its platform ended (see the module comment). */
export function isEnded(o: Observation): boolean {
  return o.expiresAt <= o.observedAt;
}

/** The observation, ended (its expiry set to the moment it was observed). */
export function endObservation(o: Observation): Observation {
  return { ...o, expiresAt: o.observedAt };
}

/** The key of an observation among a user's: `<platform>/<device>` (a platform has no slash). */
export function sourceOf(o: Pick<Observation, 'platform' | 'device'>): string {
  return `${o.platform}/${o.device}`;
}

/**
 * The observations as reads show them while expiries are held: one not ended whose expiry held
 * here has passed is shown live, expiring just after `now`. Its real expiry is in Redis (a
 * refresh another node took moves it there only), so this node shows it live until the sweep
 * ends it, as the reducer counts it, rather than offline while its device still reports. The
 * same array when nothing needs it.
 */
export function shownLive(observations: readonly Observation[], now: number): readonly Observation[] {
  let out: Observation[] | null = null;
  for (let i = 0; i < observations.length; i++) {
    const o = observations[i]!;
    if (isEnded(o) || o.expiresAt > now) {
      out?.push(o);
      continue;
    }
    out ??= observations.slice(0, i);
    out.push({ ...o, expiresAt: now + 1 });
  }
  return out ?? observations;
}

/**
 * The observations as the reducer sees them while expiries are held: each one not ended with
 * no expiry. Decay steps still apply (they count from `observedAt`). The same array when
 * nothing is held.
 */
export function holdOpen(observations: readonly Observation[]): readonly Observation[] {
  let out: Observation[] | null = null;
  for (let i = 0; i < observations.length; i++) {
    const o = observations[i]!;
    if (isEnded(o) || o.expiresAt === Number.POSITIVE_INFINITY) {
      out?.push(o);
      continue;
    }
    out ??= observations.slice(0, i);
    out.push({ ...o, expiresAt: Number.POSITIVE_INFINITY });
  }
  return out ?? observations;
}
