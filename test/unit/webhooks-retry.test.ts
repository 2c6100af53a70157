import { mergePresenceChanges } from '../../src/webhooks/coalesce';
import { orderKeyOf } from '../../src/webhooks/outbox';
import { parseRetryAfter } from '../../src/core/retry-after';
import { DEFAULT_RETRY_SCHEDULE, retryDelay } from '../../src/webhooks/retry';

describe('retry schedule', () => {
  it('is the contract schedule: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h', () => {
    expect(DEFAULT_RETRY_SCHEDULE).toEqual([0, 5e3, 3e5, 18e5, 72e5, 18e6, 36e6, 36e6]);
  });

  it('jitters each delay within the bound, never the immediate first one', () => {
    const s = DEFAULT_RETRY_SCHEDULE;
    expect(retryDelay(s, 0, 0.1, () => 0.99)).toBe(0);
    expect(retryDelay(s, 1, 0.1, () => 0)).toBe(4500);
    expect(retryDelay(s, 1, 0.1, () => 0.5)).toBe(5000);
    expect(retryDelay(s, 1, 0.1, () => 0.999999)).toBe(5500);
    expect(retryDelay(s, 7, 0, Math.random)).toBe(36e6);
    for (let i = 0; i < 200; i++) {
      const d = retryDelay(s, 2, 0.1, Math.random)!;
      expect(d).toBeGreaterThanOrEqual(270_000);
      expect(d).toBeLessThanOrEqual(330_000);
    }
  });

  it('ends after the last step', () => {
    expect(retryDelay(DEFAULT_RETRY_SCHEDULE, 8, 0.1, Math.random)).toBeNull();
  });
});

describe('Retry-After', () => {
  const now = Date.UTC(2026, 10, 23, 14, 0, 0);
  it.each<[string | string[] | undefined, number | null]>([
    ['120', 120_000],
    ['0', 0],
    [' 7 ', 7000],
    [['30', '60'], 30_000],
    ['Mon, 23 Nov 2026 14:02:00 GMT', 120_000],
    ['Mon, 23 Nov 2026 13:00:00 GMT', 0],
    ['Monday, 23-Nov-26 14:01:00 GMT', 60_000],
    [undefined, null],
    ['', null],
    ['-5', null],
    ['1.5', null],
    ['soon', null],
  ])('%j → %j ms', (value, expected) => {
    expect(parseRetryAfter(value, now)).toBe(expected);
  });
});

describe('coalescing', () => {
  const body = (
    version: number,
    previous: Record<string, unknown>,
    current: Record<string, unknown>,
    timestamp = `2026-11-23T14:00:0${version}.000Z`,
  ): string =>
    JSON.stringify({
      type: 'presence.changed',
      timestamp,
      data: {
        user_id: 'alice',
        version,
        previous,
        current: { user_id: 'alice', version, ...current },
        changed: [],
      },
    });
  const st = (status: string, custom_status: unknown = null, activity: string | null = null) => ({
    status,
    activity,
    custom_status,
  });

  it('online → offline → online cancels out', () => {
    expect(
      mergePresenceChanges([body(2, st('online'), st('offline')), body(3, st('offline'), st('online'))]),
    ).toBeNull();
  });

  it('keeps the first previous and the last current, and recomputes changed', () => {
    const cs = { text: 'Lunch', emoji: ':fork:', expires_at: null };
    const merged = JSON.parse(
      mergePresenceChanges([
        body(4, st('online'), st('busy', null, 'in_meeting')),
        body(5, st('busy', null, 'in_meeting'), st('away')),
        body(6, st('away'), st('away', cs)),
      ])!,
    ) as { timestamp: string; data: Record<string, unknown> };
    expect(merged).toEqual({
      type: 'presence.changed',
      timestamp: '2026-11-23T14:00:06.000Z',
      data: {
        user_id: 'alice',
        version: 6,
        previous: st('online'),
        current: { user_id: 'alice', version: 6, ...st('away', cs) },
        changed: ['status', 'custom_status'],
      },
    });
  });

  it('a custom status that comes back equal is no change', () => {
    const cs = { text: 'Lunch', emoji: null, expires_at: null };
    expect(
      mergePresenceChanges([
        body(2, st('online', cs), st('online')),
        body(3, st('online'), st('online', { ...cs })),
      ]),
    ).toBeNull();
  });
});

describe('ordering keys', () => {
  it('orders presence per user, connections per connection, connectors per platform', () => {
    expect(orderKeyOf('presence.changed', { user_id: 'alice' })).toBe('u:alice');
    expect(orderKeyOf('connection.revoked', { connection_id: 'c1', user_id: 'alice' })).toBe('c:c1');
    expect(orderKeyOf('connection.reauth_required', { user_id: 'alice' })).toBe('c:alice');
    expect(orderKeyOf('connector.recovered', { platform: 'slack' })).toBe('k:slack');
    expect(orderKeyOf('webhook.endpoint_disabled', { endpoint_id: 'ep_1' })).toBe('e:ep_1');
  });
});
