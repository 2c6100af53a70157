import { expectError, testApi, type TestApi } from '../helpers/http';

describe('presence routes', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi();
    const { engine } = api.svc;
    await engine.putUser('alice', { displayName: 'Alice' });
    await engine.putUser('bob', {});
    await engine.reportMapped(
      'alice',
      'teams',
      {
        state: {
          status: 'busy',
          activity: 'in_meeting',
          customStatus: null,
          source: 'app',
          raw: { availability: 'Busy', activity: 'InAMeeting' },
          label: 'Busy/InAMeeting',
        },
        devices: null,
      },
      300_000,
    );
    await engine.heartbeat('bob', 'laptop', 'online', null, 30_000);
  });
  afterEach(() => api.close());

  describe('works', () => {
    it('GET /v1/presence returns each known user and lists unknown ones', async () => {
      const res = await api.call({
        method: 'GET',
        url: '/v1/presence?user_ids=alice,bob,carol',
        key: api.key.read,
      });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      const body = api.json(res);
      expect(Object.keys(body.presence)).toEqual(['alice', 'bob']);
      expect(body.unknown).toEqual(['carol']);
      expect(body.presence.alice).toMatchObject({
        user_id: 'alice',
        status: 'busy',
        activity: 'in_meeting',
        source: 'app',
        version: 1,
        stale: false,
        platforms: { teams: { raw: { availability: 'Busy', activity: 'InAMeeting' }, devices: {} } },
      });
      expect(body.presence.alice.explain).toMatch(/^teams reported Busy\/InAMeeting \(app tier\)/);
      expect(body.presence.bob).toMatchObject({ status: 'online', reachable_via: ['device'] });
    });

    it('a repeated GET stays fresh: overrides, expiries, new and deleted users show at once', async () => {
      const url = '/v1/presence?user_ids=alice,bob,carol';
      const get = async () => api.json(await api.call({ method: 'GET', url, key: api.key.read }));
      for (let i = 0; i < 3; i++) expect((await get()).presence.bob.status).toBe('online');

      await api.call({ method: 'PUT', url: '/v1/presence/bob/override', payload: { status: 'busy' } });
      expect((await get()).presence.bob).toMatchObject({ status: 'busy', source: 'manual' });
      await api.call({ method: 'DELETE', url: '/v1/presence/bob/override' });
      expect((await get()).presence.bob.status).toBe('online');

      await api.call({ method: 'PUT', url: '/v1/users/carol', payload: {} });
      expect((await get()).unknown).toEqual([]);
      await api.call({ method: 'DELETE', url: '/v1/users/alice' });
      expect((await get()).unknown).toEqual(['alice']);

      api.clock.advance(31_000); // bob's laptop heartbeat lapses; no sweep has run
      expect((await get()).presence.bob).toMatchObject({ status: 'offline', stale: true });
    });

    it('POST /v1/presence/query gives the same answer', async () => {
      const get = await api.call({ method: 'GET', url: '/v1/presence?user_ids=alice,nobody' });
      const post = await api.call({
        method: 'POST',
        url: '/v1/presence/query',
        payload: { user_ids: ['alice', 'nobody'] },
      });
      expect(post.statusCode).toBe(200);
      expect(api.json(post)).toEqual(api.json(get));
    });

    it('accepts exactly 1,000 ids', async () => {
      const ids = Array.from({ length: 1000 }, (_, i) => `u${i}`);
      const res = await api.call({ method: 'POST', url: '/v1/presence/query', payload: { user_ids: ids } });
      expect(res.statusCode).toBe(200);
      expect(api.json(res).unknown).toHaveLength(1000);
    });

    it('GET /v1/presence/{id} returns one presence', async () => {
      const res = await api.call({ method: 'GET', url: '/v1/presence/alice' });
      expect(res.statusCode).toBe(200);
      expect(api.json(res)).toMatchObject({ user_id: 'alice', status: 'busy' });
    });

    it('GET /v1/availability says who can be reached and where', async () => {
      await api.svc.engine.reportMapped(
        'bob',
        'slack',
        {
          state: {
            status: 'online',
            activity: null,
            customStatus: null,
            source: 'app',
            raw: 'active',
            label: 'active',
          },
          devices: null,
        },
        60_000,
      );
      const res = await api.call({ method: 'GET', url: '/v1/availability?user_ids=alice,bob,zed' });
      expect(res.statusCode).toBe(200);
      const body = api.json(res);
      expect(body.unknown).toEqual(['zed']);
      expect(body.availability.alice).toMatchObject({ available: false, status: 'busy', best_channel: null });
      expect(body.availability.bob).toMatchObject({
        available: true,
        status: 'online',
        best_channel: 'slack',
        reason: 'online on slack',
      });
    });

    it('PUT and DELETE the override, with the default expiries of the contract', async () => {
      const busy = await api.call({
        method: 'PUT',
        url: '/v1/presence/bob/override',
        payload: { status: 'busy', activity: 'focus' },
      });
      expect(busy.statusCode).toBe(200);
      expect(api.json(busy)).toMatchObject({
        status: 'busy',
        activity: 'focus',
        source: 'manual',
        expires_at: new Date(api.clock.now() + 86_400_000).toISOString(),
      });
      const away = await api.call({
        method: 'PUT',
        url: '/v1/presence/bob/override',
        payload: { status: 'away', custom_status: { text: 'On leave', emoji: ':palm_tree:' } },
      });
      expect(api.json(away)).toMatchObject({
        status: 'away',
        custom_status: { text: 'On leave', emoji: ':palm_tree:', expires_at: null },
        expires_at: new Date(api.clock.now() + 7 * 86_400_000).toISOString(),
      });
      const ttl = await api.call({
        method: 'PUT',
        url: '/v1/presence/bob/override',
        payload: { status: 'idle', ttl_seconds: 60 },
      });
      expect(api.json(ttl).expires_at).toBe(new Date(api.clock.now() + 60_000).toISOString());
      expect((await api.call({ method: 'DELETE', url: '/v1/presence/bob/override' })).statusCode).toBe(204);
      expect((await api.call({ method: 'DELETE', url: '/v1/presence/bob/override' })).statusCode).toBe(204);
      expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/bob' }))).toMatchObject({
        status: 'online',
        override: null,
      });
    });

    it('GET history lists transitions newest first, within since/until and limit', async () => {
      api.clock.advance(1000);
      await api.call({ method: 'PUT', url: '/v1/presence/alice/override', payload: { status: 'away' } });
      api.clock.advance(1000);
      await api.call({ method: 'DELETE', url: '/v1/presence/alice/override' });
      const res = await api.call({ method: 'GET', url: '/v1/presence/alice/history' });
      expect(res.statusCode).toBe(200);
      const t = api.json(res).transitions;
      expect(t.map((x: { version: number }) => x.version)).toEqual([3, 2, 1]);
      expect(t[0]).toMatchObject({
        from: { status: 'away', activity: null },
        to: { status: 'busy', activity: 'in_meeting' },
        platform: 'override',
      });
      expect(t[2]).toMatchObject({
        from: { status: 'offline' },
        to: { status: 'busy' },
        platform: 'teams',
        source: 'app',
      });
      const since = new Date(api.clock.now() - 1500).toISOString();
      const limited = api.json(
        await api.call({ method: 'GET', url: `/v1/presence/alice/history?since=${since}&limit=5` }),
      );
      expect(limited.transitions.map((x: { version: number }) => x.version)).toEqual([3, 2]);
      const one = api.json(await api.call({ method: 'GET', url: '/v1/presence/alice/history?limit=1' }));
      expect(one.transitions).toHaveLength(1);
    });
  });

  describe('rejects bad input, changing nothing', () => {
    const snapshot = () =>
      api.svc
        .db!.prepare(
          'SELECT (SELECT count(*) FROM transitions) t, (SELECT count(*) FROM overrides) o, (SELECT max(version) FROM aggregates) v',
        )
        .get();

    it.each(
      (
        [
          ['/v1/presence', 'no user_ids'],
          ['/v1/presence?user_ids=', 'empty list'],
          ['/v1/presence?user_ids=a,,b', 'empty id'],
          ['/v1/presence?user_ids=has%20space', 'bad character'],
          [`/v1/presence?user_ids=${'x'.repeat(129)}`, 'id too long'],
          [
            `/v1/presence?user_ids=${Array.from({ length: 1001 }, (_, i) => `u${i}`).join(',')}`,
            'over 1,000 ids',
          ],
          ['/v1/presence?user_ids=alice&extra=1', 'unknown parameter'],
          ['/v1/availability?user_ids=a%2Fb', 'bad character'],
          ['/v1/presence/alice/history?limit=0', 'limit too small'],
          ['/v1/presence/alice/history?limit=abc', 'limit not a number'],
          ['/v1/presence/alice/history?since=yesterday', 'since not a time'],
          [
            '/v1/presence/alice/history?since=2026-11-24T00:00:00Z&until=2026-11-23T00:00:00Z',
            'since after until',
          ],
        ] as const
      ).map(([url, why]) => ({ url, why })),
    )('GET with $why → 400', async ({ url }) => {
      expectError(await api.call({ method: 'GET', url }), 400, 'invalid_request');
    });

    it('an unknown user is 404 on every per-user route', async () => {
      expectError(await api.call({ method: 'GET', url: '/v1/presence/nobody' }), 404, 'not_found');
      expectError(await api.call({ method: 'GET', url: '/v1/presence/nobody/history' }), 404, 'not_found');
      expectError(
        await api.call({ method: 'PUT', url: '/v1/presence/nobody/override', payload: { status: 'busy' } }),
        404,
        'not_found',
      );
      expectError(
        await api.call({ method: 'DELETE', url: '/v1/presence/nobody/override' }),
        404,
        'not_found',
      );
      expect(api.svc.engine.hasUser('nobody')).toBe(false);
    });

    it.each(
      (
        [
          [{}, 'no status'],
          [{ status: 'sleeping' }, 'unknown status'],
          [{ status: 'busy', activity: 'napping' }, 'unknown activity'],
          [{ status: 'busy', ttl_seconds: 0 }, 'ttl too small'],
          [{ status: 'busy', ttl_seconds: 1.5 }, 'ttl not whole'],
          [{ status: 'busy', ttl_seconds: 60, expires_at: '2030-01-01T00:00:00Z' }, 'both expiries'],
          [{ status: 'busy', expires_at: '2020-01-01T00:00:00Z' }, 'expiry in the past'],
          [{ status: 'busy', expires_at: 'tomorrow' }, 'expiry not a time'],
          [{ status: 'busy', custom_status: { text: 'x'.repeat(101) } }, 'status text too long'],
          [{ status: 'busy', custom_status: { emoji: ':x:' } }, 'status without text'],
          [{ status: 'busy', colour: 'red' }, 'unknown field'],
          [[], 'not an object'],
        ] as [unknown, string][]
      ).map(([payload, why]) => ({ payload, why })),
    )('PUT override with $why → 400', async ({ payload }) => {
      const before = snapshot();
      expectError(
        await api.call({ method: 'PUT', url: '/v1/presence/alice/override', payload: payload as object }),
        400,
        'invalid_request',
      );
      expect(snapshot()).toEqual(before);
    });

    it.each(
      (
        [
          [{}, 'no ids'],
          [{ user_ids: [] }, 'empty list'],
          [{ user_ids: 'alice' }, 'not a list'],
          [{ user_ids: [1, 2] }, 'not strings'],
          [{ user_ids: Array.from({ length: 1001 }, (_, i) => `u${i}`) }, 'over 1,000'],
          [{ user_ids: ['alice'], more: true }, 'unknown field'],
        ] as [object, string][]
      ).map(([payload, why]) => ({ payload, why })),
    )('POST /v1/presence/query with $why → 400', async ({ payload }) => {
      expectError(
        await api.call({ method: 'POST', url: '/v1/presence/query', payload }),
        400,
        'invalid_request',
      );
    });

    it('names the bad field in details', async () => {
      const res = await api.call({
        method: 'PUT',
        url: '/v1/presence/alice/override',
        payload: { status: 'sleeping' },
      });
      const body = api.json(res);
      expect(body.error.details[0]).toMatchObject({ path: ['body', 'status'] });
      expect(body.error.message).toMatch(/status/);
    });
  });
});
