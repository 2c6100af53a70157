import { createHmac } from 'node:crypto';

import { Webhook } from 'standardwebhooks';

import { FakeClock } from '../../src/core/clock';
import { verifyWebhook } from '../../src/webhooks';
import { expectError, testApi, type TestApi } from '../helpers/http';
import { Receiver } from '../helpers/receiver';

describe('webhook routes and change events end to end', () => {
  let api: TestApi;
  let receiver: Receiver;
  beforeEach(async () => {
    receiver = await Receiver.start();
    // standardwebhooks checks webhook-timestamp against the real clock, so the fake one starts at now.
    api = await testApi(
      {
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
        ZOOM_WEBHOOK_SECRET_TOKEN: 'zoom-secret',
        WHATSAPP_APP_SECRET: 'wa-secret',
      },
      new FakeClock(Date.now()),
    );
    await api.svc.engine.putUser('alice', {});
  });
  afterEach(async () => {
    await api.close();
    await receiver.close();
  });

  const register = async (body: Record<string, unknown> = {}) => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/webhooks',
      key: api.key.admin,
      payload: { url: `${receiver.url}/hook`, ...body },
    });
    expect(res.statusCode).toBe(201);
    return api.json<{ id: string; secret: string }>(res);
  };

  it('register, list, get, rotate, disable, delete — the secret shown only on create and rotate', async () => {
    const ep = await register({ events: ['presence.changed'], user_ids: ['alice'] });
    expect(ep.secret).toMatch(/^whsec_/);
    const list = api.json(await api.call({ method: 'GET', url: '/v1/webhooks', key: api.key.admin }));
    expect(list.webhooks).toHaveLength(1);
    expect(JSON.stringify(list)).not.toContain(ep.secret);
    const got = api.json(await api.call({ method: 'GET', url: `/v1/webhooks/${ep.id}`, key: api.key.admin }));
    expect(got).toMatchObject({
      id: ep.id,
      events: ['presence.changed'],
      user_ids: ['alice'],
      enabled: true,
    });
    expect(got.secret).toBeUndefined();
    const rotated = api.json(
      await api.call({
        method: 'PATCH',
        url: `/v1/webhooks/${ep.id}`,
        key: api.key.admin,
        payload: { rotate_secret: true },
      }),
    );
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(ep.secret);
    expect(rotated.previous_secret_expires_at).not.toBeNull();
    const off = api.json(
      await api.call({
        method: 'PATCH',
        url: `/v1/webhooks/${ep.id}`,
        key: api.key.admin,
        payload: { enabled: false },
      }),
    );
    expect(off).toMatchObject({ enabled: false, disabled_reason: 'manual' });
    expect(
      (await api.call({ method: 'DELETE', url: `/v1/webhooks/${ep.id}`, key: api.key.admin })).statusCode,
    ).toBe(204);
    expectError(
      await api.call({ method: 'GET', url: `/v1/webhooks/${ep.id}`, key: api.key.admin }),
      404,
      'not_found',
    );
  });

  it('a heartbeat change reaches the endpoint, signed per Standard Webhooks, with the contract body', async () => {
    const ep = await register();
    await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      key: api.key.write,
      payload: { user_id: 'alice', device_id: 'phone' },
    });
    const [got] = await receiver.waitFor(1);
    const payload = new Webhook(ep.secret).verify(got!.body, got!.headers) as { type: string; data: any };
    expect(verifyWebhook(ep.secret, got!.body, got!.headers)).toEqual(payload);
    expect(payload.type).toBe('presence.changed');
    expect(payload.data).toMatchObject({
      user_id: 'alice',
      version: 1,
      previous: { status: 'offline', activity: null, custom_status: null },
      current: { user_id: 'alice', status: 'online', version: 1, reachable_via: ['device'] },
      changed: ['status'],
    });
    // Nothing is sent when the aggregate does not change.
    await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      key: api.key.write,
      payload: { user_id: 'alice', device_id: 'phone' },
    });
    await new Promise((r) => setTimeout(r, 100));
    expect(receiver.received).toHaveLength(1);
    const log = api.json(
      await api.call({ method: 'GET', url: `/v1/webhooks/${ep.id}/deliveries`, key: api.key.admin }),
    );
    expect(log.deliveries[0]).toMatchObject({
      webhook_id: got!.headers['webhook-id'],
      status: 'delivered',
      attempt_count: 1,
    });
    const replay = await api.call({
      method: 'POST',
      url: `/v1/webhooks/${ep.id}/replay`,
      key: api.key.admin,
      payload: { since: '2020-01-01T00:00:00Z' },
    });
    expect(api.json(replay)).toEqual({ replayed: 1 });
    const [, again] = await receiver.waitFor(2);
    expect(again!.headers['webhook-id']).toBe(got!.headers['webhook-id']);
  });

  it('DELETE /v1/users/{id} sends user.deleted with the last version, and a replay sends none of her changes', async () => {
    const ep = await register();
    for (const device of ['phone', 'laptop']) {
      await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        key: api.key.write,
        payload: { user_id: 'alice', device_id: device, status: device === 'phone' ? 'online' : 'busy' },
      });
    }
    await api.svc.engine.putUser('bob', {});
    await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      key: api.key.write,
      payload: { user_id: 'bob', device_id: 'phone' },
    });
    await receiver.waitFor(2);
    const version = api.svc.engine.get('alice')?.version;
    expect(version).toBeGreaterThanOrEqual(1);
    const del = await api.call({ method: 'DELETE', url: '/v1/users/alice', key: api.key.write });
    expect(del.statusCode).toBe(204);
    const got = await receiver.waitFor(3);
    const deleted = got.find((r) => JSON.parse(r.body).type === 'user.deleted')!;
    expect(verifyWebhook(ep.secret, deleted.body, deleted.headers)).toEqual({
      type: 'user.deleted',
      timestamp: expect.any(String),
      data: { user_id: 'alice', version },
    });

    await api.svc.webhooks.idle(); // every outcome recorded: a replay takes what was delivered
    const before = receiver.received.length;
    const replay = await api.call({
      method: 'POST',
      url: `/v1/webhooks/${ep.id}/replay`,
      key: api.key.admin,
      payload: { since: '2020-01-01T00:00:00Z' },
    });
    expect(api.json(replay)).toEqual({ replayed: 2 }); // bob's change and alice's deletion
    await receiver.waitFor(before + 2);
    const replayed = receiver.received.slice(before).map((r) => JSON.parse(r.body));
    expect(replayed.map((b) => [b.type, b.data.user_id]).sort()).toEqual([
      ['presence.changed', 'bob'],
      ['user.deleted', 'alice'],
    ]);
  });

  it('a signed Zoom webhook, a signed WhatsApp webhook and a generic signal each emit a change webhook', async () => {
    const ep = await register();
    await api.svc.engine.linkAccount('alice', { platform: 'zoom', workspaceId: '', externalId: 'z-alice' });
    await api.svc.engine.linkAccount('alice', {
      platform: 'whatsapp',
      workspaceId: '',
      externalId: '15550001111',
    });
    const nowS = Math.floor(api.clock.now() / 1000);

    const zoomBody = JSON.stringify({
      event: 'user.presence_status_updated',
      event_ts: api.clock.now(),
      payload: {
        account_id: 'A',
        object: {
          id: 'z-alice',
          presence_status: 'In_Meeting',
          date_time: new Date(api.clock.now()).toISOString(),
        },
      },
    });
    const zsig = `v0=${createHmac('sha256', 'zoom-secret').update(`v0:${nowS}:${zoomBody}`).digest('hex')}`;
    const z = await api.call({
      method: 'POST',
      url: '/v1/inbound/zoom',
      key: null,
      payload: zoomBody,
      headers: {
        'content-type': 'application/json',
        'x-zm-request-timestamp': String(nowS),
        'x-zm-signature': zsig,
      },
    });
    expect(z.statusCode).toBe(200);
    await receiver.waitFor(1);

    // An inferred WhatsApp state cannot beat Zoom's app tier, so let Zoom's report expire first.
    api.clock.advance(11 * 60_000);
    const wa = JSON.stringify({
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
                messages: [{ from: '15550001111', id: 'm1', timestamp: String(nowS + 660), type: 'text' }],
              },
            },
          ],
        },
      ],
    });
    const w = await api.call({
      method: 'POST',
      url: '/v1/inbound/whatsapp',
      key: null,
      payload: wa,
      headers: {
        'content-type': 'application/json',
        'x-hub-signature-256': `sha256=${createHmac('sha256', 'wa-secret').update(wa).digest('hex')}`,
      },
    });
    expect(w.statusCode).toBe(200);
    await api.svc.engine.sweep();

    const s = await api.call({
      method: 'POST',
      url: '/v1/signals',
      key: api.key.write,
      payload: {
        user_id: 'alice',
        platform: 'slack',
        kind: 'typing',
        at: new Date(api.clock.now() + 1000 - 1000).toISOString(),
      },
    });
    expect(s.statusCode).toBe(202);
    api.clock.advance(3 * 60_000); // both inferred signals fade to idle
    await api.svc.engine.sweep();

    // busy (Zoom) → online (WhatsApp message; the signal keeps it online) → idle (both fade).
    const all = await receiver.waitFor(3);
    // The fake clock moved 14 minutes during the test; the signatures are what is checked here.
    type Change = { data: { current: { status: string; activity: string | null; source: string } } };
    const events = all.map((r) =>
      verifyWebhook<Change>(ep.secret, r.body, r.headers, { clock: api.clock, toleranceSeconds: 3600 }),
    );
    const states = events.map((e) => [e.data.current.status, e.data.current.activity, e.data.current.source]);
    expect(states).toEqual([
      ['busy', 'in_meeting', 'app'],
      ['online', null, 'inferred'],
      ['idle', null, 'inferred'],
    ]);
    // Per user, in version order.
    const versions = all.map((r) => (JSON.parse(r.body) as { data: { version: number } }).data.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
  });

  it('rejects bad input and private targets it was not allowed to reach', async () => {
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/webhooks',
        key: api.key.admin,
        payload: { url: 'ftp://example.com' },
      }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/webhooks',
        key: api.key.admin,
        payload: { url: receiver.url, events: ['nope'] },
      }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/webhooks',
        key: api.key.admin,
        payload: { url: receiver.url, extra: 1 },
      }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/webhooks/x/replay',
        key: api.key.admin,
        payload: { since: 'yesterday' },
      }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({ method: 'GET', url: '/v1/webhooks/nope', key: api.key.admin }),
      404,
      'not_found',
    );
    expectError(await api.call({ method: 'GET', url: '/v1/webhooks', key: api.key.write }), 403, 'forbidden');
    const strict = await testApi({});
    const res = await strict.call({
      method: 'POST',
      url: '/v1/webhooks',
      key: strict.key.admin,
      payload: { url: 'http://127.0.0.1:9/hook' },
    });
    expectError(res, 400, 'invalid_request');
    expect(strict.json(res).error.message).toMatch(/loopback|private/i);
    await strict.close();
  });

  it('without PRESENCE_SECRET_KEY the webhook routes say that webhooks are off', async () => {
    const off = await testApi({ PRESENCE_SECRET_KEY: '', WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' });
    try {
      for (const [method, url, payload] of [
        ['POST', '/v1/webhooks', { url: receiver.url }],
        ['GET', '/v1/webhooks', undefined],
        ['GET', '/v1/webhooks/ep_x/deliveries', undefined],
      ] as const) {
        const res = await off.call({
          method,
          url,
          key: off.key.admin,
          ...(payload === undefined ? {} : { payload }),
        });
        expectError(res, 404, 'not_found');
        expect(off.json(res).error.message).toMatch(/webhooks are off: set PRESENCE_SECRET_KEY/);
      }
      await off.svc.engine.putUser('alice', {});
      await off.call({
        method: 'POST',
        url: '/v1/heartbeats',
        key: off.key.write,
        payload: { user_id: 'alice', device_id: 'phone' },
      });
      expect(off.svc.db!.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(0);
    } finally {
      await off.close();
    }
  });
});
