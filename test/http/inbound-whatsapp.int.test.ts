import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import type { PresenceChange } from '../../src/core/changes';
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

/** One `messages` change carrying `value`, in the documented webhook envelope. */
const hook = (value: object) =>
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
              ...value,
            },
          },
        ],
      },
    ],
  });
/** A read receipt from `waId` at `at` (unix seconds). */
const readAt = (waId: string, at: number) =>
  hook({ statuses: [{ id: 'wamid.X', status: 'read', timestamp: String(at), recipient_id: waId }] });

describe('WhatsApp inbound webhook', () => {
  let api: TestApi;
  const changes: PresenceChange[] = [];
  beforeEach(async () => {
    api = await testApi({ WHATSAPP_APP_SECRET: SECRET, WHATSAPP_VERIFY_TOKEN: 'verify-me' });
    await api.svc.engine.putUser('sheena', {});
    await api.svc.engine.linkAccount('sheena', {
      platform: 'whatsapp',
      workspaceId: '',
      externalId: '16505551234',
    });
    changes.length = 0;
    api.svc.engine.changes.add({ committed: (c) => changes.push(...c) });
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
    expect(api.json(res)).toEqual({ received: true, applied: 1, ignored: 0, duplicates: 0, malformed: 0 });
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
    expect(api.json(res)).toEqual({ received: true, applied: 0, ignored: 1, duplicates: 0, malformed: 0 });
    const sent = readAt('16505551234', Math.floor(api.clock.now() / 1000)).replace('"read"', '"delivered"');
    expect(api.json(await post(sent))).toEqual({
      received: true,
      applied: 0,
      ignored: 0,
      duplicates: 0,
      malformed: 0,
    });
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
  const nowS = () => String(Math.floor(api.clock.now() / 1000));

  it('a read receipt in a group credits the participant who read, not the group', async () => {
    await api.svc.engine.putUser('group', {});
    await api.svc.engine.linkAccount('group', {
      platform: 'whatsapp',
      workspaceId: '',
      externalId: '120363021234567890',
    });
    const res = await post(
      hook({
        statuses: [
          {
            id: 'wamid.G1',
            status: 'read',
            timestamp: nowS(),
            recipient_id: '120363021234567890',
            recipient_type: 'group',
            recipient_participant_id: '16505551234',
          },
        ],
      }),
    );
    expect(api.json(res)).toMatchObject({ applied: 1, ignored: 0 });
    expect(api.svc.engine.get('sheena')).toMatchObject({ status: 'online', source: 'inferred' });
    expect(api.svc.engine.get('group')?.version).toBe(0);
  });

  it('a played voice message is activity, like a read receipt', async () => {
    const res = await post(
      hook({
        statuses: [{ id: 'wamid.V1', status: 'played', timestamp: nowS(), recipient_id: '16505551234' }],
      }),
    );
    expect(api.json(res)).toMatchObject({ applied: 1 });
    expect(api.svc.engine.get('sheena')).toMatchObject({ status: 'online', source: 'inferred' });
  });

  it('a sender known only by a business-scoped user id matches the account linked under it', async () => {
    await api.svc.engine.putUser('uma', {});
    await api.svc.engine.linkAccount('uma', {
      platform: 'whatsapp',
      workspaceId: '',
      externalId: 'US.13491208655302741918',
    });
    const res = await post(
      hook({
        contacts: [{ profile: { name: 'Uma', username: 'uma' }, user_id: 'US.13491208655302741918' }],
        messages: [
          {
            from_user_id: 'US.13491208655302741918',
            id: 'wamid.B1',
            timestamp: nowS(),
            type: 'text',
            text: { body: 'hi' },
          },
        ],
      }),
    );
    expect(api.json(res)).toMatchObject({ applied: 1, ignored: 0 });
    expect(api.svc.engine.get('uma')).toMatchObject({ status: 'online', source: 'inferred' });
  });

  it('a replayed signed delivery is acknowledged and not applied again', async () => {
    const now = Math.floor(api.clock.now() / 1000);
    const body = messageAt(now);
    expect(api.json(await post(body))).toMatchObject({ applied: 1 });
    expect(api.svc.engine.get('sheena')).toMatchObject({ status: 'online', version: 1 });
    // Fifteen minutes on the person has faded to away; the same signed bytes come again.
    api.clock.advance(15 * 60_000);
    expect(api.svc.engine.get('sheena')?.status).toBe('away');
    const versions = api.svc.engine.get('sheena')!.version;
    const again = await post(body);
    expect(again.statusCode).toBe(200);
    expect(api.json(again)).toEqual({ received: true, applied: 0, ignored: 0, duplicates: 1, malformed: 0 });
    expect(api.svc.engine.get('sheena')).toMatchObject({ status: 'away', version: versions });
  });

  it.each<[string, () => string]>([
    ['entry is an object', () => JSON.stringify({ object: 'whatsapp_business_account', entry: {} })],
    ['entry is missing', () => JSON.stringify({ object: 'whatsapp_business_account' })],
    [
      'changes is a string',
      () => JSON.stringify({ object: 'whatsapp_business_account', entry: [{ id: '1', changes: 'x' }] }),
    ],
    [
      'value is null',
      () =>
        JSON.stringify({
          object: 'whatsapp_business_account',
          entry: [{ id: '1', changes: [{ field: 'messages', value: null }] }],
        }),
    ],
    ['messages is a number', () => hook({ messages: 5 })],
    ['statuses is an object', () => hook({ statuses: { id: 'x' } })],
    ['the body is an array', () => JSON.stringify([])],
  ])('signed, %s → 400, no state change', async (_why, body) => {
    expectError(await post(body()), 400, 'invalid_request');
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
    expect(changes).toEqual([]);
  });

  it('signed items of the wrong shape are ignored one by one, and counted', async () => {
    const res = await post(
      hook({
        messages: [
          'a string',
          null,
          { from: 16505551234, id: 'wamid.1', timestamp: nowS() },
          { from: '16505551234', id: 'wamid.2', timestamp: Number(nowS()) },
          { from: '16505551234', timestamp: nowS() },
        ],
        statuses: [
          { id: 'wamid.3', status: 'read', timestamp: nowS(), recipient_id: ['16505551234'] },
          { id: 'wamid.4', status: 7, timestamp: nowS(), recipient_id: '16505551234' },
          {
            id: 'wamid.5',
            status: 'read',
            timestamp: nowS(),
            recipient_type: 'group',
            recipient_participant_id: {},
          },
        ],
      }),
    );
    expect(res.statusCode).toBe(200);
    expect(api.json(res)).toEqual({ received: true, applied: 0, ignored: 0, duplicates: 0, malformed: 8 });
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
    expect(changes).toEqual([]);
  });

  it('signed, other webhook fields and unknown statuses → 200 and ignored', async () => {
    const other = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [
        {
          id: '1',
          changes: [{ field: 'account_update', value: { messaging_product: 'whatsapp', messages: 'x' } }],
        },
      ],
    });
    expect(api.json(await post(other))).toMatchObject({ applied: 0, malformed: 0 });
    const odd = hook({
      statuses: [{ id: 'wamid.6', status: 'constructor', timestamp: nowS(), recipient_id: '16505551234' }],
    });
    expect(api.json(await post(odd))).toMatchObject({ applied: 0 });
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
  });

  it('a signed push of another content type → 415 unsupported_media_type; unsigned → 401', async () => {
    const body = messageAt(Math.floor(api.clock.now() / 1000));
    for (const type of ['text/plain', 'application/x-www-form-urlencoded']) {
      const res = await api.call({
        method: 'POST',
        url: '/v1/inbound/whatsapp',
        key: null,
        payload: body,
        headers: { 'content-type': type, 'x-hub-signature-256': sign(body) },
      });
      expectError(res, 415, 'unsupported_media_type');
    }
    const unsigned = await api.call({
      method: 'POST',
      url: '/v1/inbound/whatsapp',
      key: null,
      payload: body,
      headers: { 'content-type': 'text/plain' },
    });
    expectError(unsigned, 401, 'unauthorized');
    expect(api.svc.engine.get('sheena')?.version).toBe(0);
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
