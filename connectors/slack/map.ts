/**
 * @module connectors/slack/map
 * Slack → ladder. Pure. See README.md beside this file for the table.
 *
 * - DND (a schedule window or a snooze) is something the person chose: busy + do_not_disturb, manual tier.
 * - `manual_away` is chosen too: away, manual tier.
 * - `auto_away` (no activity for 10 minutes): idle. A plain `away` for another user, where Slack
 *   does not say why, stays away.
 * - `online: false` (only in the token's own `users.getPresence`): "true if they have a client
 *   currently connected to Slack" (https://docs.slack.dev/reference/methods/users.getPresence/),
 *   so false means no client at all: offline, not away.
 * - A huddle (`huddle_state: "in_a_huddle"` in the profile, until `huddle_state_expiration_ts`;
 *   https://docs.slack.dev/reference/events/user_huddle_changed/) is a call: busy + in_call.
 * - Without polling (`toSlackPushedPresence`) only what the Events API pushes is known: DND,
 *   the custom status and huddles, each until the moment Slack gives for its end.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { CustomStatus, NormalizedState } from '../../src/core/presence';
import type { SlackDndStatus, SlackProfileStatus, SlackUserState } from './types';

export function dndActive(dnd: SlackDndStatus | null | undefined, now: number): boolean {
  return dndEndsAt(dnd, now) !== undefined;
}

/**
 * When the DND in force now ends (ms): the snooze's `snooze_endtime`, else the schedule window's
 * `next_dnd_end_ts`; null for a snooze without an end; undefined when DND is not on.
 */
export function dndEndsAt(dnd: SlackDndStatus | null | undefined, now: number): number | null | undefined {
  if (dnd === null || dnd === undefined) return undefined;
  const nowS = now / 1000;
  if (dnd.snooze_enabled === true && (dnd.snooze_endtime === undefined || dnd.snooze_endtime > nowS))
    return dnd.snooze_endtime === undefined ? null : dnd.snooze_endtime * 1000;
  if (dnd.dnd_enabled && dnd.next_dnd_start_ts <= nowS && nowS < dnd.next_dnd_end_ts)
    return dnd.next_dnd_end_ts * 1000;
  return undefined;
}

/** When the huddle the person is in ends (ms), null without an end, undefined when not in one. */
export function huddleEndsAt(
  profile: SlackProfileStatus | null | undefined,
  now: number,
): number | null | undefined {
  if (profile?.huddle_state !== 'in_a_huddle') return undefined;
  const exp = profile.huddle_state_expiration_ts ?? 0;
  if (exp <= 0) return null;
  return exp * 1000 > now ? exp * 1000 : undefined;
}

export function toSlackCustomStatus(
  profile: SlackProfileStatus | null | undefined,
  now: number,
): CustomStatus | null {
  if (profile === null || profile === undefined) return null;
  const text = profile.status_text ?? '';
  const emoji = profile.status_emoji ?? '';
  if (text === '' && emoji === '') return null;
  const exp = profile.status_expiration ?? 0;
  const expiresAt = exp > 0 ? exp * 1000 : null;
  if (expiresAt !== null && expiresAt <= now) return null;
  return { text, emoji: emoji === '' ? null : emoji, expiresAt };
}

