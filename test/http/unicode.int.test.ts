import { createHash } from 'node:crypto';

import type { InjectOptions } from 'fastify';

import { expectError, testApi, type TestApi } from '../helpers/http';

/**
 * Text that is not valid Unicode (a lone UTF-16 surrogate, bytes that are not UTF-8) and NUL
 * characters are refused with 400 in every field of every route, before any handler runs: the
 * check is one, central, so each row below says the same `details` code whatever the field's
 * own schema would have said, and the database is byte for byte what it was.
 */
describe('strings that are not valid Unicode, and NUL, in every field', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
    await api.svc.engine.putUser('alice', { displayName: 'Alice' });
    await api.svc.engine.linkAccount('alice', { platform: 'slack', workspaceId: 'T1', externalId: 'U1' });
  });
  afterAll(() => api.close());

  /** Every table, whole: nothing a refused request did can hide from it. */
  const digest = (): string => {
    const db = api.svc.db;
    const tables = db!.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[];
    const hash = createHash('sha256');
    for (const { name } of tables)
      hash.update(name + JSON.stringify(db!.prepare(`SELECT * FROM "${name}"`).all()));
    return hash.update(JSON.stringify(api.svc.engine.get('alice'))).digest('hex');
  };

  type Body = Record<string, unknown>;
  interface Row {
    method: InjectOptions['method'];
    /** `{x}` marks a path parameter; `?` the query. */
    url: string;
    body?: Body;
  }
  const ROUTES: Row[] = [
    { method: 'POST', url: '/v1/heartbeats', body: { user_id: 'alice', device_id: 'd1', status: 'online' } },
    {
      method: 'PUT',
      url: '/v1/presence/{alice}/override',
      body: {
        status: 'busy',
        activity: 'focus',
        custom_status: { text: 'Writing', emoji: ':pen:', expires_at: '2026-11-24T00:00:00Z' },
      },
    },
    { method: 'DELETE', url: '/v1/presence/{alice}/override' },
    { method: 'PUT', url: '/v1/users/{bob}', body: { display_name: 'Bob', timezone: 'Europe/Paris' } },
    { method: 'DELETE', url: '/v1/users/{alice}' },
    {
      method: 'POST',
      url: '/v1/users/{alice}/accounts',
      body: { platform: 'zoom', external_id: 'z-1', workspace_id: 'acct-1' },
    },
    { method: 'DELETE', url: '/v1/users/{alice}/accounts/{slack}/{U1}?workspace_id=T1' },
    {
      method: 'POST',
      url: '/v1/signals',
      body: {
        platform: 'slack',
        external_id: 'U1',
        workspace_id: 'T1',
        kind: 'message',
        at: '2026-11-23T13:59:00Z',
      },
    },
    { method: 'POST', url: '/v1/presence/query', body: { user_ids: ['alice', 'bob'] } },
    { method: 'GET', url: '/v1/presence?user_ids=alice' },
    { method: 'GET', url: '/v1/availability?user_ids=alice' },
    {
      method: 'GET',
      url: '/v1/presence/{alice}/history?since=2026-11-23T00:00:00Z&until=2026-11-24T00:00:00Z',
    },
    { method: 'POST', url: '/v1/keys', body: { scopes: ['read'], name: 'ci' } },
    { method: 'DELETE', url: '/v1/keys/{0123456789abcdef}' },
    {
      method: 'POST',
      url: '/v1/webhooks',
      body: { url: 'https://hooks.example.com/presence', events: ['presence.changed'], user_ids: ['alice'] },
    },
    { method: 'PATCH', url: '/v1/webhooks/{wh_1}', body: { url: 'https://hooks.example.com/other' } },
    { method: 'POST', url: '/v1/webhooks/{wh_1}/replay', body: { since: '2026-11-23T00:00:00Z' } },
    { method: 'GET', url: '/v1/webhooks/{wh_1}/deliveries?status=failed' },
    { method: 'GET', url: '/v1/connect/{discord}?user_id=alice&redirect_uri=https://app.example.com/done' },
    { method: 'GET', url: '/v1/connect/{discord}/callback?code=abc&state=xyz' },
    { method: 'DELETE', url: '/v1/connections/{c1}' },
  ];

  /** Every string in a body, as a path of keys, arrays included. */
  const stringPaths = (v: unknown, path: (string | number)[] = []): (string | number)[][] => {
    if (typeof v === 'string') return [path];
    if (Array.isArray(v)) return v.flatMap((x, i) => stringPaths(x, [...path, i]));
    if (typeof v === 'object' && v !== null)
      return Object.entries(v).flatMap(([k, x]) => stringPaths(x, [...path, k]));
    return [];
  };
  const withValue = (body: Body, path: (string | number)[], value: string): Body => {
    const copy = structuredClone(body);
    let at: Record<string | number, unknown> = copy;
    for (const p of path.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
    at[path[path.length - 1]!] = value;
    return copy;
  };
  const urlOf = (url: string): string => url.replace(/[{}]/g, '');

  interface Case {
    name: string;
    req: InjectOptions;
    reason: string;
    path: (string | number)[];
  }
  const cases: Case[] = [];
  for (const r of ROUTES) {
    const body = r.body;
    const json = (b: Body): InjectOptions => ({
      method: r.method,
      url: urlOf(r.url),
      payload: JSON.stringify(b),
      headers: { 'content-type': 'application/json' },
    });
    for (const p of body === undefined ? [] : stringPaths(body)) {
      const field = p.join('.');
      const value = String(p.reduce<any>((o, k) => o[k], body));
      // In the middle and alone; high and low halves.
      cases.push({
        name: `${r.method} ${r.url} body.${field}: lone high surrogate`,
        req: json(withValue(body!, p, `${value}\ud83d`)),
        reason: 'lone_surrogate',
        path: ['body', ...p],
      });
      cases.push({
        name: `${r.method} ${r.url} body.${field}: lone low surrogate`,
        req: json(withValue(body!, p, `\ude00${value}`)),
        reason: 'lone_surrogate',
        path: ['body', ...p],
      });
      cases.push({
        name: `${r.method} ${r.url} body.${field}: NUL`,
        req: json(withValue(body!, p, `${value.slice(0, 1)}\u0000${value.slice(1)}`)),
        reason: 'nul',
        path: ['body', ...p],
      });
    }
    if (body !== undefined) {
      cases.push({
        name: `${r.method} ${r.url} body: a key with a lone surrogate`,
        req: json({ ...body, ['\ud800']: 'x' }),
        reason: 'lone_surrogate',
        path: ['body', '?'],
      });
    }
    // Path parameters and query values: a NUL, percent-encoded (a lone surrogate cannot be
    // percent-encoded as UTF-8; its CESU-8 bytes are the bad-encoding rows below).
    for (const m of r.url.matchAll(/\{([^}]+)\}/g)) {
      const url = urlOf(r.url.replace(m[0], `{${m[1]!.slice(0, 1)}%00${m[1]!.slice(1)}}`));
      cases.push({
        name: `${r.method} ${r.url} path {${m[1]}}: NUL`,
        req: { ...(body === undefined ? {} : json(body)), method: r.method, url },
        reason: 'nul',
        path: ['params'],
      });
    }
    const query = r.url.split('?')[1];
    for (const pair of query === undefined ? [] : query.split('&')) {
      const [name, value] = pair.split('=') as [string, string];
      const url = urlOf(r.url.replace(pair, `${name}=${value.slice(0, 1)}%00${value.slice(1)}`));
      cases.push({
        name: `${r.method} ${r.url} query ${name}: NUL`,
        req: { ...(body === undefined ? {} : json(body)), method: r.method, url },
        reason: 'nul',
        path: ['querystring', name],
      });
    }
  }

  it('has a row for every field', () => {
    // A guard against the table shrinking by accident: 21 routes, 30-odd string fields, 117 cases.
    expect(cases.length).toBeGreaterThan(110);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s → 400, nothing stored', async (_name, c) => {
    const before = digest();
    const res = await api.call(c.req);
    expectError(res, 400, 'invalid_request');
    const detail = api.json(res).error.details[0];
    expect(detail).toMatchObject({ code: c.reason });
    expect(detail.path.slice(0, c.path.length)).toEqual(c.path);
    expect(digest()).toBe(before);
  });

  it('an account id with a lone surrogate: 400, and no account row', async () => {
    const before = digest();
    const res = await api.sendRaw(
      'POST',
      '/v1/users/alice/accounts',
      '{"platform":"zoom","external_id":"z\\ud800"}',
    );
    expectError(res, 400, 'invalid_request');
    expect(api.json(res).error.message).toBe(
      'invalid external_id: not valid Unicode (a lone UTF-16 surrogate)',
    );
    expect(api.svc.db!.prepare("SELECT count(*) AS n FROM accounts WHERE platform = 'zoom'").get()).toEqual({
      n: 0,
    });
    expect(digest()).toBe(before);
  });

  it('a display name with a lone surrogate is refused, not stored as U+FFFD', async () => {
    const res = await api.sendRaw('PUT', '/v1/users/carol', '{"display_name":"Carol \\udc00"}');
    expectError(res, 400, 'invalid_request');
    expectError(await api.call({ method: 'GET', url: '/v1/users/carol' }), 404, 'not_found');
  });

  it('a body whose bytes are not UTF-8 → 400 (no silent U+FFFD), nothing stored', async () => {
    const before = digest();
    for (const bytes of [
      [0xff, 0xfe], // never in UTF-8
      [0xed, 0xa0, 0x80], // a surrogate encoded as if it were a character (CESU-8)
      [0xc3], // a sequence cut short
      [0xc0, 0xaf], // an overlong "/"
    ]) {
      const payload = Buffer.concat([
        Buffer.from('{"display_name":"a'),
        Buffer.from(bytes),
        Buffer.from('"}'),
      ]);
      const res = await api.sendRaw('PUT', '/v1/users/dave', payload);
      expectError(res, 400, 'invalid_request');
      expect(api.json(res).error.details[0]).toMatchObject({ code: 'not_utf8', path: ['body'] });
    }
    expect(digest()).toBe(before);
  });

  it('a query or path whose percent-encoding is not UTF-8 → 400, not kept as the raw escapes', async () => {
    const before = digest();
    for (const url of [
      '/v1/presence?user_ids=%ED%A0%80', // an encoded lone surrogate
      '/v1/presence?user_ids=%zz',
      '/v1/presence/alice/history?since=%C3',
      '/v1/users/alice/accounts/slack/U1?workspace_id=T%ED%B0%80',
      '/v1/connect/discord/callback?code=%ED%A0%80&state=x',
      '/v1/connect/discord/callback?c%FFode=1',
    ]) {
      const res = await api.call({ method: url.includes('accounts') ? 'DELETE' : 'GET', url });
      expectError(res, 400, 'invalid_request');
      expect(api.json(res).error.details[0]).toMatchObject({ code: 'bad_encoding', path: ['querystring'] });
    }
    for (const url of ['/v1/presence/al%ED%A0%80ice', '/v1/users/%C3']) {
      const res = await api.call({ method: 'DELETE', url });
      expectError(res, 400, 'invalid_request');
      expect(api.json(res).error.details[0]).toMatchObject({ code: 'FST_ERR_BAD_URL' });
    }
    expect(digest()).toBe(before);
  });

  it('valid text outside ASCII is untouched: emoji pairs, CJK, a combining mark', async () => {
    const name = 'Zoë 😀 李 e\u0301';
    const res = await api.call({ method: 'PUT', url: '/v1/users/erin', payload: { display_name: name } });
    expect(res.statusCode).toBe(201);
    expect(api.json(await api.call({ method: 'GET', url: '/v1/users/erin' })).display_name).toBe(name);
    const q = await api.call({
      method: 'GET',
      url: `/v1/presence/alice/history?since=${encodeURIComponent('2026-11-23T00:00:00+01:00')}`,
    });
    expect(q.statusCode).toBe(200);
  });
});
