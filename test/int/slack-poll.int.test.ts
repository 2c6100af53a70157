/**
 * Slack end to end: the real WebClient polls the fake Slack Web API, and a linked user's
 * aggregate presence moves in the running service (read over HTTP). The "change webhook goes
 * out" part is checked on a sink added to `engine.changes` for now; the webhook outbox hooks in at the same place.
 */

import { slackHarness, TEAM, TOKEN, type SlackHarness } from '../helpers/fake-slack';
import { webhookTap } from '../helpers/webhook-tap';

const MIN = 60_000;

describe('Slack connector: polling end to end', () => {
  let h: SlackHarness;

  beforeEach(async () => {
    h = await slackHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it('moves a linked user online → away → DND busy → online, emitting each change', async () => {
    const tap = await webhookTap(h.svc, h.clock);
    h.fake.user('U0ALICE', { presence: 'active' });
    await h.link('alice', 'U0ALICE');

    await h.connector.pollDue();
    let p = await h.presence('alice');
    expect(p).toMatchObject({ status: 'online', source: 'app', reachable_via: ['slack'] });
    expect(p.platforms.slack).toMatchObject({ status: 'online', raw: 'active' });
    expect(h.changes.at(-1)).toMatchObject({ userId: 'alice', changed: ['status'], cause: 'slack' });
    expect(h.changes.at(-1)!.current.status).toBe('online');

    // The real client speaks the documented protocol: form-encoded, Bearer token.
    const call = h.fake.callsOf('users.getPresence')[0]!;
    expect(call.token).toBe(TOKEN);
    expect(call.contentType).toMatch(/^application\/x-www-form-urlencoded/);
    expect(call.params.user).toBe('U0ALICE');
    expect(h.fake.callsOf('dnd.teamInfo')[0]!.params.users).toBe('U0ALICE');
    expect(h.fake.callsOf('users.profile.get')[0]!.params.user).toBe('U0ALICE');

    h.fake.user('U0ALICE', { presence: 'away' });
    h.clock.advance(MIN);
    await h.connector.pollDue();
    p = await h.presence('alice');
    expect(p).toMatchObject({ status: 'away', source: 'app' });
    expect(p.platforms.slack.raw).toBe('away');

    // DND inside its window: busy + do_not_disturb in the manual tier; the custom status rides along.
    const nowS = Math.floor(h.clock.now() / 1000);
    h.fake.user('U0ALICE', {
      presence: 'active',
      dnd: { dnd_enabled: true, next_dnd_start_ts: nowS, next_dnd_end_ts: nowS + 90 },
      profile: { status_text: 'Heads down', status_emoji: ':headphones:', status_expiration: 0 },
    });
    h.clock.advance(MIN);
    await h.connector.pollDue();
    p = await h.presence('alice');
    expect(p).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
      custom_status: { text: 'Heads down', emoji: ':headphones:', expires_at: null },
    });
    expect(p.platforms.slack.raw).toEqual({ presence: 'active', dnd_enabled: true });
    const last = h.changes.at(-1)!;
    expect(last.changed).toEqual(expect.arrayContaining(['status', 'activity', 'custom_status']));

    // The DND window ends (30 s after that poll, 30 s before the next): re-mapped at its end
    // from what is known, without another call.
    const calls = h.fake.calls.length;
    expect(h.connector.nextDueAt()).toBe((nowS + 90) * 1000);
    h.clock.set((nowS + 90) * 1000);
    await h.connector.pollDue();
    p = await h.presence('alice');
    expect(p).toMatchObject({ status: 'online', activity: null, source: 'app' });
    expect(h.fake.calls.length).toBe(calls);
    // Each change went out as a signed presence.changed webhook, in order.
    await tap.until(() => tap.statusesOf('alice').length === 4);
    expect(tap.statusesOf('alice')).toEqual(['online', 'away', 'busy', 'online']);
    await tap.close();
  });

  it('reports with a TTL of three poll intervals, so a stopped connector goes stale', async () => {
    h.fake.user('U0BOB');
    await h.link('bob', 'U0BOB');
    await h.connector.pollDue();
    const p = await h.presence('bob');
    expect(Date.parse(p.expires_at) - Date.parse(p.observed_at)).toBe(3 * MIN);
    expect(h.connector.ttlMs(TEAM)).toBe(3 * MIN);
  });

  it('shows its health in GET /v1/connectors', async () => {
    h.fake.user('U0CAROL');
    await h.link('carol', 'U0CAROL');
    await h.connector.pollDue();
    const res = await h.svc.app.inject({
      method: 'GET',
      url: '/v1/connectors',
      headers: { authorization: `Bearer ${h.key}` },
    });
    const slack = JSON.parse(res.body).connectors.find((c: any) => c.platform === 'slack');
    expect(slack).toMatchObject({ enabled: true, mode: 'poll', health: 'ok', last_error: null });
    expect(slack.last_success_at).toBe(new Date(h.clock.now()).toISOString());
    expect(Date.parse(slack.next_poll_at)).toBe(h.clock.now() + MIN);
  });

  it('polls only linked accounts, picks up new links and forgets unlinked ones', async () => {
    h.fake.user('U0DAN');
    h.fake.user('U0ERIN');
    await h.link('dan', 'U0DAN');
    await h.connector.pollDue();
    expect(h.fake.callsOf('users.getPresence').map((c) => c.params.user)).toEqual(['U0DAN']);

    await h.link('erin', 'U0ERIN');
    h.clock.advance(MIN);
    await h.connector.pollDue();
    h.clock.advance(MIN);
    await h.connector.pollDue();
    expect(new Set(h.fake.callsOf('users.getPresence').map((c) => c.params.user))).toEqual(
      new Set(['U0DAN', 'U0ERIN']),
    );

    const del = await h.svc.app.inject({
      method: 'DELETE',
      url: `/v1/users/dan/accounts/slack/U0DAN?workspace_id=${TEAM}`,
      headers: { authorization: `Bearer ${h.key}` },
    });
    expect(del.statusCode).toBeLessThan(300);
    const before = h.fake.callsOf('users.getPresence').filter((c) => c.params.user === 'U0DAN').length;
    for (let i = 0; i < 5; i++) {
      h.clock.advance(MIN);
      await h.connector.pollDue();
    }
    expect(h.fake.callsOf('users.getPresence').filter((c) => c.params.user === 'U0DAN').length).toBe(before);
  });

  it('an unknown presence value is never guessed into a status', async () => {
    h.fake.user('U0FRED', { presence: 'sleeping' });
    await h.link('fred', 'U0FRED');
    await h.connector.pollDue();
    const p = await h.presence('fred');
    expect(p).toMatchObject({ status: 'offline', source: null });
    expect(p.platforms.slack).toBeUndefined();
  });
});
