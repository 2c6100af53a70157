/**
 * @module core/retry-after
 * The one reader of `Retry-After` (RFC 9110 §10.2.3) for every outbound client: webhook
 * deliveries, Microsoft Graph, OAuth token endpoints. Pure: the caller passes the current time.
 *
 * The value is delay-seconds (`1*DIGIT`) or an HTTP-date in one of its three forms (§5.6.7):
 * IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete RFC 850 `Sunday, 06-Nov-94 08:49:37
 * GMT` and asctime `Sun Nov  6 08:49:37 1994`. Anything else (a sign, a fraction, a lower-case
 * or otherwise loose date) is unreadable, so the caller falls back to its own delay rather than
 * guessing: the grammar is read as written, not through `Date.parse`, which accepts nearly anything.
 */

/**
 * The longest wait returned: 2^31 - 1 ms (about 24.8 days), the most a Node timer can wait (a
 * longer one fires at once), and well inside what a Date can hold.
 */
export const MAX_RETRY_AFTER_MS = 2_147_483_647;

const DAY_NAMES = 'Mon|Tue|Wed|Thu|Fri|Sat|Sun';
const LONG_DAY_NAMES = 'Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday';
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = MONTHS.join('|');
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';

const IMF_FIXDATE = new RegExp(`^(?:${DAY_NAMES}), (\\d{2}) (${MONTH}) (\\d{4}) ${TIME} GMT$`);
const RFC850_DATE = new RegExp(`^(?:${LONG_DAY_NAMES}), (\\d{2})-(${MONTH})-(\\d{2}) ${TIME} GMT$`);
const ASCTIME_DATE = new RegExp(`^(?:${DAY_NAMES}) (${MONTH}) (\\d{2}| \\d) ${TIME} (\\d{4})$`);

/**
 * A `Retry-After` header value as milliseconds from `now`, at most `MAX_RETRY_AFTER_MS`; null
 * when absent or unreadable. A date in the past means "now" (0). Of a repeated header (an array,
 * as Node gives it) the first value counts.
 */
export function parseRetryAfter(value: unknown, now: number): number | null {
  const first: unknown = Array.isArray(value) ? value[0] : value;
  if (typeof first !== 'string') return null;
  const text = first.trim();
  if (/^\d+$/.test(text)) return Math.min(Number(text) * 1000, MAX_RETRY_AFTER_MS);
  const at = parseHttpDate(text, now);
  return at === null ? null : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** An HTTP-date (any of its three forms) as epoch ms; null when it is not one. */
function parseHttpDate(text: string, now: number): number | null {
  let m = IMF_FIXDATE.exec(text);
  if (m !== null) return utc(Number(m[3]), m[2]!, m[1]!, m[4]!, m[5]!, m[6]!);
  m = RFC850_DATE.exec(text);
  if (m !== null) return utc(fullYear(Number(m[3]), now), m[2]!, m[1]!, m[4]!, m[5]!, m[6]!);
  m = ASCTIME_DATE.exec(text);
  if (m !== null) return utc(Number(m[6]), m[1]!, m[2]!.trim(), m[3]!, m[4]!, m[5]!);
  return null;
}

/**
 * RFC 9110: a two-digit year that would be more than 50 years in the future is the most recent
 * past year with the same last two digits.
 */
function fullYear(twoDigits: number, now: number): number {
  const current = new Date(now).getUTCFullYear();
  const year = current - (current % 100) + twoDigits;
  return year > current + 50 ? year - 100 : year;
}

function utc(year: number, month: string, day: string, h: string, min: string, s: string): number | null {
  const monthIndex = MONTHS.indexOf(month);
  const d = Number(day);
  const hour = Number(h);
  const minute = Number(min);
  const second = Number(s);
  // setUTCFullYear, not Date.UTC: Date.UTC reads years 0-99 as 1900-1999.
  const lastDay = new Date(0);
  lastDay.setUTCFullYear(year, monthIndex + 1, 0);
  // Second 60 is a leap second; the day must exist in its month (no 31 Feb rolling into March).
  if (d < 1 || d > lastDay.getUTCDate() || hour > 23 || minute > 59 || second > 60) return null;
  const at = new Date(0);
  at.setUTCFullYear(year, monthIndex, d);
  return at.setUTCHours(hour, minute, second, 0);
}
