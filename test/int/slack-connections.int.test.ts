/**
 * Slack through the connection layer: a workspace connected with OAuth is polled with its own
 * token from the vault; when Slack refuses that token, the connection becomes reauth_required and
 * a connection.reauth_required webhook goes out.
 */
import { slackTokensFrom } from '../../connectors/slack/connections';
import { SlackConnector } from '../../connectors/slack/connector';
import { FakeOAuthServer, PUBLIC_URL } from '../helpers/fake-oauth';
import { FakeSlack } from '../helpers/fake-slack';
import { testApi } from '../helpers/http';
import { sleep } from '../helpers/wait';
import { webhookTap } from '../helpers/webhook-tap';

describe('Slack tokens from OAuth connections', () => {
  it('polls with the connected token; a refused token → reauth_required and its webhook', async () => {
    const oauth = await FakeOAuthServer.start({
      flavor: 'slack',
      user: { id: 'U0ALICE', team: 'T0WS' },
      accessTtlSec: null,
    });
    const api = await testApi({ ...oauth.env, PUBLIC_URL, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    const slackApi = await FakeSlack.start(api.clock, {});
    const tap = await webhookTap(api.svc, api.clock);
    try {
      await api.svc.engine.putUser('alice', {});
      const connections = api.svc.connections!;
      const start = await connections.startAuthorize('slack', 'alice');
      const conn = await connections.completeCallback('slack', await oauth.authorize(start.url));
      expect(conn).toMatchObject({ workspace_id: 'T0WS', external_id: 'U0ALICE', health: 'ok' });
      const token = oauth.issued.access[0]!;
      slackApi.tokens.set(token, 'T0WS');
      slackApi.user('U0ALICE', { presence: 'active' });

      const connector = new SlackConnector({
        ...slackTokensFrom(connections),
        apiUrl: slackApi.apiUrl,
        clock: api.clock,
        timers: false,
      });
      await api.svc.host.start(connector);
      await connector.pollDue();
      expect(api.svc.engine.get('alice')).toMatchObject({
        status: 'online',
        platforms: { slack: { raw: 'active' } },
      });
      expect(slackApi.calls.every((c) => c.token === token)).toBe(true);

      slackApi.refused.set(token, 'token_revoked');
      api.clock.advance(60_000);
      await connector.pollDue();
      // The connector records the refusal without holding up its poll: wait for the row.
      for (let i = 0; (await connections.get(conn.id)).health !== 'reauth_required'; i++) {
        if (i > 3000) throw new Error('the connection was never marked reauth_required');
        await sleep(20);
      }
      expect(connector.health().state).toBe('down');
      const events = await tap.until((e) => e.some((x) => x.type === 'connection.reauth_required'));
      expect(events.find((x) => x.type === 'connection.reauth_required')!.data).toMatchObject({
        platform: 'slack',
        user_id: 'alice',
      });
    } finally {
      await tap.close();
      await api.close();
      await slackApi.close();
      await oauth.close();
    }
  });
});
