import { expectError, testApi, type TestApi } from '../helpers/http';

describe('ops routes, connectors, keys, docs', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi({ SLACK_BOT_TOKEN: 'xoxb-not-used' });
  });
  afterAll(() => api.close());

  it('healthz and readyz', async () => {
    expect(api.json(await api.call({ method: 'GET', url: '/healthz', key: null }))).toEqual({ status: 'ok' });
    expect(api.json(await api.call({ method: 'GET', url: '/readyz', key: null }))).toEqual({ ready: true });
  });

  it('metrics in Prometheus text, counting requests, users, observations, sweeps', async () => {
    await api.call({ method: 'POST', url: '/v1/heartbeats', payload: { user_id: 'm', device_id: 'd' } });
    await api.svc.engine.sweep();
    const res = await api.call({ method: 'GET', url: '/metrics', key: null });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);
    expect(res.body).toMatch(
      /^http_requests_total\{method="POST",route="\/v1\/heartbeats",status_code="204"\} 1$/m,
    );
    expect(res.body).toMatch(/^http_request_duration_seconds_bucket\{.*route="\/v1\/heartbeats".*\} \d+$/m);
    expect(res.body).toMatch(/^presence_tracked_users 1$/m);
    expect(res.body).toMatch(/^presence_observations 1$/m);
    expect(res.body).toMatch(/^presence_sweeps_total [1-9]\d*$/m);
    expect(res.body).toMatch(/^presence_changes_total 1$/m);
    expect(res.body).toMatch(/^webhook_endpoints_enabled 0$/m);
    expect(res.body).toMatch(/^webhook_deliveries_queued 0$/m);
    expect(res.body).toMatch(/^webhook_deliveries_in_flight 0$/m);
  });

  it('lists every connector, saying which are off and why, and that LinkedIn has no presence', async () => {
    const res = await api.call({ method: 'GET', url: '/v1/connectors', key: api.key.read });
    expect(res.statusCode).toBe(200);
    const list = api.json(res).connectors as {
      platform: string;
      enabled: boolean;
      health: string;
      last_error: string;
      presence: string;
      mode: string;
    }[];
    expect(list.map((c) => c.platform).sort()).toEqual([
      'discord',
      'linkedin',
      'slack',
      'teams',
      'whatsapp',
      'zoom',
    ]);
    const teams = list.find((c) => c.platform === 'teams')!;
    expect(teams).toMatchObject({ enabled: false, health: 'off', mode: 'poll' });
    expect(teams.last_error).toMatch(/MS_TENANT_ID, MS_CLIENT_ID, MS_CLIENT_SECRET/);
    expect(list.find((c) => c.platform === 'linkedin')).toMatchObject({ presence: 'none' });
    expect(list.find((c) => c.platform === 'whatsapp')).toMatchObject({ presence: 'inferred' });
  });

  it('keys: create (shown once), list without secrets, revoke', async () => {
    const created = await api.call({
      method: 'POST',
      url: '/v1/keys',
      payload: { scopes: ['read', 'read'], name: 'dashboard' },
      key: api.key.admin,
    });
    expect(created.statusCode).toBe(201);
    const k = api.json(created);
    expect(k).toMatchObject({ name: 'dashboard', scopes: ['read'], revoked_at: null });
    expect(k.key).toMatch(/^pk_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
    expect((await api.call({ method: 'GET', url: '/v1/connectors', key: k.key })).statusCode).toBe(200);
    // The secret part: everything after `pk_<16 hex id>_` (base64url, so it may itself hold '_').
    const secret = (k.key as string).slice('pk_0123456789abcdef_'.length);
    expect(secret).toHaveLength(32);
    const list = await api.call({ method: 'GET', url: '/v1/keys', key: api.key.admin });
    expect(list.body).not.toContain(secret);
    expect(api.json(list).keys.map((x: { id: string }) => x.id)).toContain(k.id);
    expect(api.svc.db!.prepare('SELECT hash FROM api_keys WHERE id = ?').pluck().get(k.id)).not.toContain(
      secret,
    );
    expect(
      (await api.call({ method: 'DELETE', url: `/v1/keys/${k.id}`, key: api.key.admin })).statusCode,
    ).toBe(204);
    expectError(
      await api.call({ method: 'DELETE', url: `/v1/keys/${k.id}`, key: api.key.admin }),
      404,
      'not_found',
    );
    expectError(
      await api.call({ method: 'POST', url: '/v1/keys', payload: { scopes: ['root'] }, key: api.key.admin }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({ method: 'POST', url: '/v1/keys', payload: { scopes: [] }, key: api.key.admin }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({ method: 'DELETE', url: '/v1/keys/nothex', key: api.key.admin }),
      400,
      'invalid_request',
    );
  });

  it('serves the OpenAPI document and a page to read it', async () => {
    const doc = api.json(await api.call({ method: 'GET', url: '/docs/json', key: null }));
    expect(doc.openapi).toMatch(/^3\./);
    for (const path of [
      '/v1/presence',
      '/v1/presence/query',
      '/v1/presence/{user_id}',
      '/v1/availability',
      '/v1/heartbeats',
      '/v1/users/{user_id}',
    ]) {
      expect(doc.paths).toHaveProperty([path]);
    }
    expect(doc.paths['/v1/presence'].get.parameters[0]).toMatchObject({ name: 'user_ids', in: 'query' });
    const page = await api.call({ method: 'GET', url: '/docs', key: null });
    expect([200, 302]).toContain(page.statusCode);
  });
});
