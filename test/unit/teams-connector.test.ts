/**
 * Pure parts of the Teams connector: the sliding-window limiter at Graph's documented budget,
 * Retry-After, backoff, the subscription resource, notification ids, URL and option guards.
 */

import { isSafeTokenUrl, TeamsGraphClient } from '../../connectors/teams/client';
import {
  notificationUserId,
  presenceResource,
  TeamsConnector,
  teamsConnectorFromEnv,
} from '../../connectors/teams/connector';
import { parseEnv } from '../../src/config/env';
import {
  backoffDelay,
  GRAPH_PRESENCE_CALLS,
  GRAPH_PRESENCE_WINDOW_MS,
  SlidingWindowLimiter,
} from '../../connectors/teams/limiter';
import { parseRetryAfter } from '../../src/core/retry-after';
import { FakeClock } from '../../src/core/clock';

const ID = 'fa8bf3dc-eca7-46b7-bad1-db199b62afc3';

describe('SlidingWindowLimiter', () => {
  it('allows 1,500 calls per 30 s and no more, then frees slots as the window slides', () => {
    const l = new SlidingWindowLimiter();
    expect([l.limit, l.windowMs]).toEqual([GRAPH_PRESENCE_CALLS, GRAPH_PRESENCE_WINDOW_MS]);
    const t0 = 1_000_000;
    for (let i = 0; i < 1500; i++) expect(l.take(t0 + i)).toBe(0); // 1,500 within 1.5 s
    expect(l.take(t0 + 1500)).toBe(30_000 - 1500); // until the first call leaves the window
    expect(l.used(t0 + 1500)).toBe(1500);
    expect(l.take(t0 + 29_999)).toBe(1);
    expect(l.take(t0 + 30_000)).toBe(0);
    expect(l.take(t0 + 30_000)).toBe(1);
    expect(l.take(t0 + 30_001)).toBe(0);
  });

  it('never lets a 30 s window hold more than the limit, whatever the call pattern', () => {
    const l = new SlidingWindowLimiter(5, 1000);
    const taken: number[] = [];
    for (let t = 0; t < 10_000; t += 37) if (l.take(t) === 0) taken.push(t);
    for (const t of taken) expect(taken.filter((u) => u > t - 1000 && u <= t).length).toBeLessThanOrEqual(5);
    expect(taken.length).toBeGreaterThan(40);
  });

  it('refuses nonsense limits', () => {
    expect(() => new SlidingWindowLimiter(0, 1000)).toThrow(RangeError);
    expect(() => new SlidingWindowLimiter(1, 0)).toThrow(RangeError);
  });
});

describe('Retry-After and backoff', () => {
  const now = Date.UTC(2026, 10, 23, 14, 0, 0);
  it.each([
    ['7', 7000],
    [' 0 ', 0],
    ['Mon, 23 Nov 2026 14:00:30 GMT', 30_000],
    ['Mon, 23 Nov 2026 13:00:00 GMT', 0],
  ])('%s → %d ms', (value, ms) => expect(parseRetryAfter(value, now)).toBe(ms));

  it('is null when absent or unreadable', () => {
    expect(parseRetryAfter(null, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
  });

  it('steps up and stays at the last step, jitter at most 20 %', () => {
    expect([1, 2, 3, 4, 5, 6, 9].map((n) => backoffDelay(n, undefined, () => 0))).toEqual([
      5_000, 15_000, 30_000, 60_000, 120_000, 300_000, 300_000,
    ]);
    expect(backoffDelay(1, undefined, () => 0.999)).toBeLessThanOrEqual(6_000);
  });
});

describe('subscription resource and notification ids', () => {
  it('builds the documented bulk filter', () => {
    expect(presenceResource([ID, '66825e03-7ef5-42da-9069-724602c31f6b'])).toBe(
      "/communications/presences?$filter=id in ('fa8bf3dc-eca7-46b7-bad1-db199b62afc3', '66825e03-7ef5-42da-9069-724602c31f6b')",
    );
  });

  it('reads the user from resourceData.id, else from @odata.id or the resource', () => {
    expect(notificationUserId({ resourceData: { id: ID.toUpperCase() } })).toBe(ID);
    expect(notificationUserId({ resourceData: { '@odata.id': `users/${ID}/presence` } })).toBe(ID);
    expect(notificationUserId({ resource: `communications/presences?$filter=id+in+('${ID}')` })).toBe(ID);
    expect(notificationUserId({ resourceData: { id: '{userId}' } })).toBeNull();
    expect(notificationUserId({})).toBeNull();
  });
});

describe('where a token may go', () => {
  it('https anywhere, plain http only to loopback', () => {
    expect(isSafeTokenUrl(new URL('https://graph.microsoft.com'))).toBe(true);
    expect(isSafeTokenUrl(new URL('http://127.0.0.1:9000'))).toBe(true);
    expect(isSafeTokenUrl(new URL('http://[::1]:9000'))).toBe(true);
    expect(isSafeTokenUrl(new URL('http://graph.microsoft.com'))).toBe(false);
    expect(isSafeTokenUrl(new URL('http://10.0.0.5'))).toBe(false);
  });

  it('the Graph client refuses a plain-http remote base URL', () => {
    const token = () => Promise.resolve('t');
    expect(() => new TeamsGraphClient({ baseUrl: 'http://graph.example.com', token })).toThrow(/https/);
    expect(() => new TeamsGraphClient({ baseUrl: 'https://graph.microsoft.us', token })).not.toThrow();
  });
});

describe('TeamsConnector options', () => {
  const base = {
    tenantId: 't',
    appToken: () => Promise.resolve('app-token'),
    clock: new FakeClock(),
    timers: false,
  };

  it('refuses subscriptions longer than Graph allows, and an http notification URL', () => {
    expect(() => new TeamsConnector({ ...base, subscriptionLifetimeMs: 61 * 60_000 })).toThrow(/60 minutes/);
    expect(
      () => new TeamsConnector({ ...base, notificationUrl: 'http://example.com/v1/inbound/teams' }),
    ).toThrow(/https/);
    expect(() => new TeamsConnector({ ...base, clientState: 'x'.repeat(129) })).toThrow(/128/);
    // The login URL is the app grant's (the OAuth layer's token source); serve refuses plain http to it.
    const env = parseEnv({
      MS_TENANT_ID: 't',
      MS_CLIENT_ID: 'c',
      MS_CLIENT_SECRET: 's',
      MS_LOGIN_URL: 'http://login.example.com',
    });
    expect(() => teamsConnectorFromEnv(env, { ...base })).toThrow(/https/);
  });

  it('checks clientState in constant time against its own', () => {
    const c = new TeamsConnector({ ...base, clientState: 'abc' });
    expect(c.verifyClientState('abc')).toBe(true);
    expect(c.verifyClientState('abd')).toBe(false);
    expect(c.verifyClientState('ab')).toBe(false);
    expect(c.verifyClientState(undefined)).toBe(false);
    expect(c.descriptor.platform).toBe('teams');
    expect(c.health()).toMatchObject({ state: 'ok', nextPollAt: null });
  });
});
