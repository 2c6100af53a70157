/**
 * @module privacy/project
 * What a viewer (an end user's app holding a viewer token) may see of another user's presence,
 * from both users' privacy settings, contacts and blocks. Pure: no I/O, the time passed in, so every
 * read path (batch and single reads, availability, history, the stream) applies the same rules.
 *
 * API keys act for the operator and never go through here.
 */

import type { AvailabilityView } from '../normalizer/availability';
import type { PresenceView } from '../normalizer/view';

export const VISIBILITIES = ['everyone', 'contacts', 'nobody'] as const;
export type Visibility = (typeof VISIBILITIES)[number];

export interface PrivacySettings {
  readonly presence: Visibility;
  readonly lastSeen: Visibility;
  readonly details: Visibility;
  /** Who hides their last seen from someone does not see that person's last seen either. */
  readonly reciprocal: boolean;
}

/** One user's privacy: settings, the users they count as contacts, the users they block. */
export interface PrivacyRecord {
  readonly settings: PrivacySettings;
  readonly contacts: ReadonlySet<string>;
  readonly blocked: ReadonlySet<string>;
}

/** Every user's privacy (defaults for a user who set none). */
export interface PrivacyLookup {
  of(userId: string): PrivacyRecord;
}

export interface Viewer {
  readonly userId: string;
}

export const LAST_SEEN_APPROX = ['recently', 'within_week', 'within_month', 'long_ago'] as const;
export type LastSeenApprox = (typeof LAST_SEEN_APPROX)[number];

/** What one viewer may see of one user. */
export interface Access {
  /** False: nothing at all; the user is answered as unknown, exactly like an id that does not exist. */
  readonly visible: boolean;
  readonly details: boolean;
  readonly lastSeen: boolean;
  /** Last seen is hidden because the viewer's own reciprocal settings hide theirs from this user. */
  readonly hiddenByOwnSettings: boolean;
}

export const FULL_ACCESS: Access = {
  visible: true,
  details: true,
  lastSeen: true,
  hiddenByOwnSettings: false,
};
const NO_ACCESS: Access = { visible: false, details: false, lastSeen: false, hiddenByOwnSettings: false };

function admits(rule: Visibility, isContact: boolean): boolean {
  return rule === 'everyone' || (rule === 'contacts' && isContact);
}

/** The rules of the README (Viewers and privacy), for `viewer` looking at `targetId`. */
export function accessOf(targetId: string, viewer: Viewer, settings: PrivacyLookup): Access {
  if (targetId === viewer.userId) return FULL_ACCESS;
  const target = settings.of(targetId);
  if (target.blocked.has(viewer.userId)) return NO_ACCESS;
  // Contacts are one-way: the target listing the viewer is what makes the viewer a contact.
  const isContact = target.contacts.has(viewer.userId);
  if (!admits(target.settings.presence, isContact)) return NO_ACCESS;
  const own = settings.of(viewer.userId);
  const hiddenByOwnSettings =
    own.settings.reciprocal && !admits(own.settings.lastSeen, own.contacts.has(targetId));
  const lastSeen = !hiddenByOwnSettings && admits(target.settings.lastSeen, isContact);
  const details = admits(target.settings.details, isContact);
  if (lastSeen && details) return FULL_ACCESS;
  return { visible: true, details, lastSeen, hiddenByOwnSettings };
}

const DAY_MS = 86_400_000;

/** How long ago, in the four words a hidden last seen is shown as. */
export function approxLastSeen(presence: PresenceView, now: number): LastSeenApprox {
  if (
    !presence.stale &&
    presence.source !== null &&
    (presence.status === 'online' || presence.status === 'idle')
  )
    return 'recently';
  let at = Number.NEGATIVE_INFINITY;
  for (const iso of [presence.last_active_at, presence.observed_at]) {
    if (iso !== null) at = Math.max(at, Date.parse(iso));
  }
  if (at === Number.NEGATIVE_INFINITY) return 'long_ago';
  const age = now - at;
  if (age <= 3 * DAY_MS) return 'recently';
  if (age <= 7 * DAY_MS) return 'within_week';
  if (age <= 30 * DAY_MS) return 'within_month';
  return 'long_ago';
}

