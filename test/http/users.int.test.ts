import { expectError, testApi, type TestApi } from '../helpers/http';

describe('user and account routes', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi();
  });
  afterEach(() => api.close());

  describe('works', () => {
    it('PUT creates (201) then updates (200) a user; GET shows it with accounts', async () => {
      const created = await api.call({
        method: 'PUT',
        url: '/v1/users/alice',
        payload: { display_name: 'Alice', timezone: 'Europe/Paris' },
      });
      expect(created.statusCode).toBe(201);
      expect(api.json(created)).toMatchObject({
        user_id: 'alice',
        display_name: 'Alice',
        timezone: 'Europe/Paris',
        accounts: [],
        connections: [],
      });
      api.clock.advance(1000);
      const updated = await api.call({ method: 'PUT', url: '/v1/users/alice', payload: { timezone: 'UTC' } });
      expect(updated.statusCode).toBe(200);
      expect(api.json(updated)).toMatchObject({ display_name: 'Alice', timezone: 'UTC' });
      expect(api.json(updated).updated_at > api.json(updated).created_at).toBe(true);
      const linked = await api.call({
        method: 'POST',
        url: '/v1/users/alice/accounts',
        payload: { platform: 'slack', external_id: 'U024BE7LH', workspace_id: 'T0123' },
      });
      expect(linked.statusCode).toBe(201);
      expect(api.json(linked)).toMatchObject({
        platform: 'slack',
        external_id: 'U024BE7LH',
        workspace_id: 'T0123',
      });
      const got = api.json(await api.call({ method: 'GET', url: '/v1/users/alice' }));
      expect(got.accounts).toEqual([
        expect.objectContaining({ platform: 'slack', external_id: 'U024BE7LH' }),
      ]);
    });

    it('linking an account twice to the same user is fine; to another user is 409', async () => {
      await api.call({ method: 'PUT', url: '/v1/users/alice', payload: {} });
      await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} });
      const account = { platform: 'discord', external_id: '80351110224678912' };
      expect(
        (await api.call({ method: 'POST', url: '/v1/users/alice/accounts', payload: account })).statusCode,
      ).toBe(201);
      expect(
        (await api.call({ method: 'POST', url: '/v1/users/alice/accounts', payload: account })).statusCode,
      ).toBe(201);
      const conflict = await api.call({ method: 'POST', url: '/v1/users/bob/accounts', payload: account });
      expectError(conflict, 409, 'conflict');
      expect(api.json(conflict).error.message).toMatch(/alice/);
      expect((await api.svc.engine.getUser('bob'))?.accounts).toEqual([]);
    });

    it('a linked LinkedIn account shows as identity only, never as a status', async () => {
      await api.call({ method: 'PUT', url: '/v1/users/alice', payload: {} });
      await api.call({
        method: 'POST',
        url: '/v1/users/alice/accounts',
        payload: { platform: 'linkedin', external_id: 'li-sub-1' },
      });
      const p = api.json(await api.call({ method: 'GET', url: '/v1/presence/alice' }));
      expect(p).toMatchObject({ status: 'offline', identity_only: ['linkedin'], reachable_via: [] });
      expect(p.platforms).not.toHaveProperty('linkedin');
      await api.call({ method: 'DELETE', url: '/v1/users/alice/accounts/linkedin/li-sub-1' });
      expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/alice' })).identity_only).toEqual(
        [],
      );
    });

    it('unlinks an account, with its workspace', async () => {
      await api.call({ method: 'PUT', url: '/v1/users/alice', payload: {} });
      await api.call({
        method: 'POST',
        url: '/v1/users/alice/accounts',
        payload: { platform: 'slack', external_id: 'U1', workspace_id: 'T1' },
      });
      expectError(
        await api.call({ method: 'DELETE', url: '/v1/users/alice/accounts/slack/U1' }),
        404,
        'not_found',
      );
      expect(
        (await api.call({ method: 'DELETE', url: '/v1/users/alice/accounts/slack/U1?workspace_id=T1' }))
          .statusCode,
      ).toBe(204);
      expect((await api.svc.engine.getUser('alice'))?.accounts).toEqual([]);
    });

    it('DELETE forgets the user and everything stored about them', async () => {
      await api.call({ method: 'PUT', url: '/v1/users/alice', payload: {} });
      await api.call({
        method: 'POST',
        url: '/v1/users/alice/accounts',
        payload: { platform: 'zoom', external_id: 'z1' },
      });
      await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: { user_id: 'alice', device_id: 'phone' },
      });
      await api.call({ method: 'PUT', url: '/v1/presence/alice/override', payload: { status: 'busy' } });
      expect((await api.call({ method: 'DELETE', url: '/v1/users/alice' })).statusCode).toBe(204);
      for (const table of ['users', 'accounts', 'observations', 'overrides', 'aggregates', 'transitions']) {
        expect(
          api.svc.db!.prepare(`SELECT count(*) FROM ${table} WHERE user_id = 'alice'`).pluck().get(),
        ).toBe(0);
      }
      expectError(await api.call({ method: 'GET', url: '/v1/presence/alice' }), 404, 'not_found');
      expectError(await api.call({ method: 'DELETE', url: '/v1/users/alice' }), 404, 'not_found');
      // The account is free again.
      await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} });
      expect(
        (
          await api.call({
            method: 'POST',
            url: '/v1/users/bob/accounts',
            payload: { platform: 'zoom', external_id: 'z1' },
          })
        ).statusCode,
      ).toBe(201);
    });
  });

  describe('rejects bad input, changing nothing', () => {
    const count = () =>
      api.svc.db!.prepare('SELECT (SELECT count(*) FROM users) u, (SELECT count(*) FROM accounts) a').get();
    beforeEach(async () => {
      await api.call({ method: 'PUT', url: '/v1/users/alice', payload: { display_name: 'Alice' } });
    });

    it.each([
      ['/v1/users/bad%20id', {}, 'bad user id'],
      [`/v1/users/${'x'.repeat(129)}`, {}, 'user id too long'],
      ['/v1/users/carol', { timezone: 'Mars/Olympus' }, 'unknown time zone'],
      ['/v1/users/carol', { display_name: '' }, 'empty name'],
      ['/v1/users/carol', { display_name: 5 }, 'name not a string'],
      ['/v1/users/carol', { nickname: 'c' }, 'unknown field'],
    ])('PUT %s %j → 400 (%s)', async (url, payload, _why) => {
      const before = count();
      expectError(await api.call({ method: 'PUT', url, payload }), 400, 'invalid_request');
      expect(count()).toEqual(before);
    });

    it.each([
      [{ platform: 'myspace', external_id: 'x' }, 'unknown platform'],
      [{ platform: 'slack' }, 'no external id'],
      [{ platform: 'slack', external_id: '' }, 'empty external id'],
      [{ platform: 'slack', external_id: 'U1', extra: 1 }, 'unknown field'],
    ])('POST accounts %j → 400 (%s)', async (payload, _why) => {
      const before = count();
      expectError(
        await api.call({ method: 'POST', url: '/v1/users/alice/accounts', payload }),
        400,
        'invalid_request',
      );
      expect(count()).toEqual(before);
    });

    it('account routes on an unknown user are 404 and create nothing', async () => {
      const before = count();
      expectError(
        await api.call({
          method: 'POST',
          url: '/v1/users/zed/accounts',
          payload: { platform: 'slack', external_id: 'U9' },
        }),
        404,
        'not_found',
      );
      expectError(
        await api.call({ method: 'DELETE', url: '/v1/users/zed/accounts/slack/U9' }),
        404,
        'not_found',
      );
      expectError(await api.call({ method: 'GET', url: '/v1/users/zed' }), 404, 'not_found');
      expect(count()).toEqual(before);
    });
  });
});

