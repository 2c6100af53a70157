import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { toZoomEventPresence, toZoomPresence } from '../../../connectors/zoom/map';
import type { ZoomPresenceEvent } from '../../../connectors/zoom/types';

describe('Zoom mapping', () => {
  it.each([
    // GET presence_status enum and description, webhook enum, Rivet SDK enum: every documented spelling
    ['Available', 'online', null, 'app'],
    ['Away', 'away', null, 'app'],
    ['Offline', 'offline', null, 'app'],
    ['Busy', 'busy', null, 'app'],
    ['Do_Not_Disturb', 'busy', 'do_not_disturb', 'manual'],
    ['Do_No_Disturb', 'busy', 'do_not_disturb', 'manual'],
    ['In_Meeting', 'busy', 'in_meeting', 'app'],
    ['In_A_Meeting', 'busy', 'in_meeting', 'app'],
    ['In_A_Zoom_Meeting', 'busy', 'in_meeting', 'app'],
    ['Presenting', 'busy', 'presenting', 'app'],
    ['On_Phone_Call', 'busy', 'in_call', 'app'],
    ['On_A_Call', 'busy', 'in_call', 'app'],
    ['In_A_Call', 'busy', 'in_call', 'app'],
    ['In_Calendar_Event', 'busy', 'in_meeting', 'app'],
    ['In_A_Calendar_Event', 'busy', 'in_meeting', 'app'],
    ['Out_of_Office', 'away', 'out_of_office', 'app'],
    ['Mobile_signed_in', 'idle', null, 'app'],
    ['available', 'online', null, 'app'],
    ['IN_MEETING', 'busy', 'in_meeting', 'app'],
  ])('%s → %s %s (%s tier)', (value, status, activity, source) => {
    expect(toZoomPresence({ status: value }, 0)?.state).toMatchObject({
      status,
      activity,
      source,
      raw: value,
    });
  });

  it('an unknown value is not guessed', () => {
    expect(toZoomPresence({ status: 'Teleporting' }, 0)).toBeNull();
  });

  it('maps the documented event, with its per-app entry as a device and its "date-time" spelling', () => {
    const ev = JSON.parse(
      readFileSync(
        join(__dirname, '../../../connectors/zoom/fixtures/zoom-user-presence-status-updated.json'),
        'utf8',
      ),
    ) as ZoomPresenceEvent;
    const m = toZoomEventPresence(ev.payload.object, 0);
    expect(m?.state.status).toBe('away');
    expect(m?.devices?.mobile).toMatchObject({ status: 'offline', raw: 'Offline' });
    expect(m?.at).toBe(Date.UTC(2019, 10, 26, 20, 13, 57));
  });

  it('accepts date_time too', () => {
    const m = toZoomEventPresence(
      { id: 'u', presence_status: 'Available', date_time: '2026-11-23T14:00:00Z' },
      0,
    );
    expect(m?.at).toBe(Date.UTC(2026, 10, 23, 14));
    expect(m?.devices).toEqual({});
  });
});
