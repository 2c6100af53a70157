import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import {
  dndActive,
  toSlackCustomStatus,
  toSlackPresence,
  toSlackPushedPresence,
} from '../../../connectors/slack/map';
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

  it("the token's own users.getPresence with online: false (no client connected) is offline, not away", () => {
    for (const presence of [
      { presence: 'away', online: false, auto_away: false, manual_away: false, connection_count: 0 },
      { presence: 'away', online: false, auto_away: true },
      { presence: 'away', online: false, manual_away: true },
    ]) {
      const s = toSlackPresence({ presence: { ok: true, ...presence } }, now)?.state;
      expect(s).toMatchObject({ status: 'offline', activity: null, source: 'app' });
      expect(s?.raw).toMatchObject({ presence: 'away', online: false });
    }
    // DND, which the person chose, still wins.
    const dnd = { dnd_enabled: true, next_dnd_start_ts: nowS - 60, next_dnd_end_ts: nowS + 60 };
    expect(
      toSlackPresence({ presence: { ok: true, presence: 'away', online: false }, dnd }, now)?.state,
    ).toMatchObject({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
  });

  it('a huddle is a call: busy + in_call, until the huddle state lapses', () => {
    const profile = { huddle_state: 'in_a_huddle', huddle_state_expiration_ts: nowS + 600 };
    const s = toSlackPresence({ presence: { ok: true, presence: 'active' }, profile }, now)?.state;
    expect(s).toMatchObject({ status: 'busy', activity: 'in_call', source: 'app' });
    expect(s?.raw).toEqual({ presence: 'active', huddle_state: 'in_a_huddle' });
    // Lapsed, or another huddle_state: not in a call.
    expect(
      toSlackPresence({ presence: { ok: true, presence: 'active' }, profile }, (nowS + 600) * 1000)?.state,
    ).toMatchObject({ status: 'online', activity: null });
    expect(
      toSlackPresence(
        { presence: { ok: true, presence: 'active' }, profile: { huddle_state: 'default_unset' } },
        now,
      )?.state,
    ).toMatchObject({ status: 'online', activity: null });
    // No expiration: in a call until Slack says otherwise.
    expect(
      toSlackPresence(
        { presence: { ok: true, presence: 'active' }, profile: { huddle_state: 'in_a_huddle' } },
        now,
      )?.state,
    ).toMatchObject({ status: 'busy', activity: 'in_call' });
  });

  describe('push only (no polling: presence unknown)', () => {
    const WEEK = 7 * 24 * 3_600_000;
    it('DND: busy + do_not_disturb, manual tier, until next_dnd_end_ts', () => {
      const p = toSlackPushedPresence(
        { dnd: { dnd_enabled: true, next_dnd_start_ts: nowS - 60, next_dnd_end_ts: nowS + 3600 } },
        now,
        WEEK,
      );
      expect(p?.mapped.state).toMatchObject({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
      expect(p?.until).toBe(now + 3_600_000);
    });

    it('a snooze ends at snooze_endtime', () => {
      const p = toSlackPushedPresence(
        {
          dnd: {
            dnd_enabled: false,
            next_dnd_start_ts: 1,
            next_dnd_end_ts: 1,
            snooze_enabled: true,
            snooze_endtime: nowS + 1800,
          },
        },
        now,
        WEEK,
      );
      expect(p?.mapped.state).toMatchObject({ status: 'busy', activity: 'do_not_disturb', source: 'manual' });
      expect(p?.until).toBe(now + 1_800_000);
    });

    it('a custom status alone is carried by offline in the inferred tier, until it expires', () => {
      const p = toSlackPushedPresence(
        { profile: { status_text: 'Lunch', status_emoji: ':taco:', status_expiration: nowS + 900 } },
        now,
        WEEK,
      );
      expect(p?.mapped.state).toMatchObject({
        status: 'offline',
        activity: null,
        source: 'inferred',
        customStatus: { text: 'Lunch', emoji: ':taco:', expiresAt: now + 900_000 },
      });
      expect(p?.until).toBe(now + 900_000);
      // Without an expiration it counts for the open-ended time.
      expect(toSlackPushedPresence({ profile: { status_text: 'Remote' } }, now, WEEK)?.until).toBe(
        now + WEEK,
      );
    });

    it('a huddle: busy + in_call in the app tier; with DND, DND wins', () => {
      const profile = { huddle_state: 'in_a_huddle', huddle_state_expiration_ts: nowS + 300 };
      expect(toSlackPushedPresence({ profile }, now, WEEK)).toMatchObject({
        mapped: { state: { status: 'busy', activity: 'in_call', source: 'app' } },
        until: now + 300_000,
      });
      const dnd = { dnd_enabled: true, next_dnd_start_ts: nowS - 60, next_dnd_end_ts: nowS + 60 };
      expect(toSlackPushedPresence({ profile, dnd }, now, WEEK)?.mapped.state).toMatchObject({
        activity: 'do_not_disturb',
      });
    });

    it('nothing set (DND off, no status, no huddle): null', () => {
      expect(
        toSlackPushedPresence(
          {
            dnd: { dnd_enabled: false, next_dnd_start_ts: 1, next_dnd_end_ts: 1 },
            profile: {
              status_text: '',
              status_emoji: '',
              status_expiration: 0,
              huddle_state: 'default_unset',
            },
          },
          now,
          WEEK,
        ),
      ).toBeNull();
    });
  });
});
