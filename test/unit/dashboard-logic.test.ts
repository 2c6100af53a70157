/**
 * The dashboard page's own logic (dashboard/src/logic.ts): formatting, rows from presence
 * objects, search and filters, the figures read from /metrics text, and the timeline's segments.
 */

import {
  chunks,
  countByStatus,
  figuresFrom,
  filterRows,
  formatAge,
  formatPercent,
  formatRate,
  formatRaw,
  formatTime,
  formatUntil,
  NO_FILTER,
  parseMetrics,
  refusalText,
  timelineSegments,
  timeTicks,
  toRow,
  type Transition,
} from '../../dashboard/src/logic';
import type { Presence } from '../../src/client';

const NOW = Date.UTC(2026, 11, 1, 14, 0, 0);
const iso = (ms: number): string => new Date(ms).toISOString();

function presence(userId: string, fields: Partial<Presence> = {}): Presence {
  return {
    user_id: userId,
    status: 'online',
    activity: null,
    custom_status: null,
    source: 'app',
    observed_at: iso(NOW - 12_000),
    last_active_at: iso(NOW - 12_000),
    expires_at: iso(NOW + 60_000),
    stale: false,
    version: 3,
    reachable_via: ['slack', 'device'],
    identity_only: [],
    explain: 'slack reported active',
    override: null,
    platforms: {},
    ...fields,
  };
}

const platform = (status: string, raw: unknown, stale = false) => ({
  status,
  activity: null,
  source: 'app',
  raw,
  observed_at: iso(NOW - 1000),
  expires_at: iso(NOW + 1000),
  stale,
  devices: {},
});

describe('formatting', () => {
  it('writes ages rounded down, in the largest whole unit', () => {
    expect([0, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, 86_400_000 * 3].map(formatAge)).toEqual([
      'now',
      'now',
      '1 s',
      '59 s',
      '1 min',
      '59 min',
      '1 h',
      '3 d',
    ]);
    expect(formatAge(-5000)).toBe('now');
    expect(formatAge(Number.NaN)).toBe('—');
  });

  it('writes times in UTC, with the date when it is another day', () => {
    expect(formatTime(iso(NOW - 3000), NOW)).toBe('13:59:57');
    expect(formatTime(iso(NOW - 86_400_000), NOW)).toBe('2026-11-30 14:00:00');
    expect(formatTime(null, NOW)).toBe('—');
    expect(formatUntil(iso(NOW + 12_000), NOW)).toBe('in 12 s');
    expect(formatUntil(iso(NOW - 120_000), NOW)).toBe('2 min ago');
  });

  it('writes rates and ratios', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.84)).toBe('0.8/s');
    expect(formatRate(1234.4)).toBe('1,234/s');
    expect(formatPercent(0.25)).toBe('25.0 %');
    expect(formatPercent(0.0004)).toBe('0.0 %');
  });

  it("writes a platform's raw value in its own words, short", () => {
    expect(formatRaw('active')).toBe('active');
    expect(formatRaw({ availability: 'Busy', activity: 'InAMeeting' })).toBe('Busy/InAMeeting');
    expect(formatRaw({ status: 'dnd', client_status: { desktop: 'dnd' } })).toBe('dnd');
    expect(formatRaw({ nested: { a: 1 } })).toBe('{…}');
    expect(formatRaw(null)).toBe('—');
    expect(formatRaw('x'.repeat(50), 10)).toBe(`${'x'.repeat(9)}…`);
  });

  it('says why a key was refused', () => {
    expect(refusalText(401)).toMatch(/refused/);
    expect(refusalText(403)).toMatch(/read scope/);
    expect(refusalText(503)).toMatch(/503/);
  });
});

