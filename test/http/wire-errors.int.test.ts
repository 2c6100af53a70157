import { connect } from 'node:net';

import type { InjectOptions } from 'fastify';

import { expectError, testApi, type TestApi } from '../helpers/http';

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends bytes on a fresh connection, ends our side, and reads until the server closes: what a
 * client sees, with Node's HTTP parser in the way (inject() skips it). No clock involved: the
 * server answers, then closes; jest's timeout is the only limit.
 */
function rawRequest(port: number, bytes: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const end = text.indexOf('\r\n\r\n');
      const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ status: Number(statusLine?.split(' ')[1]), headers, body: text.slice(end + 4) });
    });
    socket.end(bytes);
  });
}

/** The contract's error body, whole, with the request id also in the header. */
function expectWireError(res: RawResponse, status: number, code: string, reason: string): void {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  const body = JSON.parse(res.body) as {
    error: { code: string; message: string; request_id: string; details: { code: string }[] };
  };
  expect(Object.keys(body)).toEqual(['error']);
  expect(Object.keys(body.error).sort()).toEqual(['code', 'details', 'message', 'request_id']);
  expect(body.error.code).toBe(code);
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.request_id.length).toBeGreaterThan(0);
  expect(res.headers['x-request-id']).toBe(body.error.request_id);
  expect(body.error.details[0]?.code).toBe(reason);
}

describe('errors before a route runs, over a real socket, in the contract body', () => {
  let api: TestApi;
  let port: number;
  let auth: string;
  beforeAll(async () => {
    api = await testApi();
    await api.svc.app.listen({ port: 0, host: '127.0.0.1' });
    port = (api.svc.app.server.address() as { port: number }).port;
    auth = `Authorization: Bearer ${api.key.all}\r\n`;
  });
  afterAll(() => api.close());

  const users = () => (api.svc.db!.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;

  it('bad percent-encoding in the path → 400 FST_ERR_BAD_URL', async () => {
    const res = await rawRequest(port, `GET /v1/presence/%ZZ HTTP/1.1\r\nHost: x\r\n${auth}\r\n`);
    expectWireError(res, 400, 'invalid_request', 'FST_ERR_BAD_URL');
    // The path is not echoed back.
    expect(res.body).not.toContain('%ZZ');
  });

  it('a path parameter over 300 characters → 414', async () => {
    const res = await rawRequest(
      port,
      `GET /v1/presence/${'a'.repeat(301)} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`,
    );
    expectWireError(res, 414, 'invalid_request', 'FST_ERR_MAX_PARAM_LENGTH');
    expect(res.body).not.toContain('a'.repeat(301));
  });

  it('headers over 16 KiB → 431 (refused by Node before Fastify)', async () => {
    const res = await rawRequest(
      port,
      `GET /v1/presence/alice HTTP/1.1\r\nHost: x\r\n${auth}X-Pad: ${'p'.repeat(20_000)}\r\n\r\n`,
    );
    expectWireError(res, 431, 'invalid_request', 'HPE_HEADER_OVERFLOW');
  });

  const put = (headers: string, body: string): string =>
    `PUT /v1/users/bob HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\n${headers}\r\n${body}`;

  it('a body shorter than its Content-Length, then the connection ends → 400, nothing stored', async () => {
    const before = users();
    const res = await rawRequest(port, put('Content-Length: 100\r\n', '{"display_name":"Bob"}'));
    expectWireError(res, 400, 'invalid_request', 'HPE_INVALID_EOF_STATE');
    expect(users()).toBe(before);
  });

  it('a Content-Length that is not a number → 400', async () => {
    const res = await rawRequest(port, put('Content-Length: 2x\r\n', '{}'));
    expectWireError(res, 400, 'invalid_request', 'HPE_INVALID_CONTENT_LENGTH');
  });

  it('Content-Length with Transfer-Encoding: chunked → 400', async () => {
    const res = await rawRequest(
      port,
      put('Content-Length: 2\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'),
    );
    expectWireError(res, 400, 'invalid_request', 'HPE_INVALID_TRANSFER_ENCODING');
    expect(users()).toBe(0);
  });

  it('bytes that are not HTTP → 400', async () => {
    const res = await rawRequest(port, 'HELLO THERE\r\n\r\n');
    expectWireError(res, 400, 'invalid_request', 'HPE_INVALID_METHOD');
  });

  it('a good request on the same server still works', async () => {
    const res = await rawRequest(
      port,
      put('Content-Length: 22\r\nConnection: close\r\n', '{"display_name":"Bob"}'),
    );
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ user_id: 'bob', display_name: 'Bob' });
  });
});

