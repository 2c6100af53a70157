import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { expectError, testApi, type TestApi } from '../helpers/http';

const SECRET = 'zoom-secret-token';
const fixture = (name: string) =>
  readFileSync(join(__dirname, '../../connectors/zoom/fixtures', name), 'utf8');

describe('Zoom inbound webhook', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi({ ZOOM_WEBHOOK_SECRET_TOKEN: SECRET });
    await api.svc.engine.putUser('jill', {});
    await api.svc.engine.linkAccount('jill', {
      platform: 'zoom',
      workspaceId: '',
      externalId: 'abcD3ojfdbjfg',
    });
  });
  afterEach(() => api.close());

  const post = (body: string, opts: { ts?: string; secret?: string; signature?: string | null } = {}) => {
    const ts = opts.ts ?? String(Math.floor(api.clock.now() / 1000));
    const signature = `v0=${createHmac('sha256', opts.secret ?? SECRET)
      .update(`v0:${ts}:${body}`)
      .digest('hex')}`;
    return api.call({
      method: 'POST',
      url: '/v1/inbound/zoom',
      key: null,
      payload: body,
      headers: {
        'content-type': 'application/json',
        'x-zm-request-timestamp': ts,
        ...(opts.signature === null ? {} : { 'x-zm-signature': opts.signature ?? signature }),
      },
    });
  };

  it('answers endpoint.url_validation with an HMAC computed independently', async () => {
    const body = fixture('zoom-url-validation-request.json');
    const res = await post(body);
    expect(res.statusCode).toBe(200);
    const plainToken = 'qgg8vlvZRS6UYooatFL8Aw';
    expect(api.json(res)).toEqual({
      plainToken,
      encryptedToken: createHmac('sha256', SECRET).update(plainToken).digest('hex'),
    });
  });

  it('a signed user.presence_status_updated moves the linked user, with the per-app entry as a device', async () => {
    const body = fixture('zoom-user-presence-status-updated.json')
      .replace('"Away"', '"In_A_Zoom_Meeting"')
      .replace('2019-11-26T20:13:57Z', new Date(api.clock.now()).toISOString());
    const res = await post(body);
    expect(api.json(res)).toEqual({ received: true, applied: true });
    const p = api.svc.engine.get('jill')!;
    expect(p).toMatchObject({ status: 'busy', activity: 'in_meeting', source: 'app', version: 1 });
    expect(p.platforms.zoom?.raw).toBe('In_A_Zoom_Meeting');
    expect(p.platforms.zoom?.devices.mobile?.status).toBe('offline');
  });

  it('links by email too', async () => {
    await api.svc.engine.putUser('kim', {});
    await api.svc.engine.linkAccount('kim', {
      platform: 'zoom',
      workspaceId: '',
      externalId: 'kim@example.com',
    });
    const body = JSON.stringify({
      event: 'user.presence_status_updated',
      event_ts: api.clock.now(),
      payload: {
        account_id: 'A',
        object: {
          id: 'zzz',
          email: 'kim@example.com',
          presence_status: 'Do_No_Disturb',
          date_time: new Date(api.clock.now()).toISOString(),
        },
      },
    });
    expect(api.json(await post(body))).toEqual({ received: true, applied: true });
    expect(api.svc.engine.get('kim')).toMatchObject({
      status: 'busy',
      activity: 'do_not_disturb',
      source: 'manual',
    });
  });

  it('an unknown value is not guessed', async () => {
    const body = fixture('zoom-user-presence-status-updated.json').replace('"Away"', '"Teleporting"');
    expect(api.json(await post(body))).toEqual({ received: true, applied: false });
    expect(api.svc.engine.get('jill')?.version).toBe(0);
  });

  it.each([
    ['no signature', { signature: null }],
    ['another secret', { secret: 'wrong' }],
    ['a signature for another body', { signature: `v0=${'0'.repeat(64)}` }],
    ['a stale timestamp', { ts: String(Math.floor(Date.UTC(2026, 10, 23, 13, 50) / 1000)) }],
    ['a timestamp that is not a number', { ts: 'yesterday' }],
  ])('%s → 401, no state change, no validation answer', async (_why, opts) => {
    const presence = fixture('zoom-user-presence-status-updated.json').replace(
      '2019-11-26T20:13:57Z',
      new Date(api.clock.now()).toISOString(),
    );
    expectError(await post(presence, opts), 401, 'unauthorized');
    expectError(await post(fixture('zoom-url-validation-request.json'), opts), 401, 'unauthorized');
    expect(api.svc.engine.get('jill')?.version).toBe(0);
  });

  it('a tampered body → 401', async () => {
    const body = fixture('zoom-user-presence-status-updated.json');
    const ts = String(Math.floor(api.clock.now() / 1000));
    const signature = `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`;
    expectError(await post(body.replace('Away', 'Available'), { ts, signature }), 401, 'unauthorized');
  });
});

