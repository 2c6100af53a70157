import { expectError, testApi, type TestApi } from '../helpers/http';

describe("Fastify's own errors in the contract's shape", () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(() => api.close());

  it('bad JSON → 400', async () => {
    const res = await api.sendRaw('POST', '/v1/heartbeats', '{"user_id": "a",');
    expectError(res, 400, 'invalid_request');
  });

  it('an empty JSON body → 400', async () => {
    const res = await api.sendRaw('POST', '/v1/heartbeats', '');
    expectError(res, 400, 'invalid_request');
  });

  it('a body over 1 MiB → 413', async () => {
    const res = await api.sendRaw(
      'POST',
      '/v1/presence/query',
      JSON.stringify({ user_ids: ['a'], pad: 'x'.repeat(1024 * 1024) }),
    );
    expectError(res, 413, 'payload_too_large');
  });

  it('a content type the route does not take → 415 unsupported_media_type', async () => {
    const res = await api.sendRaw('POST', '/v1/heartbeats', '<user_id>a</user_id>', 'application/xml');
    expectError(res, 415, 'unsupported_media_type');
    // text/plain is parsed as a string, which the schema then refuses.
    const text = await api.sendRaw('POST', '/v1/heartbeats', 'user_id=a', 'text/plain');
    expectError(text, 400, 'invalid_request');
  });

  it('an unknown route or method → 404', async () => {
    expectError(await api.call({ method: 'GET', url: '/v1/nothing' }), 404, 'not_found');
    expectError(await api.call({ method: 'PATCH', url: '/v1/presence' }), 404, 'not_found');
    expectError(await api.call({ method: 'GET', url: '/', key: null }), 404, 'not_found');
  });

  it('keeps a sane caller request id and makes one otherwise', async () => {
    const mine = await api.call({
      method: 'GET',
      url: '/v1/nothing',
      headers: { 'x-request-id': 'trace-123' },
    });
    expect(mine.headers['x-request-id']).toBe('trace-123');
    expect(api.json(mine).error.request_id).toBe('trace-123');
    const odd = await api.call({
      method: 'GET',
      url: '/v1/nothing',
      headers: { 'x-request-id': 'bad id\twith tab' },
    });
    expect(odd.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});
