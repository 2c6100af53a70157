/**
 * `presence serve` with the Zoom credentials, as a real process: the shipped bin fetches a
 * Server-to-Server token from the loopback fake Zoom OAuth server, polls the fake Zoom API, and
 * takes signed `user.presence_status_updated` webhooks; both move a linked user's presence,
 * read over HTTP, with a signed change webhook.
 */

import { createHmac } from 'node:crypto';

import { FakeOAuthServer } from '../helpers/fake-oauth';
import { FakeZoomApi } from '../helpers/fake-zoom';
import { linkUser, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

const SECRET_TOKEN = 'zoom-e2e-webhook-secret-token';
const ZOOM_ID = 'KDcuGIm1QgePTO8WbOqwIQ';

/**
 * Zoom's webhook signature: x-zm-signature = v0=HMAC-SHA256(secret token, "v0:{timestamp}:{body}")
 * in hex, with x-zm-request-timestamp (https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events).
 */
function zoomHeaders(body: string): Record<string, string> {
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = createHmac('sha256', SECRET_TOKEN).update(`v0:${ts}:${body}`).digest('hex');
  return { 'content-type': 'application/json', 'x-zm-request-timestamp': ts, 'x-zm-signature': `v0=${sig}` };
}

describe('presence serve with the Zoom connector configured', () => {
  let oauth: FakeOAuthServer;
  let zoom: FakeZoomApi;
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
    await zoom?.close();
    await oauth?.close();
  });

  it('polls presence_status with the S2S token, and applies a signed presence webhook', async () => {
    oauth = await FakeOAuthServer.start({ flavor: 'zoom' });
    zoom = new FakeZoomApi(
      (t) => oauth.issued.access.includes(t),
      () => Date.now(),
    );
    await zoom.listen();
    zoom.statuses.set(ZOOM_ID, 'Available');
    svc = await startServe({
      env: {
        ...oauth.env,
        ZOOM_ACCOUNT_ID: 'acct-e2e',
        ZOOM_API_URL: zoom.url,
        ZOOM_POLL_INTERVAL: '2s',
        ZOOM_WEBHOOK_SECRET_TOKEN: SECRET_TOKEN,
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      },
    });
    const s = svc;
    const hooks = await webhookReceiver(s);
    try {
      await linkUser(s, 'zed', { platform: 'zoom', external_id: ZOOM_ID });
      // Polled: Available → online.
      await hooks.presenceChanged('zed', (c) => c.status === 'online', 'zed online from a poll');
      zoom.statuses.set(ZOOM_ID, 'In_A_Zoom_Meeting');
      await hooks.presenceChanged(
        'zed',
        (c) => c.status === 'busy' && c.activity === 'in_meeting',
        'zed in a meeting from a poll',
      );
      expect(zoom.calls.some((c) => c.auth === `Bearer ${oauth.issued.access[0]}`)).toBe(true);
      expect(oauth.callsTo('token', 'account_credentials').length).toBeGreaterThan(0);

      // Pushed: a signed user.presence_status_updated, shaped as Zoom documents it.
      zoom.statuses.set(ZOOM_ID, 'Do_Not_Disturb');
      const body = JSON.stringify({
        event: 'user.presence_status_updated',
        event_ts: Date.now(),
        payload: {
          account_id: 'acct-e2e',
          object: {
            id: ZOOM_ID,
            email: 'zed@example.com',
            presence_status: 'Do_Not_Disturb',
            'date-time': new Date().toISOString(),
          },
        },
      });
      const res = await fetch(`${s.base}/v1/inbound/zoom`, {
        method: 'POST',
        headers: zoomHeaders(body),
        body,
      });
      expect(res.status).toBe(200);
      const presence = await until(async () => {
        const r = await s.api('GET', '/v1/presence/zed');
        return r.body?.activity === 'do_not_disturb' ? r.body : null;
      }, 'zed do not disturb');
      expect(presence).toMatchObject({ status: 'busy', platforms: { zoom: { raw: 'Do_Not_Disturb' } } });
      await hooks.presenceChanged('zed', (c) => c.activity === 'do_not_disturb', 'zed dnd from the push');
      const status = await s.connector('zoom');
      expect(status).toMatchObject({ enabled: true, health: 'ok' });
      expect(typeof status.last_success_at).toBe('string');
    } finally {
      await hooks.close();
    }
  });
});
