/**
 * @module core/time
 * Fast ISO-8601 formatting. A batch read formats several timestamps per user, and
 * `Date#toISOString` costs more than everything else in building a presence object, so this keeps
 * the date part of the last day seen and only does arithmetic for the time of day.
 */

const DAY_MS = 86_400_000;
const PAD2: string[] = Array.from({ length: 60 }, (_, i) => (i < 10 ? `0${i}` : `${i}`));
const PAD3: string[] = Array.from({ length: 1000 }, (_, i) => `${i}`.padStart(3, '0'));

let cachedDay = Number.NaN;
let cachedPrefix = '';

/**
 * `new Date(ms).toISOString()`, faster: "2026-11-23T14:00:03.120Z". Every ISO timestamp the
 * service writes goes through here (or the helpers below), so they all have one shape.
 */
export function toIso(ms: number): string {
  // A fraction (Date truncates it), NaN or an infinity (Date throws): Date's answer, exactly.
  if (!Number.isInteger(ms)) return new Date(ms).toISOString();
  const day = Math.floor(ms / DAY_MS);
  if (day !== cachedDay) {
    // Years outside 0000-9999 have a different shape; leave them to Date.
    const full = new Date(ms).toISOString();
    if (full.length !== 24) return full;
    cachedDay = day;
    cachedPrefix = full.slice(0, 11);
  }
  let rest = ms - day * DAY_MS;
  const millis = rest % 1000;
  rest = (rest - millis) / 1000;
  const s = rest % 60;
  rest = (rest - s) / 60;
  const m = rest % 60;
  const h = (rest - m) / 60;
  return `${cachedPrefix}${PAD2[h]}:${PAD2[m]}:${PAD2[s]}.${PAD3[millis]}Z`;
}

export function toIsoOrNull(ms: number | null): string | null {
  return ms === null ? null : toIso(ms);
}

/** Whole seconds, no milliseconds: "2026-11-23T14:00:03Z" (the shape Zoom's events use). */
export function toIsoSeconds(ms: number): string {
  return `${toIso(ms).slice(0, -5)}Z`;
}

/** "14:00:03", the time of day in UTC that `explain` sentences use. */
export function clockTime(ms: number): string {
  return toIso(ms).slice(11, 19);
}

/** Parses an ISO-8601 timestamp with a zone; NaN when it is not one. */
export function parseIso(text: string): number {
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/.test(text))
    return Number.NaN;
  return Date.parse(text);
}

/**
 * Like `parseIso`, but a timestamp without a zone is read as UTC: Microsoft Graph writes its
 * dateTime values (7 fractional digits) with `Z` or, at times, with no zone at all.
 */
export function parseIsoAssumingUtc(text: string): number {
  return parseIso(/[zZ]$|[+-]\d{2}:\d{2}$/.test(text) ? text : `${text}Z`);
}
