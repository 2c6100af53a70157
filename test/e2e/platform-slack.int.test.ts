/**
 * `presence serve` with SLACK_BOT_TOKEN, as a real process: the real `@slack/web-api` client
 * inside the shipped bin polls the loopback fake Slack Web API, and a change of a linked user's
 * presence on Slack moves their presence, read over HTTP, with a signed webhook.
 */

import { systemClock } from '../../src/core/clock';
import { FakeSlack, TEAM, TOKEN } from '../helpers/fake-slack';
import { linkUser, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

describe('presence serve with the Slack connector configured', () => {
  let fake: FakeSlack;
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
    await fake?.close();
  });

  it('polls users.getPresence for a linked user and follows a change on Slack', async () => {
    fake = await FakeSlack.start(systemClock);
    fake.user('U0ALICE', { presence: 'away' });
    svc = await startServe({
      env: {
        SLACK_BOT_TOKEN: TOKEN,
        SLACK_API_URL: fake.apiUrl,
        SLACK_POLL_INTERVAL: '2s',
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      },
    });
    const s = svc;
    expect(await s.connector('slack')).toMatchObject({ enabled: true, mode: 'poll' });
    const hooks = await webhookReceiver(s);
    try {
      await linkUser(s, 'alice', { platform: 'slack', external_id: 'U0ALICE', workspace_id: TEAM });
      await until(
        async () => (await s.api('GET', '/v1/presence/alice')).body?.status === 'away',
        'alice away',
      );
      await hooks.presenceChanged('alice', (c) => c.status === 'away', 'alice away');

      fake.user('U0ALICE', { presence: 'active' });
      const presence = await until(async () => {
        const r = await s.api('GET', '/v1/presence/alice');
        return r.body?.status === 'online' ? r.body : null;
      }, 'alice online');
      expect(presence).toMatchObject({ source: 'app', platforms: { slack: { raw: 'active' } } });
      const event = await hooks.presenceChanged('alice', (c) => c.status === 'online', 'alice online');
      expect(event.data.previous.status).toBe('away');
      expect(fake.callsOf('users.getPresence').every((c) => c.token === TOKEN)).toBe(true);
      const status = await s.connector('slack');
      expect(status).toMatchObject({ health: 'ok', last_error: null });
      expect(typeof status.last_success_at).toBe('string');
    } finally {
      await hooks.close();
    }
  });
});