export function toSlackPresence(raw: SlackUserState, now: number): MappedPresence | null {
  const p = raw.presence;
  if (p.presence !== 'active' && p.presence !== 'away') return null;
  const customStatus = toSlackCustomStatus(raw.profile, now);
  const dnd = dndActive(raw.dnd, now);
  const offline = p.online === false;
  const huddle = huddleEndsAt(raw.profile, now) !== undefined;
  // Slack's own words: the bare presence string, with the flags that decided the mapping when set.
  const rawOut =
    dnd || offline || huddle || p.auto_away === true || p.manual_away === true
      ? {
          presence: p.presence,
          ...(offline ? { online: false } : {}),
          ...(p.auto_away === true ? { auto_away: true } : {}),
          ...(p.manual_away === true ? { manual_away: true } : {}),
          ...(dnd ? { dnd_enabled: true } : {}),
          ...(huddle ? { huddle_state: 'in_a_huddle' } : {}),
        }
      : p.presence;
  let state: NormalizedState;
  if (dnd) {
    state = {
      status: 'busy',
      activity: 'do_not_disturb',
      customStatus,
      source: 'manual',
      raw: rawOut,
      label: `${p.presence} + DND`,
    };
  } else if (offline) {
    state = {
      status: 'offline',
      activity: null,
      customStatus,
      source: 'app',
      raw: rawOut,
      label: `${p.presence} (no client connected)`,
    };
  } else if (huddle) {
    state = {
      status: 'busy',
      activity: 'in_call',
      customStatus,
      source: 'app',
      raw: rawOut,
      label: `${p.presence} + huddle`,
    };
  } else if (p.presence === 'away' && p.manual_away === true) {
    state = {
      status: 'away',
      activity: null,
      customStatus,
      source: 'manual',
      raw: rawOut,
      label: 'away (manual)',
    };
  } else if (p.presence === 'away' && p.auto_away === true) {
    state = {
      status: 'idle',
      activity: null,
      customStatus,
      source: 'app',
      raw: rawOut,
      label: 'away (auto)',
    };
  } else if (p.presence === 'away') {
    state = { status: 'away', activity: null, customStatus, source: 'app', raw: rawOut, label: 'away' };
  } else {
    state = { status: 'online', activity: null, customStatus, source: 'app', raw: rawOut, label: 'active' };
  }
  return { state, devices: null };
}

/** What the Events API alone says about a person, and until when it holds. */
export interface SlackPushedPresence {
  readonly mapped: MappedPresence;
  /** When it stops counting (ms): the end Slack gives, or now + `openEndedMs` when it gives none. */
  readonly until: number;
}

/**
 * Without polling credentials only pushes arrive: `dnd_updated_user` and the profile of
 * `user_change`/`user_status_changed`/`user_huddle_changed`. Active/away is never pushed, so:
 * - DND on: busy + do_not_disturb in the manual tier, until its `next_dnd_end_ts` /
 *   `snooze_endtime`;
 * - in a huddle: busy + in_call, until `huddle_state_expiration_ts`;
 * - a custom status alone: shown, carried by an `offline` report in the inferred tier, the
 *   weakest there is, so that it never claims a status and loses to any other report;
 * - nothing set: null, and the caller ends what was reported before.
 */
export function toSlackPushedPresence(
  raw: { readonly dnd?: SlackDndStatus | null; readonly profile?: SlackProfileStatus | null },
  now: number,
  openEndedMs: number,
): SlackPushedPresence | null {
  const customStatus = toSlackCustomStatus(raw.profile, now);
  const dndEnd = dndEndsAt(raw.dnd, now);
  const huddleEnd = huddleEndsAt(raw.profile, now);
  const until = (end: number | null | undefined): number =>
    typeof end === 'number' ? end : now + openEndedMs;
  let state: NormalizedState;
  let ends: number;
  if (dndEnd !== undefined) {
    state = {
      status: 'busy',
      activity: 'do_not_disturb',
      customStatus,
      source: 'manual',
      raw: { dnd_enabled: true, ...(huddleEnd !== undefined ? { huddle_state: 'in_a_huddle' } : {}) },
      label: 'DND',
    };
    ends = until(dndEnd);
  } else if (huddleEnd !== undefined) {
    state = {
      status: 'busy',
      activity: 'in_call',
      customStatus,
      source: 'app',
      raw: { huddle_state: 'in_a_huddle' },
      label: 'huddle',
    };
    ends = until(huddleEnd);
  } else if (customStatus !== null) {
    state = {
      status: 'offline',
      activity: null,
      customStatus,
      source: 'inferred',
      raw: { status_text: customStatus.text, status_emoji: customStatus.emoji ?? '' },
      label: 'custom status only (presence unknown)',
    };
    ends = customStatus.expiresAt ?? now + openEndedMs;
  } else {
    return null;
  }
  return { mapped: { state, devices: null }, until: ends };
}
