/**
 * @module webhooks/coalesce
 * The optional per-endpoint coalescing window, as a pure function over `presence.changed` bodies.
 *
 * Definition. An endpoint with `coalesce_ms = W > 0` holds each `presence.changed` delivery until
 * W ms after its event was committed. When the oldest held delivery of a user is due (and no
 * earlier delivery of that user is still being retried), it is merged with every later delivery of
 * the same user that is also waiting for its first attempt and whose event was committed within
 * W ms of the oldest one. The merged event has `previous` of the first, `current`, `version` and
 * `timestamp` of the last, and `changed` recomputed between the two:
 *
 * - a burst that ends where it started (online → offline → online) sends nothing;
 * - otherwise one event is sent, with a new `webhook-id` (its body differs from every original);
 * - a run of one is sent as it is, with its original `webhook-id`.
 *
 * Events are never reordered: the merged event takes the place of the last one of the run, and a
 * change committed after the window is the start of the next run. Replays are never coalesced.
 */

import type { PresenceChangedEvent } from '../core/changes';

const FIELDS = ['status', 'activity', 'custom_status'] as const;

/** Stable for the shapes involved: the custom status view always has the same key order. */
const same = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/**
 * Merges the bodies of a run (oldest first, at least two). Returns the merged body, or null when
 * status, activity and custom status end as they started.
 */
export function mergePresenceChanges(bodies: readonly string[]): string | null {
  const first = JSON.parse(bodies[0]!) as PresenceChangedEvent;
  const last = JSON.parse(bodies[bodies.length - 1]!) as PresenceChangedEvent;
  const previous = first.data.previous;
  const current = last.data.current;
  const changed = FIELDS.filter((f) => !same(previous[f], current[f]));
  if (changed.length === 0) return null;
  const merged: PresenceChangedEvent = {
    type: 'presence.changed',
    timestamp: last.timestamp,
    data: {
      user_id: last.data.user_id,
      version: last.data.version,
      previous,
      current,
      changed,
    },
  };
  return JSON.stringify(merged);
}
