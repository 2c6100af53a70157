import type { InjectOptions } from 'fastify';

import { expectError, testApi, type TestApi } from '../helpers/http';

type Route = {
  method: InjectOptions['method'];
  url: string;
  scope: 'read' | 'write' | 'admin';
  payload?: unknown;
};

const ROUTES: Route[] = [
  { method: 'GET', url: '/v1/presence?user_ids=alice', scope: 'read' },
  { method: 'POST', url: '/v1/presence/query', scope: 'read', payload: { user_ids: ['alice'] } },
  { method: 'GET', url: '/v1/presence/alice', scope: 'read' },
  { method: 'GET', url: '/v1/availability?user_ids=alice', scope: 'read' },
  { method: 'PUT', url: '/v1/presence/alice/override', scope: 'write', payload: { status: 'busy' } },
  { method: 'DELETE', url: '/v1/presence/alice/override', scope: 'write' },
  { method: 'GET', url: '/v1/presence/alice/history', scope: 'read' },
  {
    method: 'POST',
    url: '/v1/heartbeats',
    scope: 'write',
    payload: { user_id: 'alice', device_id: 'phone' },
  },
  { method: 'PUT', url: '/v1/users/alice', scope: 'write', payload: {} },
  { method: 'GET', url: '/v1/users/alice', scope: 'read' },
  { method: 'DELETE', url: '/v1/users/alice', scope: 'write' },
  {
    method: 'POST',
    url: '/v1/users/alice/accounts',
    scope: 'write',
    payload: { platform: 'slack', external_id: 'U1' },
  },
  { method: 'DELETE', url: '/v1/users/alice/accounts/slack/U1', scope: 'write' },
  { method: 'GET', url: '/v1/connectors', scope: 'read' },
  { method: 'POST', url: '/v1/keys', scope: 'admin', payload: { scopes: ['read'] } },
  { method: 'GET', url: '/v1/keys', scope: 'admin' },
  { method: 'DELETE', url: '/v1/keys/0123456789abcdef', scope: 'admin' },
];

describe('API keys and scopes on every authenticated route', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(() => api.close());

  const state = () =>
    api.svc.db!.prepare('SELECT (SELECT count(*) FROM users) u, (SELECT count(*) FROM api_keys) k').get();

  it.each(ROUTES)('$method $url: no key → 401, nothing changes', async (r) => {
    const before = state();
    const res = await api.call({ method: r.method, url: r.url, payload: r.payload as object, key: null });
    expectError(res, 401, 'unauthorized');
    expect(res.headers['www-authenticate']).toBe('Bearer');
    expect(state()).toEqual(before);
  });

  it.each(ROUTES)('$method $url: wrong or malformed key → 401', async (r) => {
    for (const k of ['pk_0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'nonsense', `${api.key.all}x`]) {
      expectError(
        await api.call({ method: r.method, url: r.url, payload: r.payload as object, key: k }),
        401,
        'unauthorized',
      );
    }
    const basic = await api.call({
      method: r.method,
      url: r.url,
      payload: r.payload as object,
      key: null,
      headers: { authorization: 'Basic abc' },
    });
    expectError(basic, 401, 'unauthorized');
  });

  it.each(ROUTES)('$method $url: a key without the $scope scope → 403', async (r) => {
    for (const scope of ['read', 'write', 'admin'] as const) {
      if (scope === r.scope) continue;
      const res = await api.call({
        method: r.method,
        url: r.url,
        payload: r.payload as object,
        key: api.key[scope],
      });
      expectError(res, 403, 'forbidden');
    }
  });

  it('a revoked key stops working at once', async () => {
    const { key, info } = await api.svc.keys.create(['read']);
    expect((await api.call({ method: 'GET', url: '/v1/connectors', key })).statusCode).toBe(200);
    expect(
      (await api.call({ method: 'DELETE', url: `/v1/keys/${info.id}`, key: api.key.admin })).statusCode,
    ).toBe(204);
    expectError(await api.call({ method: 'GET', url: '/v1/connectors', key }), 401, 'unauthorized');
  });

  it('public routes need no key', async () => {
    for (const url of ['/healthz', '/readyz', '/metrics', '/docs/json']) {
      expect((await api.call({ method: 'GET', url, key: null })).statusCode).toBe(200);
    }
  });
});

describe('rate limit per key', () => {
  it('answers 429 with Retry-After past the limit, per key, and refills with time', async () => {
    const api = await testApi({ PRESENCE_RATE_LIMIT: '3' });
    for (let i = 0; i < 3; i++)
      expect((await api.call({ method: 'GET', url: '/v1/connectors', key: api.key.read })).statusCode).toBe(
        200,
      );
    const limited = await api.call({ method: 'GET', url: '/v1/connectors', key: api.key.read });
    expectError(limited, 429, 'rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await api.call({ method: 'GET', url: '/v1/connectors', key: api.key.all })).statusCode).toBe(200);
    api.clock.advance(20_000);
    expect((await api.call({ method: 'GET', url: '/v1/connectors', key: api.key.read })).statusCode).toBe(
      200,
    );
    await api.close();
  });
});
