/**
 * @module test/int/oauth-flow
 * The authorize flow's refusals: each answers a clear 4xx (or 502 for a failing platform) and
 * stores no connection. Runs the real simple-oauth2 client against loopback fakes.
 */

import { AppError } from '../../src/core/errors';
import { STATE_TTL_MS } from '../../src/oauth/flow';
import { oauthHarness, type OAuthHarness } from '../helpers/fake-oauth';
import { tmpDir } from '../helpers/engine';

const connections = (h: OAuthHarness): unknown[] => h.rows('SELECT * FROM connections');

async function failure(p: Promise<unknown>): Promise<AppError> {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  if (!(e instanceof AppError)) throw new Error(`expected an AppError, got ${String(e)}`);
  return e;
}

describe('OAuth authorize flow refusals', () => {
  const tmp = tmpDir();
  let h: OAuthHarness;
  beforeEach(async () => {
    // Discord is configured too (never called), for the state-on-the-wrong-platform case.
    h = await oauthHarness({
      flavor: 'zoom',
      dir: tmp.dir,
      env: { DISCORD_CLIENT_ID: 'd', DISCORD_CLIENT_SECRET: 'ds', DISCORD_API_URL: 'http://127.0.0.1:9/api' },
    });
  });
  afterEach(async () => h.close());
  afterAll(() => tmp.cleanup());

  it('refuses an expired state, and spends it', async () => {
    const { query } = await h.authorizeOnly();
    h.clock.advance(STATE_TTL_MS);
    const e = await failure(h.service.completeCallback('zoom', query));
    expect(e).toMatchObject({
      code: 'invalid_request',
      status: 400,
      message: expect.stringMatching(/expired/),
    });
    expect(e.details[0]?.code).toBe('expired_state');
    expect(h.fake.callsTo('token')).toHaveLength(0);
    expect(connections(h)).toEqual([]);
    expect(h.rows('SELECT * FROM oauth_states')).toEqual([]);
  });

  it('accepts a state just before it expires', async () => {
    const { query } = await h.authorizeOnly();
    h.clock.advance(STATE_TTL_MS - 1);
    await expect(h.service.completeCallback('zoom', query)).resolves.toMatchObject({ health: 'ok' });
  });

  it('refuses a made-up state, a missing state and a state issued for another platform', async () => {
    const { query } = await h.authorizeOnly();
    const forged = await failure(h.service.completeCallback('zoom', { ...query, state: 'x'.repeat(43) }));
    expect(forged).toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/unknown or already used/),
    });
    const none = await failure(h.service.completeCallback('zoom', { code: query.code }));
    expect(none).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/no state/) });
    const repeated = await failure(
      h.service.completeCallback('zoom', { ...query, state: [query.state, query.state] }),
    );
    expect(repeated.code).toBe('invalid_request');
    // None of those spent the real state; used on Discord's callback, it is refused and spent.
    const crossed = await failure(h.service.completeCallback('discord', query));
    expect(crossed).toMatchObject({
      code: 'invalid_request',
      message: 'this state was issued for zoom, not discord',
    });
    expect(await failure(h.service.completeCallback('zoom', query))).toMatchObject({
      message: expect.stringMatching(/unknown or already used/),
    });
    expect(h.fake.callsTo('token')).toHaveLength(0);
    expect(connections(h)).toEqual([]);
  });

  it('refuses the platform’s error redirect (access_denied → 403) and spends the state', async () => {
    h.fake.deny('access_denied');
    const { query } = await h.authorizeOnly();
    expect(query).toMatchObject({ error: 'access_denied' });
    const e = await failure(h.service.completeCallback('zoom', query));
    expect(e).toMatchObject({
      code: 'forbidden',
      status: 403,
      message: expect.stringMatching(/did not grant access: access_denied/),
    });
    expect(h.rows('SELECT * FROM oauth_states')).toEqual([]);
    const other = await failure(
      h.service.completeCallback('zoom', {
        error: 'server_error',
        error_description: 'boom\u0000\nline',
        state: 'x',
      }),
    );
    expect(other).toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/server_error \(boom line\)/),
    });
    expect(connections(h)).toEqual([]);
  });

  it('refuses a callback without a code, and the state cannot be reused afterwards', async () => {
    const { query } = await h.authorizeOnly();
    const e = await failure(h.service.completeCallback('zoom', { state: query.state }));
    expect(e).toMatchObject({ code: 'invalid_request', message: expect.stringMatching(/no code/) });
    const again = await failure(h.service.completeCallback('zoom', query));
    expect(again.message).toMatch(/unknown or already used/);
    expect(connections(h)).toEqual([]);
  });

  it('refuses unknown platforms (404) and platforms without OAuth (400), WhatsApp included', async () => {
    await expect(h.service.startAuthorize('myspace', 'alice')).rejects.toThrow(
      expect.objectContaining({ code: 'not_found', status: 404 }) as Error,
    );
    await expect(h.service.startAuthorize('whatsapp', 'alice')).rejects.toThrow(
      expect.objectContaining({
        code: 'invalid_request',
        message: expect.stringMatching(/system-user access token/),
      }) as Error,
    );
    await expect(h.service.startAuthorize('device', 'alice')).rejects.toThrow(
      expect.objectContaining({ code: 'invalid_request' }) as Error,
    );
    return expect(h.service.completeCallback('whatsapp', { code: 'c', state: 's' })).rejects.toMatchObject({
      code: 'invalid_request',
    });
  });

  it('refuses a platform without credentials, an unknown user and a malformed user id', async () => {
    await expect(h.service.startAuthorize('slack', 'alice')).rejects.toThrow(
      /SLACK_CLIENT_ID and SLACK_CLIENT_SECRET/,
    );
    await expect(h.service.startAuthorize('zoom', 'nobody')).rejects.toThrow(
      expect.objectContaining({ code: 'not_found' }) as Error,
    );
    await expect(h.service.startAuthorize('zoom', 'bad id!')).rejects.toThrow(
      expect.objectContaining({ code: 'invalid_request' }) as Error,
    );
    await expect(h.service.startAuthorize('zoom', 'alice', 'javascript:alert(1)')).rejects.toThrow(
      /http or https/,
    );
    expect(h.rows('SELECT * FROM oauth_states')).toEqual([]);
  });

  it('uses a redirect URI given by the caller (the CLI’s local listener) for both legs', async () => {
    const start = await h.service.startAuthorize('zoom', 'alice', 'http://127.0.0.1:53682/callback');
    expect(new URL(start.url).searchParams.get('redirect_uri')).toBe('http://127.0.0.1:53682/callback');
    const query = await h.fake.authorize(start.url);
    await h.service.completeCallback('zoom', query);
    expect(h.fake.callsTo('token', 'authorization_code')[0]?.body.redirect_uri).toBe(
      'http://127.0.0.1:53682/callback',
    );
  });

  it('a user deleted between start and callback takes the pending state along (cascade)', async () => {
    const { query } = await h.authorizeOnly();
    h.db.prepare('DELETE FROM users WHERE user_id = ?').run('alice');
    expect(h.rows('SELECT * FROM oauth_states')).toEqual([]);
    const e = await failure(h.service.completeCallback('zoom', query));
    expect(e).toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/unknown or already used/),
    });
    expect(h.fake.callsTo('token')).toHaveLength(0);
    expect(connections(h)).toEqual([]);
  });

  it('an account linked to another user → 409 conflict, the fresh grant revoked, nothing stored', async () => {
    h.links.set(`zoom//${h.fake.user.id}`, 'bob');
    const { query } = await h.authorizeOnly('alice');
    const e = await failure(h.service.completeCallback('zoom', query));
    expect(e).toMatchObject({
      code: 'conflict',
      status: 409,
      message: expect.stringMatching(/linked to another user/),
    });
    expect(e.message).not.toContain('bob');
    expect(connections(h)).toEqual([]);
    expect(h.fake.revoked.has(h.fake.issued.access[0] ?? '')).toBe(true);
  });

  it('a code the platform refuses → 400, nothing stored; PKCE stops a code from another flow', async () => {
    const { query: first } = await h.authorizeOnly();
    const { start: second, query: other } = await h.authorizeOnly();
    expect(second.pkce).toBe(true);
    const bogus = await failure(h.service.completeCallback('zoom', { ...other, code: 'not-a-code' }));
    expect(bogus).toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/refused the authorization code/),
    });
    expect(bogus.details[0]).toEqual({ code: 'code_refused', message: 'invalid_grant' });
    // A code injected into another flow's callback: its verifier does not match the challenge.
    const { query: third } = await h.authorizeOnly();
    const injected = await failure(
      h.service.completeCallback('zoom', { state: third.state, code: first.code }),
    );
    expect(injected).toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/PKCE verification failed/),
    });
    expect(connections(h)).toEqual([]);
  });

  it('a failing or slow token endpoint, or a failing identity endpoint → 502, nothing stored', async () => {
    h.fake.fail('token', { kind: 'status', status: 502, json: false });
    let { query } = await h.authorizeOnly();
    expect(await failure(h.service.completeCallback('zoom', query))).toMatchObject({
      code: 'platform_error',
      status: 502,
      message: expect.stringMatching(/502/),
    });

    h.fake.fail('identity', { kind: 'status', status: 500 });
    ({ query } = await h.authorizeOnly());
    expect(await failure(h.service.completeCallback('zoom', query))).toMatchObject({
      code: 'platform_error',
      message: expect.stringMatching(/identity endpoint answered 500/),
    });
    expect(connections(h)).toEqual([]);
  });
});

