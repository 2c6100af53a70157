/**
 * @module connectors/teams/map
 * Teams (Graph) availability/activity → ladder. Pure and case-insensitive, because the older
 * docs spell values in PascalCase and the current ones in lowerCamelCase; both generations'
 * values are listed. A value not listed is unknown: it is never guessed (null is returned).
 */

import type { MappedPresence } from '../../src/core/connector';
import type { Activity, CustomStatus, Status } from '../../src/core/presence';
import type { GraphPresence } from './types';

/** availability (lower-cased) → status and the activity it implies on its own. */
const AVAILABILITY: Readonly<Record<string, readonly [Status, Activity | null]>> = {
  available: ['online', null],
  availableidle: ['idle', null],
  availableinactive: ['idle', null],
  away: ['away', null],
  berightback: ['away', null],
  busy: ['busy', null],
  busyidle: ['busy', null],
  donotdisturb: ['busy', 'do_not_disturb'],
  offline: ['offline', null],
  outofoffice: ['away', 'out_of_office'],
  // Current-generation values (the Learn page lists these under availability).
  focusing: ['busy', 'focus'],
  inacall: ['busy', 'in_call'],
  inameeting: ['busy', 'in_meeting'],
  presenting: ['busy', 'presenting'],
};

/** activity (lower-cased) → activity; null means "no extra detail". */
const ACTIVITY: Readonly<Record<string, Activity | null>> = {
  available: null,
  away: null,
  berightback: null,
  busy: null,
  inactive: null,
  availableinactive: null,
  offline: null,
  donotdisturb: 'do_not_disturb',
  inacall: 'in_call',
  inaconferencecall: 'in_call',
  inameeting: 'in_meeting',
  presenting: 'presenting',
  urgentinterruptionsonly: 'focus',
  focusing: 'focus',
  outofoffice: 'out_of_office',
  offwork: 'off_work',
};

/**
 * When availability and activity both imply an activity (the two doc generations put values such
 * as `presenting` in either field), the more specific one is kept.
 */
const SPECIFICITY: readonly Activity[] = [
  'presenting',
  'in_call',
  'in_meeting',
  'focus',
  'out_of_office',
  'off_work',
  'do_not_disturb',
];
const moreSpecific = (a: Activity | null, b: Activity | null): Activity | null =>
  a === null ? b : b === null ? a : SPECIFICITY.indexOf(a) <= SPECIFICITY.indexOf(b) ? a : b;

export const TEAMS_AVAILABILITY_VALUES = Object.keys(AVAILABILITY);
export const TEAMS_ACTIVITY_VALUES = Object.keys(ACTIVITY);

function statusMessage(p: GraphPresence, now: number): CustomStatus | null {
  const text = p.statusMessage?.message?.content?.trim();
  if (text === undefined || text === '') return null;
  const expiry = p.statusMessage?.expiryDateTime?.dateTime;
  // Graph gives the expiry with a separate timeZone; it is UTC in practice. A value without a
  // zone suffix is read as UTC.
  const expiresAt =
    expiry === undefined ? null : Date.parse(/[zZ]|[+-]\d\d:\d\d$/.test(expiry) ? expiry : `${expiry}Z`);
  if (expiresAt !== null && (Number.isNaN(expiresAt) || expiresAt <= now)) return null;
  return { text, emoji: null, expiresAt };
}

export function toTeamsPresence(p: GraphPresence, now: number): MappedPresence | null {
  const a = AVAILABILITY[p.availability.toLowerCase()];
  const act = p.activity.toLowerCase();
  if (a === undefined || !(act in ACTIVITY)) return null; // PresenceUnknown and anything new
  const [mapped, implied] = a;
  // "Available, Inactive" is Teams fading a signed-in but untouched session: idle, not online.
  const status = mapped === 'online' && (act === 'inactive' || act === 'availableinactive') ? 'idle' : mapped;
  let activity = moreSpecific(ACTIVITY[act] ?? null, implied);
  if (activity === null && p.outOfOfficeSettings?.isOutOfOffice === true) activity = 'out_of_office';
  return {
    state: {
      status,
      activity,
      customStatus: statusMessage(p, now),
      source: 'app',
      raw: { availability: p.availability, activity: p.activity },
      label: `${p.availability}/${p.activity}`,
    },
    devices: null,
  };
}
