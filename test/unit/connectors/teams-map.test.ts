import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { toTeamsPresence } from '../../../connectors/teams/map';
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
    ['DoNotDisturb', 'DoNotDisturb', 'busy', 'do_not_disturb'],
    ['DoNotDisturb', 'Presenting', 'busy', 'presenting'],
    ['DoNotDisturb', 'UrgentInterruptionsOnly', 'busy', 'focus'],
    ['Away', 'Away', 'away', null],
    ['BeRightBack', 'BeRightBack', 'away', null],
    ['Offline', 'OffWork', 'offline', 'off_work'],
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
    ['beRightBack', 'beRightBack', 'away', null],
    ['away', 'outOfOffice', 'away', 'out_of_office'],
    ['doNotDisturb', 'doNotDisturb', 'busy', 'do_not_disturb'],
    ['offline', 'offline', 'offline', null],
    ['OutOfOffice', 'OutOfOffice', 'away', 'out_of_office'],
  ])('%s/%s → %s %s', (availability, activity, status, act) => {
    const s = map(availability, activity);
    if (status === undefined) {
      expect(s).toBeUndefined();
      return;
    }
    expect(s).toMatchObject({
      status,
      activity: act,
      source: 'app',
      raw: { availability, activity },
      label: `${availability}/${activity}`,
    });
  });

  it.each([
    ['PresenceUnknown', 'PresenceUnknown'],
    ['presenceUnknown', 'presenceUnknown'],
    ['Available', 'SomethingNew'],
    ['Teleporting', 'Available'],
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
});
