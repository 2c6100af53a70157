/**
 * @module normalizer/availability
 * "Can I reach this person now, and where?" from a presence object (docs/api.md, Availability): available
 * means status online or idle and no blocking activity on any live observation.
 */

import type { Activity, Platform } from '../core/presence';
import type { PresenceView } from './view';

/** Every activity blocks: each one says the person should not be interrupted. */
const BLOCKING: ReadonlySet<Activity> = new Set([
  'in_call',
  'in_meeting',
  'presenting',
  'focus',
  'do_not_disturb',
  'out_of_office',
  'off_work',
]);

export interface AvailabilityView {
  available: boolean;
  status: PresenceView['status'];
  activity: Activity | null;
  best_channel: Platform | null;
  reason: string;
  observed_at: string | null;
  stale: boolean;
}

/** The first blocking activity among the live observations and the override, with where it is. */
function blocker(p: PresenceView): { activity: Activity; where: string } | null {
  if (p.override?.activity != null && BLOCKING.has(p.override.activity))
    return { activity: p.override.activity, where: 'override' };
  if (p.activity !== null && BLOCKING.has(p.activity)) return { activity: p.activity, where: 'aggregate' };
  for (const [platform, v] of Object.entries(p.platforms)) {
    if (!v.stale && v.activity !== null && BLOCKING.has(v.activity))
      return { activity: v.activity, where: platform };
  }
  return null;
}

export function toAvailability(p: PresenceView): AvailabilityView {
  // A device cannot be messaged: the best channel is the most present messaging platform.
  const best = p.reachable_via.find((x) => x !== 'device') ?? null;
  const block = blocker(p);
  const base = {
    status: p.status,
    activity: p.activity,
    best_channel: best,
    observed_at: p.observed_at,
    stale: p.stale,
  };
  if (p.status !== 'online' && p.status !== 'idle') {
    const why = p.stale
      ? 'no live report (last known state expired)'
      : p.source === null
        ? 'no live report'
        : `status is ${p.status}`;
    return {
      ...base,
      available: false,
      best_channel: null,
      reason: block ? `${why}; ${block.activity} on ${block.where}` : why,
    };
  }
  if (block !== null) return { ...base, available: false, reason: `${block.activity} on ${block.where}` };
  return {
    ...base,
    available: true,
    reason: best === null ? `${p.status} (device heartbeat only)` : `${p.status} on ${best}`,
  };
}
