/**
 * @module test/int/oauth-providers
 * Every provider entry, end to end against its fake: the real simple-oauth2 client builds the
 * authorize URL, exchanges the code, refreshes (with rotation where the platform rotates) and
 * revokes; failures move health as the issue asks. Loopback only.
 */

import { createHash } from 'node:crypto';

import type { AccountRef } from '../../src/core/ports';
import { AppError } from '../../src/core/errors';
import { REFRESH_MARGIN_MS } from '../../src/oauth/token-manager';
import {
  oauthHarness,
  PUBLIC_URL,
  type FakeFlavor,
  type FakeOAuthOptions,
  type OAuthHarness,
} from '../helpers/fake-oauth';
import { tmpDir } from '../helpers/engine';

interface ProviderCase {
  readonly name: string;
  readonly flavor: FakeFlavor;
  readonly platform: string;
  readonly fake?: Omit<FakeOAuthOptions, 'flavor'>;
  readonly authorizePath: string;
  /** The scope parameter and its exact value, or null when no scope is sent. */
  readonly scope: { readonly param: string; readonly value: string } | null;
  readonly pkce: boolean;
  readonly extraParams: Record<string, string>;
  readonly clientAuth: 'basic' | 'body';
  readonly account: (h: OAuthHarness) => AccountRef;
  /** rotating: every refresh brings a new refresh token; kept: the same one comes back; none: no refresh. */
  readonly refresh: 'rotating' | 'kept' | 'none';
  /** Revoke calls a delete makes; 0 with `supported: false` for a platform without an endpoint. */
  readonly revoke: { readonly supported: boolean; readonly calls: number };
  readonly accessTtlSec: number;
}

const DAY = 24 * 3600;

const CASES: ProviderCase[] = [
  {
    name: 'slack',
    flavor: 'slack',
    platform: 'slack',
    authorizePath: '/oauth/v2/authorize',
    scope: { param: 'user_scope', value: 'users:read,dnd:read,users.profile:read' },
    pkce: false,
    extraParams: {},
    clientAuth: 'basic',
    account: (h) => ({ platform: 'slack', externalId: h.fake.user.id, workspaceId: h.fake.user.team ?? '' }),
    refresh: 'rotating',
    revoke: { supported: true, calls: 1 },
    accessTtlSec: 12 * 3600,
  },
  {
    name: 'teams',
    flavor: 'microsoft',
    platform: 'teams',
    authorizePath: '/organizations/oauth2/v2.0/authorize',
    scope: { param: 'scope', value: 'openid profile offline_access User.Read Presence.Read.All' },
    pkce: true,
    extraParams: { response_mode: 'query' },
    clientAuth: 'body',
    account: (h) => ({
      platform: 'teams',
      externalId: h.fake.user.id,
      workspaceId: h.fake.user.tenant ?? '',
    }),
    refresh: 'rotating',
    revoke: { supported: false, calls: 0 },
    accessTtlSec: 3600,
  },
  {
    name: 'discord',
    flavor: 'discord',
    platform: 'discord',
    authorizePath: '/oauth2/authorize',
    scope: { param: 'scope', value: 'identify' },
    pkce: false,
    extraParams: {},
    clientAuth: 'basic',
    account: (h) => ({ platform: 'discord', externalId: h.fake.user.id, workspaceId: '' }),
    refresh: 'rotating',
    revoke: { supported: true, calls: 2 },
    accessTtlSec: 7 * DAY,
  },
  {
    name: 'zoom',
    flavor: 'zoom',
    platform: 'zoom',
    authorizePath: '/oauth/authorize',
    scope: null,
    pkce: true,
    extraParams: {},
    clientAuth: 'basic',
    account: (h) => ({ platform: 'zoom', externalId: h.fake.user.id, workspaceId: '' }),
    refresh: 'rotating',
    revoke: { supported: true, calls: 1 },
    accessTtlSec: 3599,
  },
  {
    name: 'linkedin',
    flavor: 'linkedin',
    platform: 'linkedin',
    authorizePath: '/oauth/v2/authorization',
    scope: { param: 'scope', value: 'openid profile email' },
    pkce: false,
    extraParams: {},
    clientAuth: 'body',
    account: (h) => ({ platform: 'linkedin', externalId: h.fake.user.id, workspaceId: '' }),
    refresh: 'none',
    revoke: { supported: true, calls: 1 },
    accessTtlSec: 60 * DAY,
  },
  {
    name: 'linkedin (partner refresh tokens)',
    flavor: 'linkedin',
    platform: 'linkedin',
    fake: { refreshTokens: true, rotateRefreshTokens: false, refreshTtlSec: 365 * DAY },
    authorizePath: '/oauth/v2/authorization',
    scope: { param: 'scope', value: 'openid profile email' },
    pkce: false,
    extraParams: {},
    clientAuth: 'body',
    account: (h) => ({ platform: 'linkedin', externalId: h.fake.user.id, workspaceId: '' }),
    refresh: 'kept',
    revoke: { supported: true, calls: 1 },
    accessTtlSec: 60 * DAY,
  },
];

