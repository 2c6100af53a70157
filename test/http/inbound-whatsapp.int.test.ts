import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { PresenceChange } from '../../src/aggregator/engine';
import { expectError, testApi, type TestApi } from '../helpers/http';

const SECRET = 'whatsapp-app-secret';
const fixture = readFileSync(
  join(__dirname, '../../connectors/whatsapp/fixtures/whatsapp-messages-text.json'),
  'utf8',
);
const sign = (body: string, secret = SECRET) =>
  `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** The documented example, re-stamped to `at` (unix seconds). */
const messageAt = (at: number) => fixture.replace('"1749416383"', `"${at}"`);
const readAt = (waId: string, at: number) =>
  JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '1',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '1', phone_number_id: '1' },
              statuses: [{ id: 'wamid.X', status: 'read', timestamp: String(at), recipient_id: waId }],
            },
          },
        ],
      },
    ],
  });

describe('WhatsApp inbound webhook', () => {
  let api: TestApi;
  const changes: PresenceChange[] = [];
  beforeEach(async () => {
    api = await testApi({ WHATSAPP_APP_SECRET: SECRET, WHATSAPP_VERIFY_TOKEN: 'verify-me' });
    api.svc.engine.putUser('sheena', {});
    api.svc.engine.linkAccount('sheena', {
      platform: 'whatsapp',
      workspaceId: '',
      externalId: '16505551234',
    });
    changes.length = 0;
    api.svc.engine.onChange((c) => changes.push(...c));
  });
  afterEach(() => api.close());

  const post = (body: string, signature: string | null = sign(body)) =>
    api.call({
      method: 'POST',
      url: '/v1/inbound/whatsapp',
      key: null,
      payload: body,
      headers: {
        'content-type': 'application/json',
        ...(signature === null ? {} : { 'x-hub-signature-256': signature }),
      },
    });

  it('answers the GET handshake with the challenge, and refuses a wrong token', async () => {
    const ok = await api.call({
      method: 'GET',
      key: null,
      url: '/v1/inbound/whatsapp?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=1158201444',
    });
    expect(ok.statusCode).toBe(200);
    expect(ok.body).toBe('1158201444');
    expectError(
      await api.call({
        method: 'GET',
        key: null,
        url: '/v1/inbound/whatsapp?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1',
      }),
      403,
      'forbidden',
    );
  });

  it('a signed message from a linked number makes the person online (inferred), then fades with time', async () => {
    const now = Math.floor(api.clock.now() / 1000);
    const res = await post(messageAt(now));
    expect(res.statusCode).toBe(200);
    expect(api.json(res)).toEqual({ received: true, applied: 1, ignored: 0 });
    const p = api.svc.engine.get('sheena')!;
    expect(p).toMatchObject({
      status: 'online',
      source: 'inferred',
      platforms: { whatsapp: { raw: { kind: 'message' } } },
    });
    expect(p.explain).toMatch(/^whatsapp saw a message \(inferred tier\)/);
    expect(changes.map((c) => [c.userId, c.current.status])).toEqual([['sheena', 'online']]);
    for (const [minutes, status] of [
      [3, 'idle'],
      [11, 'away'],
      [61, 'offline'],
    ] as const) {
      api.clock.set((now + minutes * 60) * 1000);
      expect(api.svc.engine.get('sheena')?.status).toBe(status);
    }
  });

  it('a read receipt counts at the time it was read; an older one never moves presence back', async () => {
    const now = Math.floor(api.clock.now() / 1000);
    await post(readAt('16505551234', now - 300)); // read five minutes ago: idle now
    expect(api.svc.engine.get('sheena')?.status).toBe('idle');
    await post(messageAt(now - 30));
    expect(api.svc.engine.get('sheena')?.status).toBe('online');
    const version = api.svc.engine.get('sheena')!.version;
    await post(readAt('16505551234', now - 600));
    expect(api.svc.engine.get('sheena')).toMatchObject({ status: 'online', version });
  });

  it('ignores numbers nobody linked, and delivery/sent statuses, without error', async () => {
    const res = await post(readAt('19998887777', Math.floor(api.clock.now() / 1000)));
    expect(api.json(res)).toEqual({ received: true, applied: 0, ignored: 1 });
    const sent = readAt('16505551234', Math.floor(api.clock.now() / 1000)).replace('"read"', '"delivered"');
    expect(api.json(await post(sent))).toEqual({ received: true, applied: 0, ignored: 0 });
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
  });

  it.each([
    ['no signature', (b: string) => post(b, null)],
    ['signed with another secret', (b: string) => post(b, sign(b, 'not-the-secret'))],
    ['tampered body', (b: string) => post(b.replace('16505551234', '16505551235'), sign(b))],
    ['malformed header', (b: string) => post(b, 'sha1=abc')],
  ])('%s → 401 and no state change', async (_why, send) => {
    const res = await send(messageAt(Math.floor(api.clock.now() / 1000)));
    expectError(res, 401, 'unauthorized');
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
    expect(changes).toEqual([]);
  });

  it('a signed body that is not a webhook → 400', async () => {
    expectError(await post('{"object":"page"}'), 400, 'invalid_request');
    expectError(await post('{"object":'), 400, 'invalid_request');
  });
});

describe('inbound routes without their secret', () => {
  it('say what is missing', async () => {
    const api = await testApi();
    const res = await api.call({ method: 'POST', url: '/v1/inbound/whatsapp', key: null, payload: {} });
    expectError(res, 404, 'not_found');
    expect(api.json(res).error.message).toMatch(/WHATSAPP_APP_SECRET/);
    expectError(
      await api.call({ method: 'POST', url: '/v1/inbound/myspace', key: null, payload: {} }),
      404,
      'not_found',
    );
    await api.close();
  });
});