describe('heartbeat route', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi();
  });
  afterEach(() => api.close());

  it('creates the user on first sight, defaults to online for 30 s, and expires', async () => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'dana', device_id: 'laptop-1' },
      key: api.key.write,
    });
    expect(res.statusCode).toBe(204);
    const p = api.json(await api.call({ method: 'GET', url: '/v1/presence/dana' }));
    expect(p).toMatchObject({
      status: 'online',
      source: 'app',
      expires_at: new Date(api.clock.now() + 30_000).toISOString(),
    });
    expect(p.platforms.device.devices['laptop-1']).toMatchObject({ status: 'online' });
    api.clock.advance(31_000);
    expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/dana' }))).toMatchObject({
      status: 'offline',
      stale: true,
    });
  });

  it('takes status, activity and TTL', async () => {
    await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'dana', device_id: 'phone', status: 'busy', activity: 'in_call', ttl_seconds: 120 },
    });
    expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/dana' }))).toMatchObject({
      status: 'busy',
      activity: 'in_call',
      expires_at: new Date(api.clock.now() + 120_000).toISOString(),
    });
  });

  it.each([
    [{ device_id: 'x' }, 'no user'],
    [{ user_id: 'dana' }, 'no device'],
    [{ user_id: 'dana', device_id: 'has space' }, 'bad device id'],
    [{ user_id: 'dana', device_id: 'x', status: 'asleep' }, 'unknown status'],
    [{ user_id: 'dana', device_id: 'x', activity: 'gaming' }, 'unknown activity'],
    [{ user_id: 'dana', device_id: 'x', ttl_seconds: 0 }, 'ttl too small'],
    [{ user_id: 'dana', device_id: 'x', ttl_seconds: 86_401 }, 'ttl too large'],
    [{ user_id: 'dana', device_id: 'x', ttl_seconds: '30' }, 'ttl not a number'],
    [{ user_id: 'no way', device_id: 'x' }, 'bad user id'],
  ])('%j → 400 (%s), no user created', async (payload, _why) => {
    expectError(await api.call({ method: 'POST', url: '/v1/heartbeats', payload }), 400, 'invalid_request');
    expect(api.svc.engine.userCount).toBe(0);
  });
});
