/**
 * Every route the app registers, with a viewer token: the presence reads, availability, history
 * and the user's own device heartbeats accept it; every other route with an API key refuses it with
 * 403 and the error body. The routes come from the app itself, so a new one cannot be forgotten.
 */

import type { InjectOptions } from 'fastify';

import { expectError, testApi, type TestApi } from '../helpers/http';

/** The routes a viewer token is accepted on, each with a request that succeeds. */
const ACCEPTED: Record<string, InjectOptions> = {
  'GET /v1/presence': { url: '/v1/presence?user_ids=alice,bob' },
  'POST /v1/presence/query': { url: '/v1/presence/query', payload: { user_ids: ['alice'] } },
  'GET /v1/presence/:user_id': { url: '/v1/presence/alice' },
  'GET /v1/presence/:user_id/history': { url: '/v1/presence/alice/history' },
  'GET /v1/availability': { url: '/v1/availability?user_ids=alice' },
  'POST /v1/heartbeats': { url: '/v1/heartbeats', payload: { user_id: 'bob', device_id: 'phone' } },
  // The streams, through inject: past auth, each refuses what inject cannot be (a stream without
  // ids, a request that is not an upgrade) with a 400. test/http/stream-privacy tests them for real.
  'GET /v1/stream': { url: '/v1/stream' },
  'GET /v1/ws': { url: '/v1/ws' },
};
const STREAMS = new Set(['GET /v1/stream', 'GET /v1/ws']);

/** Routes without an API key: they read no credentials at all (health, docs, platform pushes, OAuth's return). */
const PUBLIC =
  /^\/(healthz|readyz|metrics|docs(\/.*)?|dashboard(\/app\.(js|css))?|v1\/inbound\/:platform|v1\/connect\/:platform\/callback)$/;

describe('viewer tokens on every route', () => {
  let api: TestApi;
  let token: string;

  beforeAll(async () => {
    api = await testApi();
    for (const id of ['alice', 'bob'])
      await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: { user_id: id, device_id: 'laptop' },
      });
    token = api.json(
      await api.call({ method: 'POST', url: '/v1/viewer-tokens', payload: { user_id: 'bob' } }),
    ).token;
  });
  afterAll(() => api.close());

  const routes = () =>
    api.svc.app.registeredRoutes.flatMap((r) =>
      [r.method]
        .flat()
        .map((method) => ({ method, url: r.url, scope: r.config?.scope, viewer: r.config?.viewer })),
    );
  const fill = (url: string) =>
    url.replace(/:([a-z_]+)/g, (_, name: string) => (name === 'user_id' ? 'alice' : 'x'));

  it('knows the routes (the table is not empty, and every accepted route exists)', () => {
    const all = routes();
    expect(all.length).toBeGreaterThan(40);
    const keys = new Set(all.map((r) => `${r.method} ${r.url}`));
    for (const k of Object.keys(ACCEPTED)) expect(keys).toContain(k);
  });

  it('accepted exactly where it should be; each accepted route answers with a 2xx', async () => {
    const accepting = routes().filter((r) => r.viewer !== undefined && r.method !== 'HEAD');
    expect(accepting.map((r) => `${r.method} ${r.url}`).sort()).toEqual(Object.keys(ACCEPTED).sort());
    for (const r of accepting) {
      const res = await api.call({
        method: r.method as 'GET',
        key: token,
        ...ACCEPTED[`${r.method} ${r.url}`],
      });
      const k = `${r.method} ${r.url}`;
      if (STREAMS.has(k)) expectError(res, 400, 'invalid_request');
      else expect(`${k} ${res.statusCode}`).toMatch(/ 2\d\d$/);
    }
  });

  it('refused with 403 and the error body on every other route that takes an API key', async () => {
    const refusing = routes().filter((r) => r.scope !== undefined && r.viewer === undefined);
    expect(refusing.length).toBeGreaterThan(25);
    for (const r of refusing) {
      const res = await api.call({
        method: r.method as 'GET',
        url: fill(r.url),
        key: token,
        ...(r.method === 'GET' || r.method === 'HEAD' || r.method === 'DELETE' ? {} : { payload: {} }),
      });
      if (r.method === 'HEAD') {
        expect([`${r.method} ${r.url}`, res.statusCode]).toEqual([`${r.method} ${r.url}`, 403]);
        continue;
      }
      expect(`${r.method} ${r.url} ${res.statusCode}`).toBe(`${r.method} ${r.url} 403`);
      expectError(res, 403, 'forbidden');
    }
  });

  it('every route without an API key is one of the known public ones', () => {
    const open = routes().filter((r) => r.scope === undefined);
    for (const r of open) expect(`${r.method} ${r.url}`).toMatch(new RegExp(` ${PUBLIC.source.slice(1)}`));
  });

  it('the same API key works on the accepted routes (the operator path is unchanged)', async () => {
    for (const [k, req] of Object.entries(ACCEPTED)) {
      const res = await api.call({ method: k.split(' ')[0] as 'GET', ...req });
      if (STREAMS.has(k)) expectError(res, 400, 'invalid_request');
      else expect(`${k} ${res.statusCode}`).toMatch(/ 2\d\d$/);
    }
  });
});
