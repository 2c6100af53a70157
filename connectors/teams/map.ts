/**
 * @module connectors/teams/map
 * Teams (Graph) availability/activity → ladder. Pure and case-insensitive, because the older
 * docs spell values in PascalCase and the current ones in lowerCamelCase; both generations'
 * values are listed. A value not listed is unknown: it is never guessed (null is returned).
 *
 * The states a person sets by hand in Teams are in the manual tier, like Slack DND and Discord
 * `dnd`. Microsoft's table of Teams states (https://learn.microsoft.com/graph/cloud-communications-manage-presence-state)
 * gives them as: Do not disturb → `DoNotDisturb/DoNotDisturb`, Be right back →
 * `BeRightBack/BeRightBack`, Appear offline → `Offline/OffWork`. So `OffWork` is the person's
 * "appear offline" choice, not "off work": it is offline with no activity, in the manual tier.
 * (`DoNotDisturb/Presenting` is Teams' own doing while presenting: app tier.)
 */

import type { MappedPresence } from '../../src/core/connector';
import type { Activity, CustomStatus, Source, Status } from '../../src/core/presence';
import { statusMessageExpiry } from './time-zones';
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
  // Appear offline (see above): no activity of its own.
  offwork: null,
};

/** availability/activity pairs (lower-cased) that the person chose by hand. */
const MANUAL = new Set(['donotdisturb/donotdisturb', 'berightback/berightback', 'offline/offwork']);

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
  'do_not_disturb',
];
const moreSpecific = (a: Activity | null, b: Activity | null): Activity | null =>
  a === null ? b : b === null ? a : SPECIFICITY.indexOf(a) <= SPECIFICITY.indexOf(b) ? a : b;

export const TEAMS_AVAILABILITY_VALUES = Object.keys(AVAILABILITY);
export const TEAMS_ACTIVITY_VALUES = Object.keys(ACTIVITY);

function statusMessage(p: GraphPresence, now: number): CustomStatus | null {
  // Read defensively: a field of another type than documented is taken as absent.
  const content: unknown = p.statusMessage?.message?.content;
  const text = typeof content === 'string' ? content.trim() : '';
  if (text === '') return null;
  // A local date-time plus a named zone (time-zones.ts); undefined when it cannot be read, and
  // then the message is kept without an expiry rather than given a wrong one.
  const dateTime: unknown = p.statusMessage?.expiryDateTime?.dateTime;
  const timeZone: unknown = p.statusMessage?.expiryDateTime?.timeZone;
  if (typeof dateTime !== 'string') return { text, emoji: null, expiresAt: null };
  const at = statusMessageExpiry(dateTime, typeof timeZone === 'string' ? timeZone : undefined);
  const expiresAt = at ?? null;
  if (expiresAt !== null && expiresAt <= now) return null;
  return { text, emoji: null, expiresAt };
}

export function toTeamsPresence(p: GraphPresence, now: number): MappedPresence | null {
  const availability = p.availability.toLowerCase();
  const act = p.activity.toLowerCase();
  // Own keys only ("constructor" is no Teams value); PresenceUnknown and anything new: null.
  if (!Object.hasOwn(AVAILABILITY, availability) || !Object.hasOwn(ACTIVITY, act)) return null;
  const [mapped, implied] = AVAILABILITY[availability]!;
  // "Available, Inactive" is Teams fading a signed-in but untouched session: idle, not online.
  const status = mapped === 'online' && (act === 'inactive' || act === 'availableinactive') ? 'idle' : mapped;
  let activity = moreSpecific(ACTIVITY[act] ?? null, implied);
  if (activity === null && p.outOfOfficeSettings?.isOutOfOffice === true) activity = 'out_of_office';
  const source: Source = MANUAL.has(`${availability}/${act}`) ? 'manual' : 'app';
  return {
    state: {
      status,
      activity,
      customStatus: statusMessage(p, now),
      source,
      raw: { availability: p.availability, activity: p.activity },
      label: `${p.availability}/${p.activity}`,
    },
    devices: null,
  };
}
