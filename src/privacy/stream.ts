/**
 * @module privacy/stream
 * The projection for stream messages (the stream calls it per viewer, before coalescing and diff
 * suppression): a change a viewer may not see, or whose visible part did not change, gives null and
 * the stream sends nothing for it, so its timing is not revealed either.
 */

import type { PresenceView } from '../normalizer/view';
import { applyAccess, type Access } from './project';

/** The `data` of a `presence` message (the `presence.changed` webhook's). */
export interface ChangeDataLike {
  readonly user_id: string;
  readonly version: number;
  readonly previous: Readonly<Record<string, unknown>>;
  readonly current: Readonly<Record<string, unknown>>;
  readonly changed: readonly string[];
}

/**
 * The change as the viewer sees it, or null to send nothing: the user is hidden, or only fields the
 * viewer may not see changed (details hidden: an activity or custom status change).
 */
export function projectChange<T extends ChangeDataLike>(data: T, access: Access, now: number): T | null {
  if (!access.visible) return null;
  if (access.details && access.lastSeen) return data;
  const changed = access.details ? data.changed : data.changed.filter((f) => f === 'status');
  if (changed.length === 0) return null;
  const previous = access.details ? data.previous : { ...data.previous, activity: null, custom_status: null };
  const current = applyAccess(data.current as unknown as PresenceView, access, now);
  return { ...data, previous, current, changed };
}
