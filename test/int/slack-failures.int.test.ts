/**
 * Slack failures, with the real WebClient against the fake: a 429's Retry-After is honoured (no
 * call before it has passed), 5xx and network failures back off exponentially and recover, and a
 * refused token takes the connector down, calls `onAuthError` and pauses polling. `stop()` leaves
 * no timer behind.
 */

import { SlackConnector, type SlackAuthErrorInfo } from '../../connectors/slack/connector';
import { slackHarness, TEAM, type SlackHarness } from '../helpers/fake-slack';
import { sleep, waitUntil } from '../helpers/wait';

const SEC = 1000;
const MIN = 60_000;

describe('Slack connector: failures', () => {
  let h: SlackHarness;
  const authErrors: SlackAuthErrorInfo[] = [];

  beforeEach(async () => {
    authErrors.length = 0;
    h = await slackHarness({
      onAuthError: (e) => {
        authErrors.push(e);
      },
      profileIntervalMs: 0,
    });
    h.fake.user('U0ALICE');
    await h.link('alice', 'U0ALICE');
  });
  afterEach(async () => {
    await h.close();
  });

  const presenceCalls = (): number => h.fake.count('users.getPresence');

  /** Polls every second of fake time for `ms`. */
  async function tickFor(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += SEC) {
      h.clock.advance(SEC);
      await h.connector.pollDue();
    }
  }

  it('honours Retry-After on a 429: no call before it has passed, then carries on', async () => {
    h.fake.fail('users.getPresence', { kind: 'rate_limited', retryAfterSec: 30 });
    await h.connector.pollDue();
    expect(presenceCalls()).toBe(1);
    expect(h.fake.callsOf('users.getPresence')[0]!.outcome).toBe(429);
    const health = h.connector.health();
    expect(health.state).toBe('degraded');
    expect(health.lastError).toMatch(/users\.getPresence .*rate limited; waiting 30 s/);
    expect(health.nextPollAt).toBe(h.clock.now() + 30 * SEC);
    // Not even a resume (meant for a refused token) shortens a Retry-After.
    h.connector.resume();

    await tickFor(29 * SEC);
    expect(presenceCalls()).toBe(1);
    h.clock.advance(SEC);
    await h.connector.pollDue();
    expect(presenceCalls()).toBe(2);
    expect((await h.presence('alice')).status).toBe('online');
    expect(h.connector.health().state).toBe('ok');
  });

  it('a 429 on one method does not hold the others', async () => {
    h.fake.fail('dnd.teamInfo', { kind: 'rate_limited', retryAfterSec: 120 });
    await h.connector.pollDue();
    expect(presenceCalls()).toBe(1);
    expect((await h.presence('alice')).status).toBe('online');
    await tickFor(MIN);
    expect(h.fake.count('dnd.teamInfo')).toBe(1);
    expect(presenceCalls()).toBe(2);
  });

  it('backs off exponentially on 5xx and recovers', async () => {
    h.fake.fail('users.getPresence', { kind: 'status', status: 503 }, 3);
    const t0 = h.clock.now();
    await h.connector.pollDue();
    expect(h.connector.health()).toMatchObject({ state: 'degraded' });
    expect(h.connector.health().lastError).toMatch(/users\.getPresence: HTTP 503 .*retrying in 5 s/);
    await tickFor(40 * SEC);
    // 5 s, then 10 s, then 20 s after each failure: calls at 0, 5, 15 and 35 s.
    expect(h.fake.callsOf('users.getPresence').map((c) => c.at - t0)).toEqual(
      [0, 5, 15, 35].map((s) => s * SEC),
    );
    expect(h.fake.callsOf('users.getPresence').map((c) => c.outcome)).toEqual([503, 503, 503, 'ok']);
    expect(h.connector.health().state).toBe('ok');
    expect(h.connector.health().lastSuccessAt).toBe(t0 + 35 * SEC);
    expect((await h.presence('alice')).status).toBe('online');
  });

  it('caps the backoff and goes down when nothing has worked for three intervals', async () => {
    h.fake.fail('users.getPresence', { kind: 'status', status: 500 }, 50);
    await h.connector.pollDue();
    await tickFor(4 * MIN);
    const at = h.fake.callsOf('users.getPresence').map((c) => c.at);
    const steps = at.slice(1).map((t, i) => t - at[i]!);
    expect(Math.max(...steps)).toBeLessThanOrEqual(5 * MIN);
    expect(steps.slice(0, 5)).toEqual([5, 10, 20, 40, 80].map((s) => s * SEC));
    expect(h.connector.health().state).toBe('down');
  });

  it('backs off when Slack cannot be reached, without echoing the URL', async () => {
    await h.fake.close();
    await h.connector.pollDue();
    const health = h.connector.health();
    expect(health.state).toBe('degraded');
    // ECONNREFUSED in production; under jest the SDK loses the cause across realms ("Error").
    expect(health.lastError).toMatch(
      /^users\.getPresence: network error \(\w+\) \(T0TEST\); retrying in 5 s$/,
    );
    expect(health.lastError).not.toContain('127.0.0.1');
  });

  it.each(['token_revoked', 'invalid_auth', 'account_inactive'])(
    'a refused token (%s) takes it down, calls onAuthError once and pauses polling',
    async (error) => {
      await h.connector.pollDue();
      expect((await h.presence('alice')).status).toBe('online');
      h.fake.refused.set('xoxb-test-token', error);
      h.clock.advance(MIN);
      await h.connector.pollDue();
      const health = h.connector.health();
      expect(health.state).toBe('down');
      expect(health.lastError).toBe(
        `${error}: Slack refused the token for ${TEAM}; polling paused until the app is reauthorized`,
      );
      expect(health.lastError).not.toContain('xoxb');
      expect(authErrors).toEqual([{ workspaceId: TEAM, error }]);

      const calls = h.fake.calls.length;
      await tickFor(10 * MIN);
      expect(h.fake.calls.length).toBe(calls);
      expect(authErrors).toHaveLength(1);

      // Reauthorized: polling resumes.
      h.fake.refused.delete('xoxb-test-token');
      h.connector.resume(TEAM);
      await h.connector.pollDue();
      expect(h.fake.calls.length).toBeGreaterThan(calls);
      expect(h.connector.health().state).toBe('ok');
    },
  );

  it('tries a refused token again after authRetryMs, and says so only once', async () => {
    h.fake.refused.set('xoxb-test-token', 'token_revoked');
    await h.connector.pollDue();
    const calls = h.fake.calls.length;
    await tickFor(59 * MIN);
    expect(h.fake.calls.length).toBe(calls);
    await tickFor(MIN + SEC);
    expect(h.fake.calls.length).toBeGreaterThan(calls);
    expect(authErrors).toHaveLength(1);
    expect(h.connector.health().state).toBe('down');
  });

  it('skips a user Slack does not know without backing off the others', async () => {
    h.fake.users.delete('U0ALICE');
    h.fake.user('U0BOB');
    await h.link('bob', 'U0BOB');
    await h.connector.pollDue();
    await tickFor(MIN);
    expect((await h.presence('bob')).status).toBe('online');
    expect(h.connector.health().state).toBe('ok');
  });
});

describe('Slack connector: timers', () => {
  it('start() arms a real timer that polls, and stop() leaves none behind', async () => {
    const h = await slackHarness({ timers: true, profileIntervalMs: 0 });
    try {
      h.fake.user('U0TIMER');
      await h.link('timer', 'U0TIMER');
      // The first wake-up is at most a second away; the FakeClock says the user is due now.
      await waitUntil(() => h.fake.count('users.getPresence') > 0, 'the first poll');
      expect(h.fake.count('users.getPresence')).toBe(1);
      // Due again a minute later on the clock: the timer wakes within a second and polls.
      h.clock.advance(MIN);
      await waitUntil(() => h.fake.count('users.getPresence') > 1, 'the second poll');
      expect(h.fake.count('users.getPresence')).toBe(2);

      await h.connector.stop();
      expect(h.connector.health().state).toBe('off');
      const calls = h.fake.calls.length;
      h.clock.advance(10 * MIN);
      await sleep(1300);
      expect(h.fake.calls.length).toBe(calls);
    } finally {
      await h.close();
    }
  });

  it('needs a token or tokenFor', () => {
    expect(() => new SlackConnector({})).toThrow(/token/);
  });
});
