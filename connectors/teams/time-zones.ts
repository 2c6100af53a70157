/**
 * @module connectors/teams/time-zones
 * Graph's `dateTimeTimeZone`: a local date-time (no offset) plus a named time zone. "In general,
 * the timeZone property can be set to any of the time zones currently supported by Windows, as
 * well as the other time zones supported by the calendar API" (the IANA names it lists), e.g.
 * `{ "dateTime": "2022-10-18T17:05:33.2079781", "timeZone": "Pacific Standard Time" }`
 * (https://learn.microsoft.com/graph/api/resources/datetimetimezone ,
 * https://learn.microsoft.com/graph/api/presence-setstatusmessage). A presence status message's
 * `expiryDateTime` is one: "expiryDateTime.dateTime shouldn't include time zone"
 * (https://learn.microsoft.com/graph/api/resources/presencestatusmessage).
 *
 * Windows names become IANA ones through CLDR's windowsZones mapping (the `windows-iana` package,
 * kept in step with CLDR); IANA names are used as they are. Node's Intl then gives the zone's
 * offset at that moment, daylight saving time included.
 */

import { findIana } from 'windows-iana';

const LOCAL = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?$/;
const WITH_OFFSET = /(?:[zZ]|[+-]\d\d:?\d\d)$/;

const formatters = new Map<string, Intl.DateTimeFormat | null>();

/** A formatter for an IANA zone Node knows, or null. */
function formatterFor(zone: string): Intl.DateTimeFormat | null {
  let f = formatters.get(zone);
  if (f !== undefined) return f;
  try {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
  } catch {
    f = null; // RangeError: not a zone Intl knows
  }
  // Zone names come from Graph; the cache is bounded so that odd values cannot grow it.
  if (formatters.size < 1000) formatters.set(zone, f);
  return f;
}

/** The IANA zone for a Windows or IANA name, or null when neither is known. */
export function ianaZone(name: string): string | null {
  const trimmed = name.trim();
  if (trimmed === '') return null;
  for (const candidate of findIana(trimmed)) if (formatterFor(candidate) !== null) return candidate;
  return formatterFor(trimmed) === null ? null : trimmed;
}

/** The zone's offset from UTC (ms) at an instant. */
function offsetAt(f: Intl.DateTimeFormat, utcMs: number): number {
  const parts: Record<string, number> = {};
  for (const p of f.formatToParts(new Date(utcMs))) if (p.type !== 'literal') parts[p.type] = Number(p.value);
  const wall = Date.UTC(parts.year!, parts.month! - 1, parts.day, parts.hour, parts.minute, parts.second);
  return wall - (utcMs - (((utcMs % 1000) + 1000) % 1000));
}

/**
 * The instant (ms since the epoch) of a local date-time in a named zone; undefined when the
 * date-time does not parse or the zone is unknown. A date-time that carries its own offset (or
 * `Z`) is read as it is; no zone at all is UTC.
 */
export function zonedDateTimeToEpochMs(dateTime: string, timeZone?: string | null): number | undefined {
  const text = dateTime.trim();
  if (WITH_OFFSET.test(text)) {
    const at = Date.parse(text);
    return Number.isNaN(at) ? undefined : at;
  }
  const m = LOCAL.exec(text);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, s = '0', frac = ''] = m;
  const ms = Number(frac.padEnd(3, '0').slice(0, 3));
  const local = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s), ms);
  if (Number.isNaN(local)) return undefined;
  const zone = ianaZone(timeZone ?? 'UTC') ?? (timeZone == null || timeZone.trim() === '' ? 'UTC' : null);
  if (zone === null) return undefined;
  const f = formatterFor(zone)!;
  // The offset at the wall time read as UTC is off by at most one DST change; a second pass
  // settles it. (A wall time that a DST change repeats gets its first occurrence; one that it
  // skips lands within the hour skipped.)
  const first = local - offsetAt(f, local);
  return local - offsetAt(f, first);
}

/** `presence.statusMessage.expiryDateTime`: when the message expires, or undefined if unreadable. */
export function statusMessageExpiry(dateTime: string, timeZone?: string | null): number | undefined {
  return zonedDateTimeToEpochMs(dateTime, timeZone);
}