/**
 * The presence object a viewer gets: times become null where last seen is hidden; with details
 * hidden only `status` remains. Its `platforms` entries and override may then carry null times,
 * which the operator's objects never do.
 */
export type ProjectedPresence = Omit<PresenceView, 'platforms' | 'override'> & {
  platforms: Record<string, unknown>;
  override: unknown;
  last_seen_approx?: LastSeenApprox;
  last_seen_hidden_by_own_settings?: true;
};

/** Applies an Access to a presence object (a new object; the input is not changed). */
export function applyAccess(presence: PresenceView, access: Access, now: number): ProjectedPresence | null {
  if (!access.visible) return null;
  if (access.details && access.lastSeen) return presence;
  const out: ProjectedPresence = { ...presence };
  if (!access.details) {
    out.activity = null;
    out.custom_status = null;
    out.source = null;
    out.reachable_via = [];
    out.identity_only = [];
    out.explain = '';
    out.override = null;
    out.platforms = {};
  }
  if (!access.lastSeen) {
    out.observed_at = null;
    out.last_active_at = null;
    // An expiry is the report's time plus its TTL: it would tell the last seen too.
    out.expires_at = null;
    // The explanation names the times of the reports.
    out.explain = '';
    if (access.details) {
      const ov = presence.override;
      out.override = ov === null ? null : { ...ov, set_at: null, expires_at: null };
      const platforms: Record<string, unknown> = {};
      for (const [name, v] of Object.entries(presence.platforms)) {
        const devices: Record<string, unknown> = {};
        for (const [id, d] of Object.entries(v.devices))
          devices[id] = { status: d.status, observed_at: null, expires_at: null };
        platforms[name] = { ...v, observed_at: null, expires_at: null, devices };
      }
      out.platforms = platforms;
    }
    out.last_seen_approx = approxLastSeen(presence, now);
    if (access.hiddenByOwnSettings) out.last_seen_hidden_by_own_settings = true;
  }
  return out;
}

/** `project(presence, viewer, settings)`: the presence a viewer sees, or null (answered as unknown). */
export function project(
  presence: PresenceView,
  viewer: Viewer,
  settings: PrivacyLookup,
  now: number,
): ProjectedPresence | null {
  return applyAccess(presence, accessOf(presence.user_id, viewer, settings), now);
}

export type ProjectedAvailability = Omit<AvailabilityView, 'reason'> & { reason: string | null };

/** Availability as a viewer sees it: without details no activity, channel or reason. */
export function projectAvailability(av: AvailabilityView, access: Access): ProjectedAvailability | null {
  if (!access.visible) return null;
  if (access.details && access.lastSeen) return av;
  const out: ProjectedAvailability = { ...av };
  if (!access.details) {
    out.activity = null;
    out.best_channel = null;
    out.reason = null;
  }
  if (!access.lastSeen) out.observed_at = null;
  return out;
}

export interface TransitionView<S extends string = string, A extends string = string> {
  version: number;
  at: string;
  from: { status: S; activity: A | null };
  to: { status: S; activity: A | null };
  source: string | null;
  platform: string | null;
}

/**
 * History as a viewer sees it. Every transition carries its time, so a hidden last seen leaves
 * none; hidden details leave the status changes only (an activity-only change would show when
 * something hidden happened).
 */
export function projectHistory<T extends TransitionView>(
  transitions: readonly T[],
  access: Access,
): T[] | null {
  if (!access.visible) return null;
  if (!access.lastSeen) return [];
  if (access.details) return [...transitions];
  return transitions
    .filter((t) => t.from.status !== t.to.status)
    .map((t) => ({
      ...t,
      from: { status: t.from.status, activity: null },
      to: { status: t.to.status, activity: null },
      source: null,
      platform: null,
    }));
}
