/**
 * @module connectors/zoom/map
 * Zoom → ladder. Pure and case-insensitive. Zoom's docs spell the same state several ways
 * (In_Meeting / In_A_Zoom_Meeting / In_A_Meeting, On_Phone_Call / On_A_Call / In_A_Call,
 * Do_Not_Disturb / Do_No_Disturb, …); every documented spelling is listed. Unknown: null.
 */

import type { MappedPresence } from '../../src/core/connector';
import type { Activity, NormalizedState, Source, Status } from '../../src/core/presence';
import type { ZoomPresenceEventObject } from './types';

const STATUS: Readonly<Record<string, readonly [Status, Activity | null, Source]>> = {
  available: ['online', null, 'app'],
  away: ['away', null, 'app'],
  offline: ['offline', null, 'app'],
  busy: ['busy', null, 'app'],
  do_not_disturb: ['busy', 'do_not_disturb', 'manual'],
  do_no_disturb: ['busy', 'do_not_disturb', 'manual'],
  in_meeting: ['busy', 'in_meeting', 'app'],
  in_a_meeting: ['busy', 'in_meeting', 'app'],
  in_a_zoom_meeting: ['busy', 'in_meeting', 'app'],
  presenting: ['busy', 'presenting', 'app'],
  on_phone_call: ['busy', 'in_call', 'app'],
  on_a_call: ['busy', 'in_call', 'app'],
  in_a_call: ['busy', 'in_call', 'app'],
  in_calendar_event: ['busy', 'in_meeting', 'app'],
  in_a_calendar_event: ['busy', 'in_meeting', 'app'],
  out_of_office: ['away', 'out_of_office', 'app'],
  // Signed in on a phone only: reachable there, but not at a desk.
  mobile_signed_in: ['idle', null, 'app'],
};

export const ZOOM_STATUS_VALUES = Object.keys(STATUS);

export function toZoomState(value: string, label: string = value): NormalizedState | null {
  const key = value.toLowerCase();
  // Own keys only: "constructor" or "__proto__" are not Zoom states.
  if (!Object.hasOwn(STATUS, key)) return null;
  const s = STATUS[key]!;
  return { status: s[0], activity: s[1], source: s[2], customStatus: null, raw: value, label };
}

/** From `GET /users/{id}/presence_status` ({ status }). */
export function toZoomPresence(raw: { readonly status: string }, _now: number): MappedPresence | null {
  const state = toZoomState(raw.status);
  return state === null ? null : { state, devices: null };
}

/** From a `user.presence_status_updated` event object, with its per-app entry as a device. */
export function toZoomEventPresence(obj: ZoomPresenceEventObject, _now: number): MappedPresence | null {
  const state = toZoomState(obj.presence_status);
  if (state === null) return null;
  const devices: Record<string, NormalizedState> = {};
  if (obj.app !== undefined) {
    const app = toZoomState(obj.app.presence_status, `${obj.app.type} ${obj.app.presence_status}`);
    if (app !== null) devices[obj.app.type] = app;
  }
  const when = obj.date_time ?? obj['date-time'];
  const at = when === undefined ? Number.NaN : Date.parse(when);
  return { state, devices, ...(Number.isNaN(at) ? {} : { at }) };
}
