/**
 * `presence serve` with the LinkedIn credentials, as a real process: LinkedIn is identity only
 * (OpenID Connect; it has no presence API). The connector shows its identity role; a person
 * connects through the loopback fake LinkedIn OAuth server and is linked, and presence is never
 * set from it: no status, no platform entry, no history, no change webhook.
 */

import { FakeOAuthServer, PUBLIC_URL } from '../helpers/fake-oauth';
import { startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

describe('presence serve with LinkedIn configured', () => {
  let oauth: FakeOAuthServer;
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
    await oauth?.close();
  });

  it('shows the identity role, links a connected person, and never sets presence from it', async () => {
    oauth = await FakeOAuthServer.start({ flavor: 'linkedin', user: { id: 'li-sub-782bbtaQ' } });
    svc = await startServe({
      env: { ...oauth.env, PUBLIC_URL, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
    });
    const s = svc;
    expect(await s.connector('linkedin')).toMatchObject({
      enabled: true,
      role: 'identity',
      presence: 'none',
      capabilities: { identity: true },
      // Nobody has connected yet: not ok before a first success.
      health: 'pending',
      last_success_at: null,
    });
    const hooks = await webhookReceiver(s);
    try {
      expect((await s.api('PUT', '/v1/users/lee', {})).status).toBeLessThan(300);
      const start = await fetch(`${s.base}/v1/connect/linkedin?user_id=lee`, {
        headers: { authorization: `Bearer ${s.key}` },
        redirect: 'manual',
      });
      expect(start.status).toBe(302);
      const query = await oauth.authorize(start.headers.get('location')!);
      // The browser comes back to the callback (PUBLIC_URL stands in for this server's address).
      const back = await fetch(
        `${s.base}/v1/connect/linkedin/callback?${new URLSearchParams(query).toString()}`,
      );
      expect(back.status).toBe(200);
      expect(await back.json()).toMatchObject({
        platform: 'linkedin',
        user_id: 'lee',
        external_id: 'li-sub-782bbtaQ',
      });

      const user = await s.api('GET', '/v1/users/lee');
      expect(JSON.stringify(user.body)).toContain('li-sub-782bbtaQ');
      const presence = (await s.api('GET', '/v1/presence/lee')).body;
      expect(presence).toMatchObject({ status: 'offline', source: null, version: 0, reachable_via: [] });
      expect(presence.platforms.linkedin).toBeUndefined();
      expect((await s.api('GET', '/v1/presence/lee/history')).body.transitions).toEqual([]);

      const status = await until(async () => {
        const c = await s.connector('linkedin');
        return c.health === 'ok' ? c : null;
      }, 'the LinkedIn connector to count the connection');
      expect(typeof status.last_success_at).toBe('string');

      // Webhooks flow (another user's change arrives), and none of them is about lee's presence.
      expect((await s.api('POST', '/v1/heartbeats', { user_id: 'max', device_id: 'phone' })).status).toBe(
        204,
      );
      await hooks.presenceChanged('max', (c) => c.status === 'online', 'max online');
      expect(hooks.events().filter((e) => e.type === 'presence.changed' && e.data.user_id === 'lee')).toEqual(
        [],
      );
    } finally {
      await hooks.close();
    }
  });
});
