/**
 * @module connectors/slack/map
 * Slack → ladder. Pure. See README.md beside this file for the table.
 *
 * - DND (a schedule window or a snooze) is something the person chose: busy + do_not_disturb, manual tier.
 * - `manual_away` is chosen too: away, manual tier.
 * - `auto_away` (no activity for 10 minutes): idle. A plain `away` for another user, where Slack
 *   does not say why, stays away.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { CustomStatus, NormalizedState } from '../../src/core/presence';
import type { SlackDndStatus, SlackProfileStatus, SlackUserState } from './types';

export function dndActive(dnd: SlackDndStatus | null | undefined, now: number): boolean {
  if (dnd === null || dnd === undefined) return false;
  const nowS = now / 1000;
  if (dnd.snooze_enabled === true && (dnd.snooze_endtime === undefined || dnd.snooze_endtime > nowS))
    return true;
  return dnd.dnd_enabled && dnd.next_dnd_start_ts <= nowS && nowS < dnd.next_dnd_end_ts;
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
  // Slack's own words: the bare presence string, with the flags that decided the mapping when set.
  const rawOut =
    dnd || p.auto_away === true || p.manual_away === true
      ? {
          presence: p.presence,
          ...(p.auto_away === true ? { auto_away: true } : {}),
          ...(p.manual_away === true ? { manual_away: true } : {}),
          ...(dnd ? { dnd_enabled: true } : {}),
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