/** Moves the fake clock to just inside the refresh margin of the connection's expiry. */
function advanceIntoMargin(h: OAuthHarness, ttlSec: number): void {
  h.clock.advance(ttlSec * 1000 - REFRESH_MARGIN_MS + 1000);
}

describe.each(CASES)('OAuth provider $name', (c) => {
  const tmp = tmpDir();
  let h: OAuthHarness;
  beforeEach(async () => {
    h = await oauthHarness({
      flavor: c.flavor,
      dir: tmp.dir,
      ...(c.fake === undefined ? {} : { fake: c.fake }),
    });
  });
  afterEach(async () => h.close());
  afterAll(() => tmp.cleanup());

  it('builds the authorize URL: client id, redirect_uri, state, scopes with the right separator, PKCE', async () => {
    const start = await h.service.startAuthorize(c.platform, 'alice');
    const url = new URL(start.url);
    expect(url.origin + url.pathname).toBe(h.fake.url + c.authorizePath);
    const q = url.searchParams;
    expect(q.get('response_type')).toBe('code');
    expect(q.get('client_id')).toBe(h.fake.clientId);
    expect(q.get('redirect_uri')).toBe(`${PUBLIC_URL}/v1/connect/${c.platform}/callback`);
    expect(start.redirect_uri).toBe(q.get('redirect_uri'));
    expect(q.get('state')).toBe(start.state);
    expect(start.state).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const p of ['scope', 'user_scope']) {
      expect(q.get(p)).toBe(c.scope !== null && c.scope.param === p ? c.scope.value : null);
    }
    if (c.pkce) {
      expect(q.get('code_challenge_method')).toBe('S256');
      expect(q.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    } else {
      expect(q.get('code_challenge')).toBeNull();
      expect(q.get('code_challenge_method')).toBeNull();
    }
    expect(start.pkce).toBe(c.pkce);
    for (const [k, v] of Object.entries(c.extraParams)) expect(q.get(k)).toBe(v);
    // The state is stored only as its hash, bound to the user and platform, for 10 minutes.
    const states = h.rows('SELECT * FROM oauth_states');
    expect(states).toEqual([
      expect.objectContaining({
        state_hash: createHash('sha256').update(start.state).digest('hex'),
        platform: c.platform,
        user_id: 'alice',
        expires_at: h.clock.now() + 10 * 60_000,
      }),
    ]);
    expect(JSON.stringify(states)).not.toContain(start.state);
    expect(states[0]?.code_verifier === null).toBe(!c.pkce);
  });

  it('exchanges the code with the platform’s client authentication, links the account and stores the connection', async () => {
    const view = await h.connect('alice');
    const account = c.account(h);
    expect(h.linkCalls).toEqual([{ userId: 'alice', account }]);
    expect(view).toEqual(
      expect.objectContaining({
        platform: c.platform,
        kind: 'user',
        user_id: 'alice',
        external_id: account.externalId,
        workspace_id: account.workspaceId === '' ? null : account.workspaceId,
        health: 'ok',
        last_error: null,
        expires_at: new Date(h.clock.now() + c.accessTtlSec * 1000).toISOString(),
        refreshable: c.refresh !== 'none',
        created_at: new Date(h.clock.now()).toISOString(),
      }),
    );
    expect(view.id).toMatch(/^con_[A-Za-z0-9_-]{16}$/);
    expect(view.scopes.length).toBeGreaterThan(0);
    // Nothing secret comes back.
    const shown = JSON.stringify(view);
    for (const t of [...h.fake.issued.access, ...h.fake.issued.refresh]) expect(shown).not.toContain(t);

    const [exchange] = h.fake.callsTo('token', 'authorization_code');
    expect(exchange?.clientAuth).toBe(c.clientAuth);
    expect(exchange?.contentType).toBe('application/x-www-form-urlencoded');
    expect(exchange?.body.redirect_uri).toBe(`${PUBLIC_URL}/v1/connect/${c.platform}/callback`);
    if (c.pkce) expect(exchange?.body.code_verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
    else expect(exchange?.body.code_verifier).toBeUndefined();
    if (c.clientAuth === 'basic') expect(exchange?.body.client_secret).toBeUndefined();

    // The state is spent and the access token works as issued.
    expect(h.rows('SELECT * FROM oauth_states')).toEqual([]);
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    expect(await h.service.list()).toEqual([view]);
    expect(await h.service.list({ user_id: 'bob' })).toEqual([]);
  });

  it('refuses a replayed state and stores nothing the second time', async () => {
    const { query } = await h.authorizeOnly('alice');
    await h.service.completeCallback(c.platform, query);
    const before = h.rows('SELECT connection_id, access_token FROM connections');
    const exchanges = h.fake.callsTo('token', 'authorization_code').length;
    const replay = h.service.completeCallback(c.platform, query);
    await expect(replay).rejects.toMatchObject({ code: 'invalid_request', status: 400 });
    await expect(h.service.completeCallback(c.platform, query)).rejects.toThrow(
      /unknown or already used state/,
    );
    expect(h.fake.callsTo('token', 'authorization_code')).toHaveLength(exchanges);
    expect(h.rows('SELECT connection_id, access_token FROM connections')).toEqual(before);
  });

  if (c.refresh === 'none') {
    it('cannot refresh: the token serves until it expires, then the connection needs re-authorization', async () => {
      const view = await h.connect();
      advanceIntoMargin(h, c.accessTtlSec);
      await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
      expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(0);
      h.clock.advance(REFRESH_MARGIN_MS);
      const err = await h.service.getAccessToken(view.id).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err).toMatchObject({
        code: 'forbidden',
        details: [expect.objectContaining({ code: 'reauth_required' })],
      });
      expect(await h.service.get(view.id)).toMatchObject({ health: 'reauth_required', refreshable: false });
      expect(h.events).toEqual([
        {
          type: 'connection.reauth_required',
          data: expect.objectContaining({ connection_id: view.id, user_id: 'alice' }),
        },
      ]);
    });
    return;
  }

  it('refreshes ahead of expiry and stores the new tokens in one write', async () => {
    const view = await h.connect();
    const firstRefresh = h.fake.issued.refresh[0];
    const storedBefore = h.rows('SELECT refresh_token FROM connections')[0]?.refresh_token;
    // Outside the margin: the stored token, no call.
    h.clock.advance(c.accessTtlSec * 1000 - REFRESH_MARGIN_MS - 1000);
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(0);
    // Inside it: one refresh, with the platform's client auth and the stored refresh token.
    h.clock.advance(2000);
    const fresh = await h.service.getAccessToken(view.id);
    expect(fresh).toBe(h.fake.issued.access[1]);
    const calls = h.fake.callsTo('token', 'refresh_token');
    expect(calls).toHaveLength(1);
    expect(calls[0]?.body.refresh_token).toBe(firstRefresh);
    expect(calls[0]?.clientAuth).toBe(c.clientAuth);
    if (c.platform === 'teams') expect(calls[0]?.body.scope).toContain('offline_access');
    const after = await h.service.get(view.id);
    expect(after).toMatchObject({ health: 'ok', refreshed_at: new Date(h.clock.now()).toISOString() });
    expect(after.expires_at).toBe(new Date(h.clock.now() + c.accessTtlSec * 1000).toISOString());
    const storedAfter = h.rows('SELECT refresh_token FROM connections')[0]?.refresh_token;
    if (c.refresh === 'rotating') {
      // The new refresh token replaced the old one (which the platform no longer takes).
      expect(storedAfter).not.toBe(storedBefore);
      expect(h.fake.issued.refresh).toHaveLength(2);
      advanceIntoMargin(h, c.accessTtlSec);
      const third = await h.service.getAccessToken(view.id);
      expect(third).toBe(h.fake.issued.access[2]);
      expect(h.fake.callsTo('token', 'refresh_token')[1]?.body.refresh_token).toBe(h.fake.issued.refresh[1]);
    } else {
      // Not rotated: the same refresh token is kept (its own end date unchanged).
      expect(h.fake.callsTo('token', 'refresh_token')[0]?.body.refresh_token).toBe(firstRefresh);
      expect(after.grant_expires_at).toBe(view.grant_expires_at);
      advanceIntoMargin(h, c.accessTtlSec);
      await h.service.getAccessToken(view.id);
      expect(h.fake.callsTo('token', 'refresh_token')[1]?.body.refresh_token).toBe(firstRefresh);
    }
  });

  it('shares one refresh among concurrent callers', async () => {
    const view = await h.connect();
    advanceIntoMargin(h, c.accessTtlSec);
    const tokens = await Promise.all(Array.from({ length: 8 }, () => h.service.getAccessToken(view.id)));
    expect(new Set(tokens)).toEqual(new Set([h.fake.issued.access[1]]));
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(1);
  });

  it('invalid_grant on refresh → reauth_required with one connection.reauth_required event', async () => {
    const view = await h.connect();
    h.fake.invalidateRefreshTokens();
    advanceIntoMargin(h, c.accessTtlSec);
    const err = await h.service.getAccessToken(view.id).catch((e: unknown) => e);
    expect(err).toMatchObject({
      code: 'forbidden',
      details: [expect.objectContaining({ code: 'reauth_required' })],
    });
    const shown = await h.service.get(view.id);
    expect(shown.health).toBe('reauth_required');
    expect(shown.last_error).toMatch(/invalid_(grant|refresh_token)/);
    expect(h.events).toEqual([
      {
        type: 'connection.reauth_required',
        data: expect.objectContaining({ connection_id: view.id, platform: c.platform, user_id: 'alice' }),
      },
    ]);
    // No more calls and no second event: the person has to connect again.
    await expect(h.service.getAccessToken(view.id)).rejects.toMatchObject({ code: 'forbidden' });
    await h.service.sweep();
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(1);
    expect(h.events).toHaveLength(1);
    // Connecting again heals the same connection.
    const again = await h.connect();
    expect(again).toMatchObject({ id: view.id, health: 'ok', last_error: null });
  });

  it('5xx on refresh → error, the old token serves during the cool-down, the retry after it succeeds', async () => {
    const view = await h.connect();
    h.fake.fail('token', { kind: 'status', status: 503 }, 1, 'refresh_token');
    advanceIntoMargin(h, c.accessTtlSec);
    // The failed refresh is reported to its caller…
    await expect(h.service.getAccessToken(view.id)).rejects.toMatchObject({ code: 'platform_error' });
    const failed = await h.service.get(view.id);
    expect(failed.health).toBe('error');
    expect(failed.last_error).toMatch(/503/);
    expect(failed.next_retry_at).toBe(new Date(h.clock.now() + 30_000).toISOString());
    // …then, cooling down, the still-valid token is handed out without another call.
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(1);
    expect(h.events).toEqual([]);
    h.clock.advance(30_000);
    const retried = await h.service.getAccessToken(view.id);
    expect(retried).toBe(h.fake.issued.access[1]);
    expect(await h.service.get(view.id)).toMatchObject({
      health: 'ok',
      last_error: null,
      next_retry_at: null,
    });
  });

  it('revokes at the platform where it can, and deletes the tokens', async () => {
    const view = await h.connect();
    const result = await h.service.deleteConnection(view.id);
    expect(result).toEqual({
      id: view.id,
      deleted: true,
      revoke_supported: c.revoke.supported,
      revoked_at_platform: c.revoke.supported,
      revoke_error: c.revoke.supported ? null : expect.stringMatching(/no token revocation endpoint/),
    });
    const calls = h.fake.callsTo('revoke');
    expect(calls).toHaveLength(c.revoke.calls);
    if (c.revoke.calls > 0) expect(h.fake.revoked.has(h.fake.issued.access[0] ?? '')).toBe(true);
    if (c.platform === 'slack')
      expect(calls[0]?.headers.authorization).toBe(`Bearer ${h.fake.issued.access[0]}`);
    if (c.platform === 'zoom') {
      expect(calls[0]?.query.token).toBe(h.fake.issued.access[0]);
      expect(calls[0]?.clientAuth).toBe('basic');
    }
    if (c.platform === 'discord') {
      expect(calls.map((x) => x.body.token_type_hint)).toEqual(['access_token', 'refresh_token']);
    }
    expect(h.rows('SELECT * FROM connections')).toEqual([]);
    expect(h.events).toEqual([
      {
        type: 'connection.revoked',
        data: expect.objectContaining({ connection_id: view.id, reason: 'deleted through the API' }),
      },
    ]);
    await expect(h.service.get(view.id)).rejects.toMatchObject({ code: 'not_found' });
  });

  if (c.revoke.supported) {
    it('deletes the tokens even when the platform’s revoke fails, and says so', async () => {
      const view = await h.connect();
      h.fake.fail('revoke', { kind: 'status', status: 500 }, 5);
      const result = await h.service.deleteConnection(view.id);
      expect(result).toMatchObject({ deleted: true, revoke_supported: true, revoked_at_platform: false });
      expect(result.revoke_error).toMatch(/500/);
      for (const t of h.fake.issued.access) expect(result.revoke_error).not.toContain(t);
      expect(h.rows('SELECT * FROM connections')).toEqual([]);
    });
  }
});
