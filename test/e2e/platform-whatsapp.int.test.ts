/**
 * `presence serve` with WHATSAPP_APP_SECRET, as a real process: a signed WhatsApp Cloud API
 * message webhook from a linked number makes that person online (inferred), read over HTTP,
 * with a signed change webhook; a badly signed one changes nothing.
 */

import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT, linkUser, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

const APP_SECRET = 'whatsapp-e2e-app-secret';
const WA_ID = '16505551234';
const fixture = readFileSync(join(ROOT, 'connectors/whatsapp/fixtures/whatsapp-messages-text.json'), 'utf8');

/**
 * Meta's signature: X-Hub-Signature-256: sha256=HMAC-SHA256(app secret, raw body) in hex
 * (https://developers.facebook.com/docs/graph-api/webhooks/getting-started).
 */
const sign = (body: string, secret = APP_SECRET): string =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

describe('presence serve with WhatsApp configured (inbound only)', () => {
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
  });

  it('takes a signed message webhook from a linked number as inferred presence', async () => {
    svc = await startServe({
      env: { WHATSAPP_APP_SECRET: APP_SECRET, WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
    });
    const s = svc;
    const hooks = await webhookReceiver(s);
    try {
      await linkUser(s, 'sheena', { platform: 'whatsapp', external_id: WA_ID });
      const body = fixture.replace('"1749416383"', `"${Math.floor(Date.now() / 1000)}"`);
      const post = (signature: string) =>
        fetch(`${s.base}/v1/inbound/whatsapp`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-hub-signature-256': signature },
          body,
        });
      expect((await post(sign(body, 'not-the-secret'))).status).toBe(401);
      expect((await s.api('GET', '/v1/presence/sheena')).body).toMatchObject({
        status: 'offline',
        version: 0,
      });

      expect((await post(sign(body))).status).toBe(200);
      const presence = await until(async () => {
        const r = await s.api('GET', '/v1/presence/sheena');
        return r.body?.status === 'online' ? r.body : null;
      }, 'sheena online');
      expect(presence).toMatchObject({
        source: 'inferred',
        platforms: { whatsapp: { raw: { kind: 'message' } } },
      });
      const event = await hooks.presenceChanged('sheena', (c) => c.status === 'online', 'sheena online');
      expect(event.data.current.source).toBe('inferred');
    } finally {
      await hooks.close();
    }
  });
});
