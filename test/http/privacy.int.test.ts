import { expectError, testApi, type TestApi } from '../helpers/http';

describe('viewers and privacy over HTTP', () => {
  let api: TestApi;

  const token = async (userId: string, ttl?: number): Promise<string> => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/viewer-tokens',
      key: api.key.write,
      payload: { user_id: userId, ...(ttl === undefined ? {} : { ttl_seconds: ttl }) },
    });
    expect(res.statusCode).toBe(201);
    return api.json(res).token as string;
  };
  const get = (url: string, key: string) => api.call({ method: 'GET', url, key });
  const put = (url: string, payload: Record<string, unknown>) =>
    api.call({ method: 'PUT', url, payload, key: api.key.write });

  beforeEach(async () => {
    api = await testApi();
    for (const id of ['alice', 'bob', 'carol']) {
      const res = await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: {
          user_id: id,
          device_id: 'laptop',
          status: 'busy',
          activity: 'in_meeting',
          ttl_seconds: 600,
        },
      });
      expect(res.statusCode).toBe(204);
    }
  });
  afterEach(() => api.close());

  describe('viewer tokens', () => {
    it('issued with the write scope for an existing user: 1 h by default, at most 24 h', async () => {
      const res = await api.call({
        method: 'POST',
        url: '/v1/viewer-tokens',
        key: api.key.write,
        payload: { user_id: 'bob' },
      });
      expect(res.statusCode).toBe(201);
      expect(api.json(res).expires_at).toBe(new Date(api.clock.now() + 3600_000).toISOString());
      const day = api.json(
        await api.call({
          method: 'POST',
          url: '/v1/viewer-tokens',
          payload: { user_id: 'bob', ttl_seconds: 86_400 },
        }),
      );
      expect(day.expires_at).toBe(new Date(api.clock.now() + 86_400_000).toISOString());
      expectError(
        await api.call({
          method: 'POST',
          url: '/v1/viewer-tokens',
          payload: { user_id: 'bob', ttl_seconds: 86_401 },
        }),
        400,
        'invalid_request',
      );
      expectError(
        await api.call({ method: 'POST', url: '/v1/viewer-tokens', payload: { user_id: 'bob', extra: 1 } }),
        400,
        'invalid_request',
      );
      expectError(
        await api.call({ method: 'POST', url: '/v1/viewer-tokens', payload: { user_id: 'nobody' } }),
        404,
        'not_found',
      );
      expectError(
        await api.call({
          method: 'POST',
          url: '/v1/viewer-tokens',
          key: api.key.read,
          payload: { user_id: 'bob' },
        }),
        403,
        'forbidden',
      );
    });

    it('a token stops working when it expires', async () => {
      const t = await token('bob', 60);
      expect((await get('/v1/presence/alice', t)).statusCode).toBe(200);
      api.clock.advance(59_000);
      expect((await get('/v1/presence/alice', t)).statusCode).toBe(200);
      api.clock.advance(1000);
      expectError(await get('/v1/presence/alice', t), 401, 'unauthorized');
    });

    it('revoking invalidates every token of the user at once; a new one works; others are untouched', async () => {
      const t1 = await token('bob');
      const t2 = await token('bob');
      const c = await token('carol');
      const res = await api.call({
        method: 'DELETE',
        url: '/v1/users/bob/viewer-tokens',
        key: api.key.write,
      });
      expect(res.statusCode).toBe(204);
      expectError(await get('/v1/presence/alice', t1), 401, 'unauthorized');
      expectError(await get('/v1/presence/alice', t2), 401, 'unauthorized');
      expect((await get('/v1/presence/alice', c)).statusCode).toBe(200);
      expect((await get('/v1/presence/alice', await token('bob'))).statusCode).toBe(200);
      expectError(
        await api.call({ method: 'DELETE', url: '/v1/users/ghost/viewer-tokens' }),
        404,
        'not_found',
      );
    });

    it('deleting the user invalidates their tokens, also once a user of that id exists again', async () => {
      const t = await token('bob');
      expect((await api.call({ method: 'DELETE', url: '/v1/users/bob' })).statusCode).toBe(204);
      expectError(await get('/v1/presence/alice', t), 401, 'unauthorized');
      await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} });
      expectError(await get('/v1/presence/alice', t), 401, 'unauthorized');
      expect((await get('/v1/presence/alice', await token('bob'))).statusCode).toBe(200);
    });

    it('a forged or tampered token is refused', async () => {
      const t = await token('bob');
      const [h, p, s] = t.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
      const forged = `${h}.${Buffer.from(JSON.stringify({ ...claims, sub: 'alice' })).toString('base64url')}.${s}`;
      expectError(await get('/v1/presence/alice', forged), 401, 'unauthorized');
      expectError(await get('/v1/presence/alice', 'a.b.c'), 401, 'unauthorized');
    });

    it("acts as the user's own devices, and no one else's", async () => {
      const t = await token('bob');
      const own = await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        key: t,
        payload: { user_id: 'bob', device_id: 'phone' },
      });
      expect(own.statusCode).toBe(204);
      expect(api.json(await get('/v1/presence/bob', api.key.read)).platforms.device.devices).toHaveProperty(
        'phone',
      );
      const other = await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        key: t,
        payload: { user_id: 'alice', device_id: 'phone' },
      });
      expectError(other, 403, 'forbidden');
      expect(
        api.json(await get('/v1/presence/alice', api.key.read)).platforms.device.devices,
      ).not.toHaveProperty('phone');
    });
  });

  describe('settings, contacts and blocks', () => {
    it('defaults until set; PUT sets (left-out fields take the defaults); GET reads back', async () => {
      expect(api.json(await get('/v1/users/alice/privacy', api.key.read))).toEqual({
        presence: 'everyone',
        last_seen: 'everyone',
        details: 'everyone',
        reciprocal: false,
      });
      const res = await put('/v1/users/alice/privacy', { last_seen: 'contacts', reciprocal: true });
      expect(res.statusCode).toBe(200);
      expect(api.json(res)).toEqual({
        presence: 'everyone',
        last_seen: 'contacts',
        details: 'everyone',
        reciprocal: true,
      });
      expect(api.json(await get('/v1/users/alice/privacy', api.key.read))).toEqual(api.json(res));
    });

    it('bad input is a 400 with the error body and changes nothing; an unknown user is a 404', async () => {
      await put('/v1/users/alice/privacy', { presence: 'contacts' });
      await put('/v1/users/alice/contacts', { user_ids: ['bob'] });
      for (const [url, body] of [
        ['/v1/users/alice/privacy', { presence: 'friends' }],
        ['/v1/users/alice/privacy', { reciprocal: 'yes' }],
        ['/v1/users/alice/privacy', { presence: 'nobody', colour: 'red' }],
        ['/v1/users/alice/contacts', { user_ids: ['bad id'] }],
        ['/v1/users/alice/contacts', { user_ids: ['alice'] }],
        ['/v1/users/alice/contacts', { user_ids: 'bob' }],
        ['/v1/users/alice/blocked', { user_ids: ['alice'] }],
        ['/v1/users/alice/blocked', {}],
      ] as const) {
        expectError(await put(url, body), 400, 'invalid_request');
      }
      expectError(
        await api.call({ method: 'POST', url: '/v1/users/alice/contacts/alice' }),
        400,
        'invalid_request',
      );
      expect(api.json(await get('/v1/users/alice/privacy', api.key.read)).presence).toBe('contacts');
      expect(api.json(await get('/v1/users/alice/contacts', api.key.read))).toEqual({ user_ids: ['bob'] });
      expect(api.json(await get('/v1/users/alice/blocked', api.key.read))).toEqual({ user_ids: [] });
      expectError(await put('/v1/users/ghost/privacy', { presence: 'nobody' }), 404, 'not_found');
      expectError(await put('/v1/users/ghost/contacts', { user_ids: [] }), 404, 'not_found');
      expectError(await get('/v1/users/ghost/blocked', api.key.read), 404, 'not_found');
    });

    it('contacts: replace, add and remove one (idempotent); blocks: replace', async () => {
      expect(api.json(await put('/v1/users/alice/contacts', { user_ids: ['bob', 'dave', 'bob'] }))).toEqual({
        user_ids: ['bob', 'dave'],
      });
      expect((await api.call({ method: 'POST', url: '/v1/users/alice/contacts/carol' })).statusCode).toBe(
        204,
      );
      expect((await api.call({ method: 'POST', url: '/v1/users/alice/contacts/carol' })).statusCode).toBe(
        204,
      );
      expect((await api.call({ method: 'DELETE', url: '/v1/users/alice/contacts/dave' })).statusCode).toBe(
        204,
      );
      expect((await api.call({ method: 'DELETE', url: '/v1/users/alice/contacts/dave' })).statusCode).toBe(
        204,
      );
      expect(api.json(await get('/v1/users/alice/contacts', api.key.read))).toEqual({
        user_ids: ['bob', 'carol'],
      });
      expect(api.json(await put('/v1/users/alice/blocked', { user_ids: ['carol'] }))).toEqual({
        user_ids: ['carol'],
      });
      expect(api.json(await get('/v1/users/alice/blocked', api.key.read))).toEqual({ user_ids: ['carol'] });
    });

    it("deleting a user forgets their privacy, and their place in others' lists", async () => {
      await put('/v1/users/bob/privacy', { presence: 'nobody' });
      await put('/v1/users/alice/contacts', { user_ids: ['bob', 'carol'] });
      await put('/v1/users/alice/blocked', { user_ids: ['bob'] });
      expect((await api.call({ method: 'DELETE', url: '/v1/users/bob' })).statusCode).toBe(204);
      expect(api.json(await get('/v1/users/alice/contacts', api.key.read))).toEqual({ user_ids: ['carol'] });
      expect(api.json(await get('/v1/users/alice/blocked', api.key.read))).toEqual({ user_ids: [] });
      await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} });
      expect(api.json(await get('/v1/users/bob/privacy', api.key.read)).presence).toBe('everyone');
    });
  });

  describe('the reads, projected for viewers', () => {
    it('a hidden user is answered exactly like an id that does not exist, on every read', async () => {
      await put('/v1/users/alice/privacy', { presence: 'contacts' });
      const t = await token('carol');
      const ids = 'zed,alice,carol';
      const hidden = await get(`/v1/presence?user_ids=${ids}`, t);
      const missing = await get(`/v1/presence?user_ids=${ids.replace('alice', 'ghost')}`, t);
      expect(api.json(hidden).unknown).toEqual(['zed', 'alice']);
      expect(api.json(missing).unknown).toEqual(['zed', 'ghost']);
      expect(Object.keys(api.json(hidden).presence)).toEqual(['carol']);
      expect(hidden.body.replace('alice', 'ghost')).toBe(missing.body);
      const q = await api.call({
        method: 'POST',
        url: '/v1/presence/query',
        key: t,
        payload: { user_ids: ['alice', 'carol'] },
      });
      expect(api.json(q).unknown).toEqual(['alice']);

      const one = await get('/v1/presence/alice', t);
      const none = await get('/v1/presence/ghost', t);
      expectError(one, 404, 'not_found');
      expect(api.json(one).error.message).toBe(api.json(none).error.message.replace('ghost', 'alice'));
      expect(one.headers['content-type']).toBe(none.headers['content-type']);

      const av = api.json(await get('/v1/availability?user_ids=alice,ghost,carol', t));
      expect(av.unknown).toEqual(['alice', 'ghost']);
      expect(Object.keys(av.availability)).toEqual(['carol']);

      const h = await get('/v1/presence/alice/history', t);
      const hn = await get('/v1/presence/ghost/history', t);
      expectError(h, 404, 'not_found');
      expect(api.json(h).error.message).toBe(api.json(hn).error.message.replace('ghost', 'alice'));
      // Blocking hides the same way, whatever the rule.
      await put('/v1/users/alice/privacy', {});
      await put('/v1/users/alice/blocked', { user_ids: ['carol'] });
      expect(api.json(await get('/v1/presence?user_ids=alice', t)).unknown).toEqual(['alice']);
    });

    it('a mixed list: full, reduced, hidden, missing and repeated ids, each once, unknown in the order asked', async () => {
      await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: { user_id: 'dave', device_id: 'laptop' },
      });
      await put('/v1/users/alice/privacy', { last_seen: 'nobody' });
      await put('/v1/users/bob/privacy', { presence: 'nobody' });
      const t = await token('carol');
      const res = await get('/v1/presence?user_ids=ghost,alice,bob,dave,alice,zed,carol', t);
      const body = api.json(res);
      expect(body.unknown).toEqual(['ghost', 'bob', 'zed']);
      expect(Object.keys(body.presence).sort()).toEqual(['alice', 'carol', 'dave']);
      expect(body.presence.alice).toMatchObject({ observed_at: null, last_seen_approx: 'recently' });
      const operator = api.json(await get('/v1/presence?user_ids=dave,carol', api.key.read)).presence;
      expect(body.presence.dave).toEqual(operator.dave);
      expect(body.presence.carol).toEqual(operator.carol);
      // A change of Alice's presence is seen at once (the reduced JSON kept is not served stale).
      await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: { user_id: 'alice', device_id: 'laptop', status: 'online', ttl_seconds: 600 },
      });
      const again = api.json(await get('/v1/presence?user_ids=alice,carol', t));
      expect(again.presence.alice).toMatchObject({ status: 'online', observed_at: null });
    });

    it('the operator (API key) still sees everything, byte for byte as before', async () => {
      const before = (await get('/v1/presence?user_ids=alice,bob', api.key.read)).body;
      await put('/v1/users/alice/privacy', { presence: 'nobody', last_seen: 'nobody', details: 'nobody' });
      expect((await get('/v1/presence?user_ids=alice,bob', api.key.read)).body).toBe(before);
    });

    it("one's own presence is in full, whatever one's settings", async () => {
      await put('/v1/users/bob/privacy', { presence: 'nobody', last_seen: 'nobody', details: 'nobody' });
      const t = await token('bob');
      expect((await get('/v1/presence/bob', t)).body).toBe(
        (await get('/v1/presence/bob', api.key.read)).body,
      );
    });

    it('the worked example: Alice hides last seen from non-contacts; Bob, a contact, sees it; Carol does not', async () => {
      await put('/v1/users/alice/privacy', { last_seen: 'contacts' });
      await put('/v1/users/alice/contacts', { user_ids: ['bob'] });
      const operator = api.json(await get('/v1/presence/alice', api.key.read));
      const bob = api.json(await get('/v1/presence/alice', await token('bob')));
      const carol = api.json(await get('/v1/presence/alice', await token('carol')));
      expect(bob).toEqual(operator);
      expect(carol).toMatchObject({
        status: 'busy',
        activity: 'in_meeting',
        observed_at: null,
        last_active_at: null,
        expires_at: null,
        last_seen_approx: 'recently',
      });
      expect(JSON.stringify(carol)).not.toMatch(/\d{4}-\d\d-\d\dT/);
      const carolAv = api.json(await get('/v1/availability?user_ids=alice', await token('carol')));
      expect(carolAv.availability.alice.observed_at).toBeNull();
      expect(api.json(await get('/v1/presence/alice/history', await token('carol')))).toEqual({
        transitions: [],
      });
      expect(
        api.json(await get('/v1/presence/alice/history', await token('bob'))).transitions.length,
      ).toBeGreaterThan(0);
    });

    it('details hidden: status only, availability without activity, channel or reason', async () => {
      await put('/v1/users/alice/privacy', { details: 'nobody' });
      const t = await token('carol');
      const p = api.json(await get('/v1/presence?user_ids=alice', t)).presence.alice;
      expect(p).toMatchObject({
        status: 'busy',
        activity: null,
        platforms: {},
        reachable_via: [],
        explain: '',
      });
      const av = api.json(await get('/v1/availability?user_ids=alice', t)).availability.alice;
      expect(av).toMatchObject({
        available: false,
        status: 'busy',
        activity: null,
        best_channel: null,
        reason: null,
      });
      const h = api.json(await get('/v1/presence/alice/history', t)).transitions;
      for (const tr of h)
        expect(tr).toMatchObject({ source: null, platform: null, from: { activity: null } });
    });

    it("reciprocal: Carol, hiding her last seen from everyone, does not see Alice's either", async () => {
      await put('/v1/users/carol/privacy', { last_seen: 'nobody', reciprocal: true });
      const p = api.json(await get('/v1/presence/alice', await token('carol')));
      expect(p).toMatchObject({ observed_at: null, last_seen_hidden_by_own_settings: true });
    });
  });
});
