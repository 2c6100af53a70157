import { createHash } from 'node:crypto';

import type { InjectOptions } from 'fastify';

import { Random } from '../../connectors/simulated/random';
import { testApi, type TestApi } from '../helpers/http';

/**
 * A few hundred malformed requests, built from valid ones by one sure defect each, plus plain
 * garbage: no 500, always the contract's error body, and stored state exactly as before.
 */
describe('fuzz: malformed requests', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
    await api.svc.engine.putUser('alice', { displayName: 'Alice' });
    await api.svc.engine.linkAccount('alice', { platform: 'slack', workspaceId: 'T1', externalId: 'U1' });
    await api.svc.engine.heartbeat('alice', 'phone', 'online', null, 600_000);
  });
  afterAll(() => api.close());

  const stateDigest = (): string => {
    const db = api.svc.db;
    const dump = ['users', 'accounts', 'observations', 'overrides', 'aggregates', 'transitions', 'api_keys']
      .map((t) => JSON.stringify(db!.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all()))
      .join('\n');
    return createHash('sha256')
      .update(dump + JSON.stringify(api.svc.engine.get('alice')))
      .digest('hex');
  };

  const rng = new Random(20261123);
  const junk = (): unknown =>
    rng.pick<() => unknown>([
      () => null,
      () => rng.int(-1e9, 1e9),
      () => rng.next() * 1e308,
      () => 'x'.repeat(rng.int(0, 3000)),
      () => '\u0000\u202e<script>',
      () => [junk(), junk()],
      () => ({ ['__proto__']: { polluted: true }, constructor: 'x' }),
      () => ({ nested: { deeper: [1, { a: junk() }] } }),
      () => true,
    ])();

  // Valid requests that would change state, each with the ways to break it surely.
  const bases: {
    method: InjectOptions['method'];
    url: string;
    payload: Record<string, unknown>;
    required: string[];
  }[] = [
    {
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'fuzz', device_id: 'd1', status: 'online', ttl_seconds: 30 },
      required: ['user_id', 'device_id'],
    },
    {
      method: 'PUT',
      url: '/v1/presence/alice/override',
      payload: { status: 'busy', activity: 'focus', ttl_seconds: 60 },
      required: ['status'],
    },
    {
      method: 'PUT',
      url: '/v1/users/fuzz',
      payload: { display_name: 'Fuzz', timezone: 'UTC' },
      required: [],
    },
    {
      method: 'POST',
      url: '/v1/users/alice/accounts',
      payload: { platform: 'zoom', external_id: 'z-fuzz' },
      required: ['platform', 'external_id'],
    },
    { method: 'POST', url: '/v1/keys', payload: { scopes: ['read'] }, required: ['scopes'] },
  ];

  function defect(base: (typeof bases)[number]): InjectOptions {
    const payload = { ...base.payload };
    const keys = Object.keys(payload);
    const field = rng.pick(keys);
    switch (rng.int(0, 7)) {
      case 0:
        payload[`x_${rng.int(0, 99)}`] = junk(); // unknown field
        break;
      case 1:
        payload[field] =
          typeof payload[field] === 'number' ? `${String(payload[field])}` : rng.pick([42, [], {}, false]); // wrong type
        break;
      case 2:
        if (base.required.length === 0)
          payload.unexpected = true; // nothing required: an unknown field instead
        else delete payload[rng.pick(base.required)]; // a required field missing
        break;
      case 3:
        return {
          method: base.method,
          url: base.url,
          payload: JSON.stringify(payload).slice(0, rng.int(1, 20)),
          headers: { 'content-type': 'application/json' },
        };
      case 4:
        return {
          method: base.method,
          url: base.url,
          payload: JSON.stringify(payload),
          headers: {
            'content-type': rng.pick(['text/plain', 'application/xml', 'multipart/form-data; boundary=x']),
          },
        };
      case 5: {
        const bad = rng.pick(['a b', '%00', 'x'.repeat(200), '..%2F..', '😀']);
        // A bad id where the path has one; otherwise a path that does not exist.
        const url = /alice|fuzz/.test(base.url) ? base.url.replace(/alice|fuzz/, bad) : `${base.url}/${bad}`;
        return { method: base.method, url, payload };
      }
      case 6:
        return {
          method: base.method,
          url: base.url,
          payload: JSON.stringify(rng.pick([[payload], 'text', 12, null])),
          headers: { 'content-type': 'application/json' },
        };
      default:
        return {
          method: base.method,
          url: base.url,
          payload: { ...payload, ...{ [keys[keys.length - 1]!]: 'x'.repeat(rng.int(300, 5000)) } },
        };
    }
    return { method: base.method, url: base.url, payload };
  }

  function garbage(): InjectOptions {
    const method = rng.pick(['GET', 'POST', 'PUT', 'DELETE', 'PATCH'] as const);
    const path = rng.pick([
      '/v1/presence',
      '/v1/availability',
      '/v1/presence/alice/history',
      '/v1/users',
      '/v1/keys/zz',
      '/v1/heartbeats',
      '/v1/presence/query',
    ]);
    const query = rng.pick([
      '?user_ids=',
      '?user_ids=a,,b',
      '?limit=-1',
      '?since=never',
      '?user_ids=' + 'a,'.repeat(1001),
      '?%zz=1',
    ]);
    return {
      method,
      url: path + query,
      payload: method === 'GET' || method === 'DELETE' ? undefined : (junk() as object),
    };
  }

  it('answers 300 malformed requests with 4xx and the error body, and changes nothing', async () => {
    const before = stateDigest();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 300; i++) {
      const req = i % 3 === 2 ? garbage() : defect(rng.pick(bases));
      const res = await api.call(req);
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
      if (res.statusCode < 400 || res.statusCode >= 500) {
        throw new Error(
          `${req.method} ${JSON.stringify(req.url)} ${JSON.stringify(req.payload)?.slice(0, 200)} → ${res.statusCode} ${res.body.slice(0, 300)}`,
        );
      }
      const body = JSON.parse(res.body);
      expect(body.error.request_id).toBe(res.headers['x-request-id']);
    }
    expect(stateDigest()).toBe(before);
    expect([...statuses.keys()].every((s) => s >= 400 && s < 500)).toBe(true);
    expect(statuses.get(400)).toBeGreaterThan(100);
  });
});
