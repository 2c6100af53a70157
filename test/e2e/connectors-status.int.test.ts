/**
 * What `GET /v1/connectors` says of a running `presence serve`, as a real process: a platform
 * running on pushes alone (WhatsApp with its app secret; Zoom with only its webhook secret
 * token; Slack with only its signing secret) is enabled in push mode, not off; nothing is `ok`
 * before its first success; a verified push is that success.
 */

import { createHmac } from 'node:crypto';

import { startServe, until, type ServeProcess } from './serve-process';

const WHATSAPP_SECRET = 'whatsapp-status-app-secret';

describe('GET /v1/connectors on presence serve', () => {
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
  });

  it('shows inbound-only platforms enabled in push mode, pending until their first push', async () => {
    svc = await startServe({
      env: {
        WHATSAPP_APP_SECRET: WHATSAPP_SECRET,
        ZOOM_WEBHOOK_SECRET_TOKEN: 'zoom-status-secret-token',
        SLACK_SIGNING_SECRET: 'slack-status-signing-secret',
      },
    });
    const s = svc;
    for (const platform of ['whatsapp', 'zoom', 'slack'])
      expect(await s.connector(platform)).toMatchObject({
        enabled: true,
        mode: 'push',
        role: 'presence',
        health: 'pending',
        last_success_at: null,
      });
    // Nothing configured: off, naming what to set (every alternative).
    expect(await s.connector('teams')).toMatchObject({ enabled: false, health: 'off' });
    expect((await s.connector('discord')).last_error).toMatch(/DISCORD_BOT_TOKEN/);
    const zoomOff = await startServe({});
    try {
      expect((await zoomOff.connector('zoom')).last_error).toMatch(
        /ZOOM_ACCOUNT_ID, ZOOM_CLIENT_ID, ZOOM_CLIENT_SECRET; or ZOOM_WEBHOOK_SECRET_TOKEN/,
      );
      expect(await zoomOff.connector('linkedin')).toMatchObject({ enabled: false, role: 'identity' });
    } finally {
      await zoomOff.stop();
    }

    // A push signed with the wrong secret is named as the last error, and is no success.
    const body = JSON.stringify({ object: 'whatsapp_business_account', entry: [] });
    const push = (secret: string) =>
      fetch(`${s.base}/v1/inbound/whatsapp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          // https://developers.facebook.com/docs/graph-api/webhooks/getting-started
          'x-hub-signature-256': `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`,
        },
        body,
      });
    expect((await push('wrong-secret')).status).toBe(401);
    const refused = await s.connector('whatsapp');
    expect(refused).toMatchObject({ health: 'pending', last_success_at: null });
    expect(refused.last_error).toMatch(/signature did not verify/);

    expect((await push(WHATSAPP_SECRET)).status).toBe(200);
    const ok = await until(async () => {
      const c = await s.connector('whatsapp');
      return c.health === 'ok' ? c : null;
    }, 'whatsapp to be ok after a verified push');
    expect(typeof ok.last_success_at).toBe('string');
    expect(await s.connector('zoom')).toMatchObject({ health: 'pending' });
  });
});
