import { FakeOAuthServer, PUBLIC_URL } from '../helpers/fake-oauth';
import { expectError, testApi, type TestApi } from '../helpers/http';

describe('OAuth connection routes, against a fake Slack OAuth server', () => {
  let fake: FakeOAuthServer;
  let api: TestApi;
  beforeEach(async () => {
    fake = await FakeOAuthServer.start({ flavor: 'slack', user: { id: 'U024BE7LH', team: 'T0123' } });
    api = await testApi({ ...fake.env, PUBLIC_URL });
    await api.svc.engine.putUser('alice', {});
  });
  afterEach(async () => {
    await api.close();
    await fake.close();
  });

  const start = async (userId = 'alice') => {
    const res = await api.call({
      method: 'GET',
      url: `/v1/connect/slack?user_id=${userId}`,
      key: api.key.admin,
    });
    expect(res.statusCode).toBe(302);
    return res.headers.location as string;
  };
  const callback = (query: Record<string, string>, accept = 'application/json') =>
    api.call({
      method: 'GET',
      url: `/v1/connect/slack/callback?${new URLSearchParams(query).toString()}`,
      key: null,
      headers: { accept },
    });

  it('connects: 302 to the authorize URL, callback stores the connection and links the account', async () => {
    const location = await start();
    const url = new URL(location);
    expect(url.origin).toBe(fake.url);
    expect(url.searchParams.get('state')).toMatch(/.{20,}/);
    expect(url.searchParams.get('redirect_uri')).toBe(`${PUBLIC_URL}/v1/connect/slack/callback`);
    const res = await callback(await fake.authorize(location));
    expect(res.statusCode).toBe(200);
    const c = api.json(res);
    expect(c).toMatchObject({
      platform: 'slack',
      kind: 'user',
      user_id: 'alice',
      external_id: 'U024BE7LH',
      workspace_id: 'T0123',
      health: 'ok',
    });
    expect(res.body).not.toContain(fake.issued.access[0]);
    const user = api.json(await api.call({ method: 'GET', url: '/v1/users/alice' }));
    expect(user.accounts).toEqual([
      expect.objectContaining({ platform: 'slack', external_id: 'U024BE7LH', workspace_id: 'T0123' }),
    ]);
    expect(user.connections).toEqual([expect.objectContaining({ id: c.id, health: 'ok' })]);
    const list = api.json(await api.call({ method: 'GET', url: '/v1/connections', key: api.key.admin }));
    expect(list.connections.map((x: { id: string }) => x.id)).toEqual([c.id]);
    expect(
      api.json(await api.call({ method: 'GET', url: `/v1/connections/${c.id}`, key: api.key.admin })).id,
    ).toBe(c.id);
  });

  it('shows a page to a person in a browser', async () => {
    const res = await callback(await fake.authorize(await start()), 'text/html');
    expect(res.headers['content-type']).toMatch(/^text\/html/);
    expect(res.body).toContain('linked to alice');
  });

  it('answers JSON instead of a redirect when asked', async () => {
    const res = await api.call({
      method: 'GET',
      url: '/v1/connect/slack?user_id=alice',
      key: api.key.admin,
      headers: { accept: 'application/json' },
    });
    expect(res.statusCode).toBe(200);
    expect(api.json(res)).toMatchObject({ url: expect.stringContaining(fake.url), pkce: false });
  });

  it('a reused, forged or missing state gets a clear 400 and stores nothing', async () => {
    const query = await fake.authorize(await start());
    expect((await callback(query)).statusCode).toBe(200);
    expectError(await callback(query), 400, 'invalid_request');
    expectError(
      await callback({ ...query, state: 'forged-state-value-xxxxxxxxxxxxxx' }),
      400,
      'invalid_request',
    );
    expectError(await callback({ code: query.code! }), 400, 'invalid_request');
    expect(
      api.json(await api.call({ method: 'GET', url: '/v1/connections', key: api.key.admin })).connections,
    ).toHaveLength(1);
  });

  it('an expired state is refused', async () => {
    const query = await fake.authorize(await start());
    api.clock.advance(11 * 60_000);
    expectError(await callback(query), 400, 'invalid_request');
    expect(
      api.json(await api.call({ method: 'GET', url: '/v1/connections', key: api.key.admin })).connections,
    ).toEqual([]);
  });

  it('a person who declines → 403, nothing stored', async () => {
    const location = await start();
    fake.deny('access_denied');
    expectError(await callback(await fake.authorize(location)), 403, 'forbidden');
    expect((await api.svc.engine.getUser('alice'))?.accounts).toEqual([]);
  });

  it('start refuses unknown users, unknown platforms and WhatsApp', async () => {
    expectError(
      await api.call({ method: 'GET', url: '/v1/connect/slack?user_id=nobody', key: api.key.admin }),
      404,
      'not_found',
    );
    expectError(
      await api.call({ method: 'GET', url: '/v1/connect/myspace?user_id=alice', key: api.key.admin }),
      404,
      'not_found',
    );
    expectError(
      await api.call({ method: 'GET', url: '/v1/connect/whatsapp?user_id=alice', key: api.key.admin }),
      400,
      'invalid_request',
    );
    expectError(
      await api.call({ method: 'GET', url: '/v1/connect/slack', key: api.key.admin }),
      400,
      'invalid_request',
    );
  });

  it('DELETE revokes at the platform and deletes the tokens; deleting the user does too', async () => {
    const c = api.json(await callback(await fake.authorize(await start())));
    const res = await api.call({ method: 'DELETE', url: `/v1/connections/${c.id}`, key: api.key.admin });
    expect(res.statusCode).toBe(200);
    expect(api.json(res)).toMatchObject({
      id: c.id,
      deleted: true,
      revoke_supported: true,
      revoked_at_platform: true,
    });
    expect(fake.revoked.size).toBe(1);
    expectError(
      await api.call({ method: 'GET', url: `/v1/connections/${c.id}`, key: api.key.admin }),
      404,
      'not_found',
    );

    const again = api.json(await callback(await fake.authorize(await start())));
    expect((await api.call({ method: 'DELETE', url: '/v1/users/alice' })).statusCode).toBe(204);
    expect(fake.revoked.size).toBe(2);
    expectError(
      await api.call({ method: 'GET', url: `/v1/connections/${again.id}`, key: api.key.admin }),
      404,
      'not_found',
    );
  });

  it('needs the admin scope, except for the callback', async () => {
    expectError(
      await api.call({ method: 'GET', url: '/v1/connect/slack?user_id=alice', key: api.key.write }),
      403,
      'forbidden',
    );
    expectError(
      await api.call({ method: 'GET', url: '/v1/connections', key: api.key.read }),
      403,
      'forbidden',
    );
    expectError(
      await api.call({ method: 'DELETE', url: '/v1/connections/x', key: null }),
      401,
      'unauthorized',
    );
    expectError(await callback({ code: 'c', state: 's' }), 400, 'invalid_request');
  });
});

describe('without PRESENCE_SECRET_KEY', () => {
  it('connection routes say what is missing', async () => {
    const api = await testApi({ PRESENCE_SECRET_KEY: '' });
    const res = await api.call({ method: 'GET', url: '/v1/connections', key: api.key.admin });
    expectError(res, 404, 'not_found');
    expect(api.json(res).error.message).toMatch(/PRESENCE_SECRET_KEY/);
    await api.close();
  });
});
