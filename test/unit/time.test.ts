import { clockTime, parseIso, parseIsoAssumingUtc, toIso, toIsoSeconds } from '../../src/core/time';

describe('toIso', () => {
  it('matches Date#toISOString across days, years and edge milliseconds', () => {
    const samples = [
      0,
      1,
      999,
      1000,
      86_399_999,
      86_400_000,
      Date.UTC(2026, 10, 23, 14, 0, 3, 120),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
    ];
    let x = 12345;
    for (let i = 0; i < 2000; i++) {
      x = (x * 1103515245 + 12345) % 2147483648;
      samples.push(Date.UTC(2000, 0, 1) + x * 997);
    }
    for (const ms of samples) expect(toIso(ms)).toBe(new Date(ms).toISOString());
  });

  it('alternates between days without mixing them up', () => {
    const a = Date.UTC(2026, 10, 23, 1, 2, 3, 4);
    const b = Date.UTC(2026, 10, 24, 5, 6, 7, 8);
    expect([toIso(a), toIso(b), toIso(a)]).toEqual([
      new Date(a).toISOString(),
      new Date(b).toISOString(),
      new Date(a).toISOString(),
    ]);
  });

  it('answers like Date for a fraction of a millisecond, NaN and infinities', () => {
    expect(toIso(1.9)).toBe(new Date(1.9).toISOString());
    expect(toIso(-0.5)).toBe(new Date(-0.5).toISOString());
    expect(() => toIso(Number.NaN)).toThrow(RangeError);
    expect(() => toIso(Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });

  it('toIsoSeconds drops the milliseconds', () => {
    expect(toIsoSeconds(Date.UTC(2026, 10, 23, 14, 0, 3, 120))).toBe('2026-11-23T14:00:03Z');
    expect(toIsoSeconds(Date.UTC(2026, 10, 23, 14, 0, 3, 999))).toBe('2026-11-23T14:00:03Z');
  });

  it('clockTime is the UTC time of day', () => {
    expect(clockTime(Date.UTC(2026, 10, 23, 14, 0, 3, 120))).toBe('14:00:03');
  });
});

describe('parseIso', () => {
  it('accepts zoned ISO timestamps and refuses others', () => {
    expect(parseIso('2026-11-23T14:00:03.120Z')).toBe(Date.UTC(2026, 10, 23, 14, 0, 3, 120));
    expect(parseIso('2026-11-23T15:00:03+01:00')).toBe(Date.UTC(2026, 10, 23, 14, 0, 3));
    expect(parseIso('2026-11-23')).toBeNaN();
    expect(parseIso('2026-11-23T14:00:03')).toBeNaN();
    expect(parseIso('yesterday')).toBeNaN();
  });
});

describe('parseIsoAssumingUtc', () => {
  it("reads Graph's 7 fractional digits, with a zone or without one (UTC)", () => {
    const at = Date.UTC(2023, 8, 14, 10, 0, 0);
    expect(parseIsoAssumingUtc('2023-09-14T10:00:00.0000000Z')).toBe(at);
    expect(parseIsoAssumingUtc('2023-09-14T10:00:00.0000000')).toBe(at);
    expect(parseIsoAssumingUtc('2023-09-14T12:00:00+02:00')).toBe(at);
    expect(parseIsoAssumingUtc('tomorrow')).toBeNaN();
  });
});