describe('errors Fastify raises itself, in the contract body', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(() => api.close());

  it('a Content-Length that does not match the body (inject) → 400', async () => {
    for (const length of ['3', '999']) {
      const res = await api.call({
        method: 'PUT',
        url: '/v1/users/bob',
        payload: '{"display_name":"Bob"}',
        headers: { 'content-type': 'application/json', 'content-length': length },
      });
      expectError(res, 400, 'invalid_request');
      expect(api.json(res).error.details[0].code).toBe('FST_ERR_CTP_INVALID_CONTENT_LENGTH');
    }
    expectError(await api.call({ method: 'GET', url: '/v1/users/bob' }), 404, 'not_found');
  });

  it('bad percent-encoding and over-long segments also on unknown paths', async () => {
    const bad = await api.call({ method: 'GET', url: '/v1/nothing/%E0%A4%A' });
    expectError(bad, 400, 'invalid_request');
    expect(bad.headers['x-request-id']).toBe(api.json(bad).error.request_id);
    expectError(
      await api.call({ method: 'GET', url: `/v1/users/${'u'.repeat(301)}` }),
      414,
      'invalid_request',
    );
  });

  it('JSON in a charset other than UTF-8 → 415, nothing stored; UTF-8 in any spelling is fine', async () => {
    for (const type of [
      'application/json; charset=iso-8859-1',
      'application/json; charset=latin1',
      'application/json;charset="UTF-16"',
      'application/json; charset=windows-1252',
    ]) {
      const res = await api.call({
        method: 'PUT',
        url: '/v1/users/carol',
        payload: '{"display_name":"Carol"}',
        headers: { 'content-type': type },
      });
      expectError(res, 415, 'unsupported_media_type');
    }
    expectError(await api.call({ method: 'GET', url: '/v1/users/carol' }), 404, 'not_found');
    for (const [i, type] of [
      'application/json',
      'application/json; charset=utf-8',
      'application/json; charset=UTF-8',
      'application/json;charset="utf-8"',
      'application/json; charset=utf8',
    ].entries()) {
      const res = await api.call({
        method: 'PUT',
        url: `/v1/users/ok${i}`,
        payload: '{"display_name":"Ok"}',
        headers: { 'content-type': type },
      });
      expect(res.statusCode).toBe(201);
    }
  });
});

describe('unknown query parameters are refused on every route', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
    await api.svc.engine.putUser('alice', { displayName: 'Alice' });
  });
  afterAll(() => api.close());

  const ROUTES: { method: InjectOptions['method']; url: string; payload?: object; key?: null }[] = [
    { method: 'GET', url: '/healthz', key: null },
    { method: 'GET', url: '/readyz', key: null },
    { method: 'GET', url: '/metrics', key: null },
    { method: 'GET', url: '/v1/connectors' },
    { method: 'GET', url: '/v1/presence?user_ids=alice' },
    { method: 'POST', url: '/v1/presence/query', payload: { user_ids: ['alice'] } },
    { method: 'GET', url: '/v1/presence/alice' },
    { method: 'GET', url: '/v1/availability?user_ids=alice' },
    { method: 'PUT', url: '/v1/presence/alice/override', payload: { status: 'busy' } },
    { method: 'DELETE', url: '/v1/presence/alice/override' },
    { method: 'GET', url: '/v1/presence/alice/history' },
    { method: 'POST', url: '/v1/heartbeats', payload: { user_id: 'alice', device_id: 'phone' } },
    {
      method: 'POST',
      url: '/v1/signals',
      payload: { user_id: 'alice', platform: 'slack', kind: 'active', at: '2026-11-23T13:59:00Z' },
    },
    { method: 'PUT', url: '/v1/users/alice', payload: {} },
    { method: 'GET', url: '/v1/users/alice' },
    { method: 'DELETE', url: '/v1/users/alice' },
    { method: 'POST', url: '/v1/users/alice/accounts', payload: { platform: 'slack', external_id: 'U1' } },
    { method: 'DELETE', url: '/v1/users/alice/accounts/slack/U1' },
    { method: 'POST', url: '/v1/keys', payload: { scopes: ['read'] } },
    { method: 'GET', url: '/v1/keys' },
    { method: 'DELETE', url: '/v1/keys/0123456789abcdef' },
    { method: 'POST', url: '/v1/webhooks', payload: { url: 'https://hooks.example.com/x' } },
    { method: 'GET', url: '/v1/webhooks' },
    { method: 'GET', url: '/v1/webhooks/wh_1' },
    { method: 'PATCH', url: '/v1/webhooks/wh_1', payload: { enabled: true } },
    { method: 'DELETE', url: '/v1/webhooks/wh_1' },
    { method: 'GET', url: '/v1/webhooks/wh_1/deliveries' },
    { method: 'POST', url: '/v1/webhooks/wh_1/replay', payload: { since: '2026-11-23T00:00:00Z' } },
    { method: 'GET', url: '/v1/connect/discord?user_id=alice' },
    { method: 'GET', url: '/v1/connections' },
    { method: 'GET', url: '/v1/connections/c1' },
    { method: 'DELETE', url: '/v1/connections/c1' },
  ];

  const state = () =>
    api.svc
      .db!.prepare(
        'SELECT (SELECT count(*) FROM users) u, (SELECT count(*) FROM api_keys) k, (SELECT count(*) FROM observations) o',
      )
      .get();

  it.each(ROUTES)('$method $url with ?surprise=1 → 400, nothing changes', async (r) => {
    const before = state();
    const url = `${r.url}${r.url.includes('?') ? '&' : '?'}surprise=1`;
    const res = await api.call({ method: r.method, url, payload: r.payload, key: r.key });
    expectError(res, 400, 'invalid_request');
    expect(api.json(res).error.details[0]).toMatchObject({
      code: 'unrecognized_keys',
      path: ['querystring'],
    });
    expect(api.json(res).error.message).toContain('surprise');
    expect(state()).toEqual(before);
  });
});
