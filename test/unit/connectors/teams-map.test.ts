import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { toTeamsPresence } from '../../../connectors/teams/map';
import { ianaZone, zonedDateTimeToEpochMs } from '../../../connectors/teams/time-zones';
import type { GraphPresencesResponse } from '../../../connectors/teams/types';

const now = Date.UTC(2026, 10, 23, 14);
const map = (availability: string, activity: string) =>
  toTeamsPresence({ availability, activity }, now)?.state;

describe('Teams mapping', () => {
  it.each([
    // Teams UI state → Graph availability/activity (cloud-communications-manage-presence-state)
    ['Available', 'Available', 'online', null],
    ['Available', 'OutOfOffice', 'online', 'out_of_office'],
    ['Busy', 'Busy', 'busy', null],
    ['Busy', 'InACall', 'busy', 'in_call'],
    ['Busy', 'InAConferenceCall', 'busy', 'in_call'],
    ['Busy', 'InAMeeting', 'busy', 'in_meeting'],
    ['DoNotDisturb', 'DoNotDisturb', 'busy', 'do_not_disturb', 'manual'],
    ['DoNotDisturb', 'Presenting', 'busy', 'presenting'],
    ['DoNotDisturb', 'UrgentInterruptionsOnly', 'busy', 'focus'],
    ['Away', 'Away', 'away', null],
    ['BeRightBack', 'BeRightBack', 'away', null, 'manual'],
    // Appear offline: the person's choice, not "off work".
    ['Offline', 'OffWork', 'offline', null, 'manual'],
    ['Offline', 'Offline', 'offline', null],
    ['AvailableIdle', 'Available', 'idle', null],
    ['AvailableIdle', 'Inactive', 'idle', null],
    ['BusyIdle', 'Busy', 'busy', null],
    ['Available', 'AvailableInactive', 'idle', null],
    ['Available', 'Inactive', 'idle', null],
    // current-generation lowerCamelCase values
    ['available', 'available', 'online', null],
    ['focusing', 'busy', 'busy', 'focus'],
    ['inACall', 'busy', 'busy', 'in_call'],
    ['inAMeeting', 'busy', 'busy', 'in_meeting'],
    ['presenting', 'doNotDisturb', 'busy', 'presenting'],
    ['inAMeeting', 'outOfOffice', 'busy', 'in_meeting'],
    ['beRightBack', 'beRightBack', 'away', null, 'manual'],
    ['away', 'outOfOffice', 'away', 'out_of_office'],
    ['doNotDisturb', 'doNotDisturb', 'busy', 'do_not_disturb', 'manual'],
    ['offline', 'offWork', 'offline', null, 'manual'],
    ['offline', 'offline', 'offline', null],
    ['OutOfOffice', 'OutOfOffice', 'away', 'out_of_office'],
  ] as [string, string, string, string | null, string?][])(
    '%s/%s → %s %s %s',
    (availability, activity, status, act, source = 'app') => {
      const s = map(availability, activity);
      if (status === undefined) {
        expect(s).toBeUndefined();
        return;
      }
      expect(s).toMatchObject({
        status,
        activity: act,
        source,
        raw: { availability, activity },
        label: `${availability}/${activity}`,
      });
    },
  );

  it.each([
    ['PresenceUnknown', 'PresenceUnknown'],
    ['presenceUnknown', 'presenceUnknown'],
    ['Available', 'SomethingNew'],
    ['Teleporting', 'Available'],
    ['constructor', 'Available'],
    ['Available', 'constructor'],
    ['__proto__', 'toString'],
  ])('%s/%s is unknown and never guessed', (availability, activity) => {
    expect(toTeamsPresence({ availability, activity }, now)).toBeNull();
  });

  it('uses outOfOfficeSettings and statusMessage where present', () => {
    const s = toTeamsPresence(
      {
        availability: 'Available',
        activity: 'Available',
        outOfOfficeSettings: { isOutOfOffice: true },
        statusMessage: {
          message: { content: 'Back Monday', contentType: 'text' },
          expiryDateTime: { dateTime: '2026-11-30T08:00:00.0000000', timeZone: 'UTC' },
        },
      },
      now,
    )?.state;
    expect(s?.activity).toBe('out_of_office');
    expect(s?.customStatus).toEqual({
      text: 'Back Monday',
      emoji: null,
      expiresAt: Date.UTC(2026, 10, 30, 8),
    });
  });

  it('maps the documented getPresencesByUserId example', () => {
    const body = JSON.parse(
      readFileSync(
        join(__dirname, '../../../connectors/teams/fixtures/graph-getPresencesByUserId-response.json'),
        'utf8',
      ),
    ) as GraphPresencesResponse;
    expect(body.value.map((p) => toTeamsPresence(p, now)?.state.status)).toEqual(['busy', 'away']);
  });

  describe('statusMessage.expiryDateTime: a local date-time in a named zone', () => {
    const expiry = (dateTime: string, timeZone?: string) =>
      toTeamsPresence(
        {
          availability: 'Available',
          activity: 'Available',
          statusMessage: {
            message: { content: 'Out for lunch', contentType: 'text' },
            expiryDateTime: timeZone === undefined ? { dateTime } : { dateTime, timeZone },
          },
        },
        now,
      )?.state.customStatus?.expiresAt;

    it.each([
      // Graph's own example zone; 17:00 PST (UTC-8 in November) is 01:00 UTC the next day.
      ['2026-11-23T17:00:00.0000000', 'Pacific Standard Time', Date.UTC(2026, 10, 24, 1)],
      // The same wall time in July is PDT (UTC-7).
      ['2027-07-01T17:00:00.0000000', 'Pacific Standard Time', Date.UTC(2027, 6, 2, 0)],
      // East of UTC a message lasted hours too long when read as UTC.
      ['2026-11-24T17:00:00.0000000', 'Tokyo Standard Time', Date.UTC(2026, 10, 24, 8)],
      ['2026-11-23T17:00:00.0000000', 'W. Europe Standard Time', Date.UTC(2026, 10, 23, 16)],
      ['2026-11-24T17:00:00.0000000', 'India Standard Time', Date.UTC(2026, 10, 24, 11, 30)],
      // IANA names, as the calendar API also takes.
      ['2026-11-23T17:00:00.0000000', 'America/New_York', Date.UTC(2026, 10, 23, 22)],
      ['2026-11-24T17:00:00.0000000', 'Asia/Kathmandu', Date.UTC(2026, 10, 24, 11, 15)],
      // UTC, by name or by default.
      ['2026-11-23T17:00:00.0000000', 'UTC', Date.UTC(2026, 10, 23, 17)],
      ['2026-11-23T17:00:00.0000000', undefined, Date.UTC(2026, 10, 23, 17)],
      // A value that carries its own offset is read as it is.
      ['2026-11-23T17:00:00Z', 'Pacific Standard Time', Date.UTC(2026, 10, 23, 17)],
      ['2026-11-23T17:00:00+02:00', 'Pacific Standard Time', Date.UTC(2026, 10, 23, 15)],
    ])('%s in %s', (dateTime, timeZone, expected) => {
      expect(expiry(dateTime, timeZone)).toBe(expected);
    });

    it('a message whose local expiry has passed (though not in UTC) is gone', () => {
      // 07:00 in Tokyo is 22:00 UTC the day before: long past at 14:00 UTC.
      expect(expiry('2026-11-23T07:00:00.0000000', 'Tokyo Standard Time')).toBeUndefined();
    });

    it('an unknown zone or an unreadable date-time keeps the message without claiming an expiry', () => {
      expect(expiry('2026-11-23T17:00:00.0000000', 'Mars Standard Time')).toBeNull();
      expect(expiry('tomorrow', 'UTC')).toBeNull();
    });

    it('resolves Windows names through CLDR and keeps IANA names', () => {
      expect(ianaZone('Pacific Standard Time')).toBe('America/Los_Angeles');
      expect(ianaZone('GMT Standard Time')).toBe('Europe/London');
      expect(ianaZone('Europe/Paris')).toBe('Europe/Paris');
      expect(ianaZone('Nowhere Standard Time')).toBeNull();
      expect(zonedDateTimeToEpochMs('2026-03-29T01:30:00', 'GMT Standard Time')).toBe(
        Date.UTC(2026, 2, 29, 1, 30),
      );
      expect(zonedDateTimeToEpochMs('2026-03-29T02:30:00', 'GMT Standard Time')).toBe(
        Date.UTC(2026, 2, 29, 1, 30),
      );
    });
  });
});