describe('Zoom inbound webhook: malformed, replayed and mistyped deliveries', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi({ ZOOM_WEBHOOK_SECRET_TOKEN: SECRET });
    await api.svc.engine.putUser('jill', {});
    await api.svc.engine.linkAccount('jill', {
      platform: 'zoom',
      workspaceId: '',
      externalId: 'abcD3ojfdbjfg',
    });
  });
  afterEach(() => api.close());

  const post = (
    body: string,
    contentType = 'application/json',
    ts = String(Math.floor(api.clock.now() / 1000)),
  ) =>
    api.call({
      method: 'POST',
      url: '/v1/inbound/zoom',
      key: null,
      payload: body,
      headers: {
        'content-type': contentType,
        'x-zm-request-timestamp': ts,
        'x-zm-signature': `v0=${createHmac('sha256', SECRET).update(`v0:${ts}:${body}`).digest('hex')}`,
      },
    });
  const event = (object: unknown, name = 'user.presence_status_updated'): string =>
    JSON.stringify({ event: name, event_ts: api.clock.now(), payload: { account_id: 'A', object } });
  const good = (): Record<string, unknown> => ({
    id: 'abcD3ojfdbjfg',
    presence_status: 'Available',
    date_time: new Date(api.clock.now()).toISOString(),
  });

  it.each<[string, () => string]>([
    ['app is a string', () => event({ ...good(), app: 'desktop' })],
    ['app is null', () => event({ ...good(), app: null })],
    [
      'app.presence_status is a number',
      () => event({ ...good(), app: { type: 'desktop', presence_status: 3 } }),
    ],
    ['app.type is missing', () => event({ ...good(), app: { presence_status: 'Away' } })],
    ['presence_status is a number', () => event({ ...good(), presence_status: 7 })],
    ['id is missing', () => event({ presence_status: 'Available' })],
    ['object is missing', () => JSON.stringify({ event: 'user.presence_status_updated', payload: {} })],
    ['object is an array', () => event([good()])],
    ['payload is a string', () => JSON.stringify({ event: 'user.presence_status_updated', payload: 'x' })],
    ['email is a number', () => event({ ...good(), email: 5 })],
    ['event is a number', () => JSON.stringify({ event: 5, payload: { object: good() } })],
    ['the body is an array', () => JSON.stringify([good()])],
    ['the body is a JSON string', () => JSON.stringify('user.presence_status_updated')],
  ])('signed, %s → 400, no state change', async (_why, body) => {
    const res = await post(body());
    expectError(res, 400, 'invalid_request');
    expect(api.svc.engine.get('jill')?.version).toBe(0);
  });

  it.each<[string, () => string]>([
    ['an unknown event', () => event(good(), 'meeting.started')],
    ['a status named like an Object method', () => event({ ...good(), presence_status: 'constructor' })],
    [
      'an app status named like an Object method',
      () =>
        event({
          ...good(),
          presence_status: '__proto__',
          app: { type: 'desktop', presence_status: 'toString' },
        }),
    ],
  ])('signed, %s → 200 and ignored', async (_why, body) => {
    const res = await post(body());
    expect(res.statusCode).toBe(200);
    expect(api.json(res)).toEqual({ received: true, applied: false });
    expect(api.svc.engine.get('jill')?.version).toBe(0);
  });

  it('a replayed delivery (same signed bytes, even re-signed later) is acknowledged and not applied again', async () => {
    const body = event({ ...good(), presence_status: 'Do_Not_Disturb' });
    expect(api.json(await post(body))).toEqual({ received: true, applied: true });
    expect(api.svc.engine.get('jill')).toMatchObject({ status: 'busy', version: 1 });
    // The person clears DND; then the old delivery comes again (Zoom's retry, or a replay).
    api.clock.advance(60_000);
    expect(
      api.json(await post(event({ ...good(), date_time: new Date(api.clock.now()).toISOString() }))),
    ).toEqual({
      received: true,
      applied: true,
    });
    expect(api.svc.engine.get('jill')).toMatchObject({ status: 'online', version: 2 });
    api.clock.advance(60_000);
    const again = await post(body);
    expect(again.statusCode).toBe(200);
    expect(api.json(again)).toEqual({ received: true, applied: false, duplicate: true });
    expect(api.svc.engine.get('jill')).toMatchObject({ status: 'online', version: 2 });
  });

  it('a signed push of another content type → 415 unsupported_media_type, no state change', async () => {
    const body = event(good());
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
      expectError(await post(body, type), 415, 'unsupported_media_type');
    }
    expect(api.svc.engine.get('jill')?.version).toBe(0);
    // Unsigned, the same request is refused for its signature first.
    const res = await api.call({
      method: 'POST',
      url: '/v1/inbound/zoom',
      key: null,
      payload: body,
      headers: { 'content-type': 'text/plain' },
    });
    expectError(res, 401, 'unauthorized');
  });
});