describe('OAuth flow timeouts', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('a token endpoint slower than the timeout → 502 and nothing stored', async () => {
    const h = await oauthHarness({ flavor: 'discord', dir: tmp.dir, service: { httpTimeoutMs: 100 } });
    try {
      h.fake.fail('token', { kind: 'slow', delayMs: 400 });
      const { query } = await h.authorizeOnly();
      const e = await failure(h.service.completeCallback('discord', query));
      expect(e).toMatchObject({ code: 'platform_error' });
      expect(connections(h)).toEqual([]);
    } finally {
      await h.close();
    }
  });
});

describe('Microsoft tenant and identity', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('uses MS_TENANT_ID in the authority and takes the account from the id_token', async () => {
    const tenant = '0b1c2d3e-0000-4000-8000-000000000abc';
    const h = await oauthHarness({
      flavor: 'microsoft',
      dir: tmp.dir,
      env: { MS_TENANT_ID: tenant },
      fake: { user: { id: 'aad-object-id-1', tenant } },
    });
    try {
      const start = await h.service.startAuthorize('teams', 'alice');
      expect(new URL(start.url).pathname).toBe(`/${tenant}/oauth2/v2.0/authorize`);
      const view = await h.service.completeCallback('teams', await h.fake.authorize(start.url));
      expect(view).toMatchObject({ external_id: 'aad-object-id-1', workspace_id: tenant });
      expect(h.fake.callsTo('token')[0]?.path).toBe(`/${tenant}/oauth2/v2.0/token`);
      // The id_token named the account: no Graph call was needed.
      expect(h.fake.callsTo('identity')).toHaveLength(0);
    } finally {
      await h.close();
    }
  });

  it('without an id_token, asks Graph /me and records the configured tenant', async () => {
    const tenant = '0b1c2d3e-0000-4000-8000-000000000def';
    const h = await oauthHarness({
      flavor: 'microsoft',
      dir: tmp.dir,
      env: { MS_TENANT_ID: tenant },
      fake: { idToken: false, user: { id: 'aad-object-id-2' } },
    });
    try {
      const view = await h.connect();
      expect(view).toMatchObject({ external_id: 'aad-object-id-2', workspace_id: tenant });
      const [me] = h.fake.callsTo('identity');
      expect(me).toMatchObject({ method: 'GET', path: '/v1.0/me' });
      expect(me?.headers.authorization).toBe(`Bearer ${h.fake.issued.access[0]}`);
    } finally {
      await h.close();
    }
  });
});