describe('rows and filters', () => {
  const rows = [
    toRow(
      presence('alice', {
        status: 'busy',
        activity: 'in_meeting',
        platforms: {
          teams: platform('busy', { availability: 'Busy', activity: 'InAMeeting' }),
          slack: platform('online', 'active'),
        } as Presence['platforms'],
      }),
      NOW,
    ),
    toRow(
      presence('bob', {
        status: 'offline',
        stale: true,
        source: null,
        reachable_via: [],
        platforms: { zoom: platform('away', 'Away', true) } as Presence['platforms'],
      }),
      NOW,
    ),
    toRow(
      presence('carol', {
        platforms: { device: platform('online', { status: 'online' }) } as Presence['platforms'],
      }),
      NOW,
    ),
  ];

  it('makes a row with availability, reachable via, each platform raw → status, and freshness', () => {
    const alice = rows[0]!;
    expect(alice.available).toBe(false);
    expect(alice.reason).toMatch(/busy/);
    expect(alice.platforms).toEqual([
      { platform: 'teams', raw: 'Busy/InAMeeting', status: 'busy', stale: false },
      { platform: 'slack', raw: 'active', status: 'online', stale: false },
    ]);
    expect(alice.freshMs).toBe(12_000);
    expect(rows[2]!.available).toBe(true);
    expect(rows[1]!.reason).toMatch(/expired/);
  });

  it('searches by id and filters by status, platform and staleness; most present first', () => {
    expect(filterRows(rows, NO_FILTER).map((r) => r.userId)).toEqual(['carol', 'alice', 'bob']);
    expect(filterRows(rows, { ...NO_FILTER, text: ' AL ' }).map((r) => r.userId)).toEqual(['alice']);
    expect(filterRows(rows, { ...NO_FILTER, status: 'busy' }).map((r) => r.userId)).toEqual(['alice']);
    expect(filterRows(rows, { ...NO_FILTER, platform: 'zoom' }).map((r) => r.userId)).toEqual(['bob']);
    expect(filterRows(rows, { ...NO_FILTER, staleOnly: true }).map((r) => r.userId)).toEqual(['bob']);
    expect(countByStatus(rows)).toEqual({ online: 1, idle: 0, busy: 1, away: 0, offline: 1 });
  });

  it('splits ids into connections of at most a given size', () => {
    expect(chunks([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(chunks([], 1000)).toEqual([]);
  });
});

describe('figures from /metrics', () => {
  it('reads the presence_ops_* samples, skipping comments and labelled series', () => {
    const text = [
      '# HELP presence_ops_tracked_users Users the engine tracks',
      '# TYPE presence_ops_tracked_users gauge',
      'presence_ops_tracked_users 12',
      'presence_ops_changes_per_second 0.8333333333333334',
      'presence_ops_stale_ratio 0.25',
      'http_requests_total{method="GET",route="/metrics",status_code="200"} 4',
      '',
    ].join('\n');
    const m = parseMetrics(text);
    expect(m.get('http_requests_total{method="GET",route="/metrics",status_code="200"}')).toBe(4);
    expect(figuresFrom(m)).toEqual({
      tracked_users: 12,
      changes_per_second: 0.8333333333333334,
      stale_ratio: 0.25,
    });
  });
});

describe('the timeline', () => {
  const t = (
    version: number,
    atMs: number,
    from: string,
    to: string,
    activity: string | null = null,
  ): Transition =>
    ({
      version,
      at: iso(atMs),
      from: { status: from, activity: null },
      to: { status: to, activity },
      source: 'app',
      platform: 'slack',
    }) as Transition;

  it('draws each state from its transition to the next, the first from its "from"', () => {
    const from = NOW - 600_000;
    const segs = timelineSegments(
      [t(3, NOW - 100_000, 'busy', 'online'), t(2, NOW - 300_000, 'offline', 'busy', 'in_meeting')],
      from,
      NOW,
      { status: 'online', activity: null },
    );
    expect(segs).toEqual([
      { start: from, end: NOW - 300_000, status: 'offline', activity: null },
      { start: NOW - 300_000, end: NOW - 100_000, status: 'busy', activity: 'in_meeting' },
      { start: NOW - 100_000, end: NOW, status: 'online', activity: null },
    ]);
  });

  it('starts from the last transition before the window, or the current state with none', () => {
    const from = NOW - 60_000;
    expect(
      timelineSegments([t(1, NOW - 120_000, 'offline', 'away')], from, NOW, {
        status: 'away',
        activity: null,
      }),
    ).toEqual([{ start: from, end: NOW, status: 'away', activity: null }]);
    expect(timelineSegments([], from, NOW, { status: 'idle', activity: null })).toEqual([
      { start: from, end: NOW, status: 'idle', activity: null },
    ]);
  });

  it('merges neighbours in the same state (a custom-status-only change draws nothing new)', () => {
    const from = NOW - 60_000;
    const segs = timelineSegments([t(2, NOW - 30_000, 'online', 'online')], from, NOW, {
      status: 'online',
      activity: null,
    });
    expect(segs).toEqual([{ start: from, end: NOW, status: 'online', activity: null }]);
  });

  it('puts ticks on whole steps that fit the span', () => {
    const ticks = timeTicks(NOW - 3_600_000, NOW);
    expect(ticks.length).toBeLessThanOrEqual(6);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    for (const x of ticks) expect(x % 900_000).toBe(0);
  });
});
