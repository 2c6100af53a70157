import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { dndActive, toSlackCustomStatus, toSlackPresence } from '../../../connectors/slack/map';
import type { SlackDndStatus, SlackPresenceResponse } from '../../../connectors/slack/types';

const fixture = <T>(name: string): T =>
  JSON.parse(readFileSync(join(__dirname, '../../../connectors/slack/fixtures', name), 'utf8')) as T;
const now = Date.UTC(2026, 10, 23, 14);
const nowS = now / 1000;

describe('Slack mapping', () => {
  it.each([
    [{ presence: 'active' }, 'online', 'app', 'active'],
    [{ presence: 'away' }, 'away', 'app', 'away'],
    [{ presence: 'away', auto_away: true }, 'idle', 'app', 'away (auto)'],
    [{ presence: 'away', manual_away: true }, 'away', 'manual', 'away (manual)'],
    [{ presence: 'active', online: true, auto_away: false, manual_away: false }, 'online', 'app', 'active'],
  ])('%j → %s (%s tier)', (presence, status, source, label) => {
    const s = toSlackPresence({ presence: { ok: true, ...presence } }, now)?.state;
    expect(s).toMatchObject({ status, source, label, activity: null });
  });

  it('keeps the bare presence string as raw, with deciding flags when set', () => {
    expect(toSlackPresence({ presence: { ok: true, presence: 'active' } }, now)?.state.raw).toBe('active');
    expect(
      toSlackPresence({ presence: { ok: true, presence: 'away', auto_away: true } }, now)?.state.raw,
    ).toEqual({
      presence: 'away',
      auto_away: true,
    });
  });

  it('maps the documented users.getPresence example', () => {
    expect(
      toSlackPresence({ presence: fixture<SlackPresenceResponse>('slack-users-getPresence-self.json') }, now)
        ?.state.status,
    ).toBe('online');
  });

  it('an unknown presence value is not guessed', () => {
    expect(toSlackPresence({ presence: { ok: true, presence: 'sleeping' } }, now)).toBeNull();
  });

  it('DND inside its window is busy + do_not_disturb in the manual tier, whatever the presence', () => {
    const dnd: SlackDndStatus = {
      dnd_enabled: true,
      next_dnd_start_ts: nowS - 60,
      next_dnd_end_ts: nowS + 60,
    };
    for (const presence of ['active', 'away']) {
      expect(toSlackPresence({ presence: { ok: true, presence }, dnd }, now)?.state).toMatchObject({
        status: 'busy',
        activity: 'do_not_disturb',
        source: 'manual',
        raw: { presence, dnd_enabled: true },
      });
    }
  });

  it('DND is active only inside its window or while snoozed', () => {
    expect(
      dndActive({ dnd_enabled: true, next_dnd_start_ts: nowS + 60, next_dnd_end_ts: nowS + 120 }, now),
    ).toBe(false);
    expect(
      dndActive({ dnd_enabled: true, next_dnd_start_ts: nowS - 120, next_dnd_end_ts: nowS - 60 }, now),
    ).toBe(false);
    expect(dndActive({ dnd_enabled: false, next_dnd_start_ts: 1, next_dnd_end_ts: 1 }, now)).toBe(false);
    expect(
      dndActive(
        {
          dnd_enabled: false,
          next_dnd_start_ts: 1,
          next_dnd_end_ts: 1,
          snooze_enabled: true,
          snooze_endtime: nowS + 600,
        },
        now,
      ),
    ).toBe(true);
    expect(
      dndActive(
        {
          dnd_enabled: false,
          next_dnd_start_ts: 1,
          next_dnd_end_ts: 1,
          snooze_enabled: true,
          snooze_endtime: nowS - 1,
        },
        now,
      ),
    ).toBe(false);
  });

  it('reads the documented dnd.teamInfo example', () => {
    const team = fixture<{ users: Record<string, SlackDndStatus> }>('slack-dnd-teamInfo.json');
    // The example's window is 2015-12-17 21:30 to 2015-12-18 07:30 UTC.
    expect(dndActive(team.users.U023BECGF, Date.UTC(2015, 11, 18, 1))).toBe(true);
    expect(dndActive(team.users.W058CJVAA, Date.UTC(2015, 11, 18, 1))).toBe(false);
  });

  it('takes custom status from the profile, with expiry, from the documented event', () => {
    const ev = fixture<{
      event: { user: { profile: { status_text: string; status_emoji: string; status_expiration: number } } };
    }>('slack-user-status-changed-event.json');
    expect(toSlackCustomStatus(ev.event.user.profile, now)).toEqual({
      text: 'Commuting to office!',
      emoji: ':docs-team-in-transit:',
      expiresAt: null,
    });
    expect(
      toSlackCustomStatus({ status_text: 'Lunch', status_emoji: '', status_expiration: nowS + 60 }, now),
    ).toEqual({
      text: 'Lunch',
      emoji: null,
      expiresAt: now + 60_000,
    });
    expect(toSlackCustomStatus({ status_text: 'Lunch', status_expiration: nowS - 60 }, now)).toBeNull();
    expect(toSlackCustomStatus({ status_text: '', status_emoji: '' }, now)).toBeNull();
  });
});
