import { MAX_RETRY_AFTER_MS, parseRetryAfter } from '../../src/core/retry-after';

const now = Date.UTC(2026, 10, 23, 14, 0, 0); // Mon, 23 Nov 2026 14:00:00 GMT

describe('parseRetryAfter', () => {
  it.each<[string, number]>([
    ['0', 0],
    ['7', 7_000],
    ['120', 120_000],
    [' 30\t', 30_000],
    ['007', 7_000],
  ])('reads delta-seconds %j as %d ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it.each<[string, number]>([
    ['Mon, 23 Nov 2026 14:02:00 GMT', 120_000], // IMF-fixdate
    ['Monday, 23-Nov-26 14:01:00 GMT', 60_000], // RFC 850
    ['Mon Nov 23 14:00:45 2026', 45_000], // asctime
    ['Tue Dec  1 14:00:00 2026', 8 * 86_400_000], // asctime, one-digit day
    ['Mon, 23 Nov 2026 14:00:00 GMT', 0],
  ])('reads the HTTP-date %j as %d ms from now', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it('reads a date in the past as now', () => {
    expect(parseRetryAfter('Mon, 23 Nov 2026 13:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('Sun, 06 Nov 1994 08:49:37 GMT', now)).toBe(0);
  });

  it('reads a two-digit year more than 50 years ahead as the past century (RFC 9110)', () => {
    expect(parseRetryAfter('Monday, 23-Nov-26 14:00:10 GMT', now)).toBe(10_000); // 2026
    expect(parseRetryAfter('Monday, 23-Nov-76 14:00:10 GMT', now)).toBe(MAX_RETRY_AFTER_MS); // 2076
    expect(parseRetryAfter('Tuesday, 23-Nov-77 14:00:10 GMT', now)).toBe(0); // 1977
  });

  it.each<[unknown]>([
    [undefined],
    [null],
    [''],
    ['   '],
    ['soon'],
    ['-5'],
    ['+5'],
    ['1.5'],
    ['1e3'],
    ['5s'],
    ['0x10'],
    ['mon, 23 nov 2026 14:02:00 gmt'], // HTTP-date is case-sensitive
    ['Mon, 23 Nov 2026 14:02:00 UTC'],
    ['Mon, 23 Nov 2026 14:02:00'],
    ['2026-11-23T14:02:00Z'],
    ['Mon, 31 Feb 2026 14:02:00 GMT'], // no such day
    ['Mon, 23 Nov 2026 24:00:00 GMT'],
    ['Mon, 23 Nov 2026 14:60:00 GMT'],
    [120],
    [[]],
  ])('is null for %j (absent or unreadable)', (value) => {
    expect(parseRetryAfter(value, now)).toBeNull();
  });

  it('takes the first of repeated values', () => {
    expect(parseRetryAfter(['30', '60'], now)).toBe(30_000);
    expect(parseRetryAfter(['soon', '60'], now)).toBeNull();
  });

  it('caps huge values at the longest wait a timer can hold', () => {
    expect(MAX_RETRY_AFTER_MS).toBe(2 ** 31 - 1);
    expect(parseRetryAfter('2147483', now)).toBe(2_147_483_000);
    expect(parseRetryAfter('2147484', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('99999999999999999999999999', now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('9'.repeat(400), now)).toBe(MAX_RETRY_AFTER_MS);
    expect(parseRetryAfter('Fri, 31 Dec 9999 23:59:59 GMT', now)).toBe(MAX_RETRY_AFTER_MS);
  });

  it('accepts a leap second', () => {
    expect(parseRetryAfter('Mon, 23 Nov 2026 14:00:60 GMT', now)).toBe(60_000);
  });
});
