/**
 * @module test/helpers/fake-oauth
 * A local fake OAuth 2.0 server on 127.0.0.1 for one provider flavor at a time, shaped after that
 * provider's quirks so the real simple-oauth2 client runs against it:
 * - slack: `/oauth/v2/authorize`, `POST /api/oauth.v2.access` (user token under `authed_user`,
 *   `ok: true`, errors as HTTP 200 `ok: false`), `POST /api/auth.revoke` (Bearer);
 * - microsoft: `/{tenant}/oauth2/v2.0/authorize|token` (body client auth, rotating refresh
 *   tokens, an id_token with `oid`/`tid`, client_credentials), `GET /v1.0/me`;
 * - discord: `/oauth2/authorize`, `POST /api/oauth2/token` (form only), `/api/oauth2/token/revoke`,
 *   `GET /api/v10/users/@me`;
 * - zoom: `/oauth/authorize`, `POST /oauth/token` (HTTP Basic only; `account_credentials`),
 *   `POST /oauth/revoke?token=`, `GET /v2/users/me`;
 * - linkedin: `/oauth/v2/authorization`, `POST /oauth/v2/accessToken` (body client auth, no
 *   refresh token unless `refreshTokens: true`), `/oauth/v2/revoke`, `GET /v2/userinfo` (`sub`).
 * It verifies client authentication, redirect_uri and PKCE (S256), makes codes single-use, can
 * rotate refresh tokens, and fails on demand (`fail`): invalid_grant, any status, slow answers.
 *
 * `oauthHarness` puts a real ConnectionService on a fresh SQLite file in front of one fake.
 */

import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

import { parseEnv, type Env } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import type { Log } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import {
  ConnectionService,
  type AuthorizeStart,
  type ConnectionEventData,
  type ConnectionEventType,
  type ConnectionServiceDeps,
  type ConnectionView,
} from '../../src/oauth/service';
import type { AsyncSqliteStores } from '../../src/store/async-sqlite';
import { migrate, openDb, type Db } from '../../src/store/db';
import { asyncStoresOn } from './promised';

export type FakeFlavor = 'slack' | 'microsoft' | 'discord' | 'zoom' | 'linkedin';
export type FakeEndpoint = 'authorize' | 'token' | 'revoke' | 'identity';

export type FakeFailure =
  | { readonly kind: 'invalid_grant' }
  /** Slack-style: the platform revoked the token (`token_revoked`). */
  | { readonly kind: 'revoked' }
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly json?: boolean;
      readonly retryAfter?: number;
    }
  | { readonly kind: 'slow'; readonly delayMs: number }
  /**
   * Held until `until` settles, then answered as `after` says (default: normally), so a test
   * knows a request is in flight for as long as it needs to (two nodes racing for one refresh).
   */
  | {
      readonly kind: 'held';
      readonly until: Promise<unknown>;
      readonly after?: Exclude<FakeFailure, { kind: 'slow' } | { kind: 'held' }>;
    };

export interface FakeOAuthOptions {
  readonly flavor: FakeFlavor;
  readonly clientId?: string;
  readonly clientSecret?: string;
  /** Access token lifetime in the responses; null: no `expires_in` (Slack without rotation). */
  readonly accessTtlSec?: number | null;
  readonly refreshTokens?: boolean;
  readonly rotateRefreshTokens?: boolean;
  /** LinkedIn partners: `refresh_token_expires_in`. */
  readonly refreshTtlSec?: number | null;
  /** Microsoft: include an id_token in the code exchange (default true). */
  readonly idToken?: boolean;
  /** Who signs in. */
  readonly user?: { readonly id: string; readonly team?: string; readonly tenant?: string };
}

export interface FakeCall {
  readonly method: string;
  readonly path: string;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string>;
  readonly contentType: string;
  readonly body: Record<string, string>;
  /** The client that authenticated, and how. */
  readonly clientAuth: 'basic' | 'body' | 'none';
}

interface CodeGrant {
  readonly redirectUri: string;
  readonly challenge: string | null;
  readonly scope: string;
}

const DEFAULT_TTL: Record<FakeFlavor, number> = {
  slack: 12 * 3600,
  microsoft: 3600,
  discord: 604_800,
  zoom: 3599,
  linkedin: 5_184_000,
};

const PATHS: Record<FakeFlavor, Record<FakeEndpoint, RegExp>> = {
  slack: {
    authorize: /^\/oauth\/v2\/authorize$/,
    token: /^\/api\/oauth\.v2\.access$/,
    revoke: /^\/api\/auth\.revoke$/,
    identity: /^$/,
  },
  microsoft: {
    authorize: /^\/[^/]+\/oauth2\/v2\.0\/authorize$/,
    token: /^\/[^/]+\/oauth2\/v2\.0\/token$/,
    revoke: /^$/,
    identity: /^\/v1\.0\/me$/,
  },
  discord: {
    authorize: /^\/oauth2\/authorize$/,
    token: /^\/api\/oauth2\/token$/,
    revoke: /^\/api\/oauth2\/token\/revoke$/,
    identity: /^\/api\/v10\/users\/@me$/,
  },
  zoom: {
    authorize: /^\/oauth\/authorize$/,
    token: /^\/oauth\/token$/,
    revoke: /^\/oauth\/revoke$/,
    identity: /^\/v2\/users\/me$/,
  },
  linkedin: {
    authorize: /^\/oauth\/v2\/authorization$/,
    token: /^\/oauth\/v2\/accessToken$/,
    revoke: /^\/oauth\/v2\/revoke$/,
    identity: /^\/v2\/userinfo$/,
  },
};

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export class FakeOAuthServer {
  readonly calls: FakeCall[] = [];
  /** Every token handed out, to search the database file for. */
  readonly issued: { access: string[]; refresh: string[] } = { access: [], refresh: [] };
  readonly revoked = new Set<string>();
  readonly clientId: string;
  readonly clientSecret: string;
  user: { id: string; team?: string; tenant?: string };
  accessTtlSec: number | null;
  refreshTokens: boolean;
  rotateRefreshTokens: boolean;
  refreshTtlSec: number | null;

  private server: Server | null = null;
  private port = 0;
  private counter = 0;
  private readonly codes = new Map<string, CodeGrant>();
  /** Live refresh tokens → the scope they carry. */
  private readonly refreshValid = new Map<string, string>();
  private readonly accessOwners = new Map<string, string>();
  private readonly failures: { endpoint: FakeEndpoint; grant: string | null; failure: FakeFailure }[] = [];
  private denyNext: string | null = null;

  constructor(readonly options: FakeOAuthOptions) {
    this.clientId = options.clientId ?? `${options.flavor}-client-id`;
    this.clientSecret =
      options.clientSecret ?? `${options.flavor}-client-secret-${randomBytes(4).toString('hex')}`;
    this.user = {
      id: 'U0FAKE1',
      team: 'T0FAKE1',
      tenant: '11111111-2222-3333-4444-555555555555',
      ...options.user,
    };
    this.accessTtlSec =
      options.accessTtlSec === undefined ? DEFAULT_TTL[options.flavor] : options.accessTtlSec;
    this.refreshTokens = options.refreshTokens ?? options.flavor !== 'linkedin';
    this.rotateRefreshTokens = options.rotateRefreshTokens ?? true;
    this.refreshTtlSec = options.refreshTtlSec ?? null;
  }

  static async start(options: FakeOAuthOptions): Promise<FakeOAuthServer> {
    const fake = new FakeOAuthServer(options);
    await fake.listen();
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The environment (credentials and URL overrides) that points the provider table here. */
  get env(): Record<string, string> {
    const u = this.url;
    const creds = (p: string): Record<string, string> => ({
      [`${p}_CLIENT_ID`]: this.clientId,
      [`${p}_CLIENT_SECRET`]: this.clientSecret,
    });
    switch (this.options.flavor) {
      case 'slack':
        return { ...creds('SLACK'), SLACK_API_URL: `${u}/api` };
      case 'microsoft':
        return { ...creds('MS'), MS_LOGIN_URL: u, GRAPH_API_URL: u };
      case 'discord':
        return { ...creds('DISCORD'), DISCORD_API_URL: `${u}/api` };
      case 'zoom':
        return { ...creds('ZOOM'), ZOOM_OAUTH_URL: u, ZOOM_API_URL: `${u}/v2` };
      case 'linkedin':
        return { ...creds('LINKEDIN'), LINKEDIN_OAUTH_URL: `${u}/oauth`, LINKEDIN_API_URL: u };
    }
  }

  /** The next `times` requests to `endpoint` (optionally of one grant type) fail this way. */
  fail(endpoint: FakeEndpoint, failure: FakeFailure, times = 1, grant: string | null = null): void {
    for (let i = 0; i < times; i++) this.failures.push({ endpoint, grant, failure });
  }

  clearFailures(): void {
    this.failures.length = 0;
  }

  /** The next authorize request redirects back with `error=<error>`. */
  deny(error = 'access_denied'): void {
    this.denyNext = error;
  }

  /** Ends every refresh token: the next refresh gets invalid_grant, as after a revocation at the platform. */
  invalidateRefreshTokens(): void {
    this.refreshValid.clear();
  }

  callsTo(endpoint: FakeEndpoint, grant?: string): FakeCall[] {
    const re = PATHS[this.options.flavor][endpoint];
    return this.calls.filter((c) => re.test(c.path) && (grant === undefined || c.body.grant_type === grant));
  }

  /**
   * Plays the person's browser: GETs the authorize URL and returns the query of the redirect it
   * answers with (code and state, or error and state).
   */
  async authorize(authorizeUrl: string): Promise<Record<string, string>> {
    const res = await fetch(authorizeUrl, { redirect: 'manual' });
    const location = res.headers.get('location');
    await res.arrayBuffer();
    if (res.status !== 302 || location === null) throw new Error(`authorize answered ${res.status}`);
    return Object.fromEntries(new URL(location).searchParams);
  }

  async close(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  // ------------------------------------------------------------------ server

  private async listen(): Promise<void> {
    const server = createServer((req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) this.json(res, 500, { error: 'fake_crashed', message: String(e) });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  private next(kind: string): string {
    this.counter += 1;
    return `${this.options.flavor}-${kind}-${this.counter}-${randomBytes(6).toString('hex')}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    let body: Record<string, string> = {};
    if (contentType === 'application/x-www-form-urlencoded')
      body = Object.fromEntries(new URLSearchParams(raw));
    else if (contentType === 'application/json' && raw !== '')
      body = JSON.parse(raw) as Record<string, string>;
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
    const clientAuth = this.clientAuthOf(headers, body);
    const call: FakeCall = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      contentType,
      body,
      clientAuth,
    };
    this.calls.push(call);

    const paths = PATHS[this.options.flavor];
    const endpoint = (Object.keys(paths) as FakeEndpoint[]).find((e) => paths[e].test(url.pathname));
    if (endpoint === undefined) return this.json(res, 404, { error: 'not_found', path: url.pathname });

    const failure = this.takeFailure(endpoint, body.grant_type ?? url.searchParams.get('grant_type'));
    if (failure !== null) {
      if (failure.kind === 'slow') await new Promise((r) => setTimeout(r, failure.delayMs));
      else if (failure.kind === 'held') {
        await failure.until.catch(() => undefined);
        if (failure.after !== undefined) return this.failWith(res, failure.after);
      } else return this.failWith(res, failure);
    }
    switch (endpoint) {
      case 'authorize':
        return this.authorizeEndpoint(url, res);
      case 'token':
        return this.tokenEndpoint(call, res);
      case 'revoke':
        return this.revokeEndpoint(call, res);
      case 'identity':
        return this.identityEndpoint(call, res);
    }
  }

  private takeFailure(endpoint: FakeEndpoint, grant: string | null): FakeFailure | null {
    const i = this.failures.findIndex(
      (f) => f.endpoint === endpoint && (f.grant === null || f.grant === grant),
    );
    if (i < 0) return null;
    const [f] = this.failures.splice(i, 1);
    return f?.failure ?? null;
  }

  private failWith(res: ServerResponse, f: Exclude<FakeFailure, { kind: 'slow' } | { kind: 'held' }>): void {
    if (f.kind === 'invalid_grant')
      return this.oauthError(res, 'invalid_grant', 'the grant is invalid or revoked');
    if (f.kind === 'revoked') return this.oauthError(res, 'token_revoked', 'the token was revoked');
    const headers: Record<string, string> =
      f.retryAfter === undefined ? {} : { 'retry-after': String(f.retryAfter) };
    if (f.json === false) {
      res.writeHead(f.status, { 'content-type': 'text/html', ...headers });
      res.end('<html>upstream trouble</html>');
      return;
    }
    res.writeHead(f.status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify({ error: 'temporarily_unavailable', error_description: 'try later' }));
  }

  private clientAuthOf(
    headers: Record<string, string>,
    body: Record<string, string>,
  ): 'basic' | 'body' | 'none' {
    const auth = headers.authorization ?? '';
    if (auth.startsWith('Basic ')) {
      const [id, secret] = Buffer.from(auth.slice(6), 'base64').toString('utf8').split(':');
      if (
        decodeURIComponent(id ?? '') === this.clientId &&
        decodeURIComponent(secret ?? '') === this.clientSecret
      ) {
        return 'basic';
      }
      return 'none';
    }
    if (body.client_id === this.clientId && body.client_secret === this.clientSecret) return 'body';
    return 'none';
  }

  /** Which client authentication this flavor takes on its token and revoke endpoints. */
  private acceptsAuth(call: FakeCall): boolean {
    switch (this.options.flavor) {
      case 'zoom':
        return call.clientAuth === 'basic';
      case 'microsoft':
      case 'linkedin':
        return call.clientAuth === 'body';
      default:
        return call.clientAuth !== 'none';
    }
  }

  private authorizeEndpoint(url: URL, res: ServerResponse): void {
    const q = url.searchParams;
    const redirect = q.get('redirect_uri');
    if (q.get('client_id') !== this.clientId || q.get('response_type') !== 'code' || redirect === null) {
      return this.json(res, 400, { error: 'invalid_request', error_description: 'bad authorize request' });
    }
    const back = new URL(redirect);
    const state = q.get('state');
    if (this.denyNext !== null) {
      back.searchParams.set('error', this.denyNext);
      back.searchParams.set('error_description', 'The user declined.');
      this.denyNext = null;
    } else {
      const challenge = q.get('code_challenge');
      if (challenge !== null && q.get('code_challenge_method') !== 'S256') {
        return this.json(res, 400, { error: 'invalid_request', error_description: 'only S256' });
      }
      const code = this.next('code');
      this.codes.set(code, {
        redirectUri: redirect,
        challenge,
        scope: q.get('scope') ?? q.get('user_scope') ?? '',
      });
      back.searchParams.set('code', code);
    }
    if (state !== null) back.searchParams.set('state', state);
    res.writeHead(302, { location: back.toString() });
    res.end();
  }

  private tokenEndpoint(call: FakeCall, res: ServerResponse): void {
    const flavor = this.options.flavor;
    if (call.method !== 'POST') return this.json(res, 405, { error: 'method_not_allowed' });
    if (flavor === 'discord' && call.contentType !== 'application/x-www-form-urlencoded') {
      return this.json(res, 400, { error: 'unsupported_content_type' });
    }
    if (!this.acceptsAuth(call))
      return this.oauthError(res, 'invalid_client', 'client authentication failed', 401);
    const grant = call.body.grant_type ?? call.query.grant_type;
    switch (grant) {
      case 'authorization_code': {
        const code = call.body.code ?? '';
        const saved = this.codes.get(code);
        this.codes.delete(code);
        if (saved === undefined)
          return this.oauthError(res, flavor === 'slack' ? 'invalid_code' : 'invalid_grant', 'bad code');
        if (call.body.redirect_uri !== saved.redirectUri)
          return this.oauthError(res, 'invalid_grant', 'redirect_uri mismatch');
        if (saved.challenge !== null) {
          const verifier = call.body.code_verifier ?? '';
          if (b64url(createHash('sha256').update(verifier).digest()) !== saved.challenge) {
            return this.oauthError(res, 'invalid_grant', 'PKCE verification failed');
          }
        }
        return this.json(res, 200, this.tokenResponse(saved.scope, true));
      }
      case 'refresh_token': {
        const old = call.body.refresh_token ?? '';
        const scope = this.refreshValid.get(old);
        if (scope === undefined || this.revoked.has(old)) {
          return this.oauthError(
            res,
            flavor === 'slack' ? 'invalid_refresh_token' : 'invalid_grant',
            'bad refresh token',
          );
        }
        if (this.rotateRefreshTokens) {
          this.refreshValid.delete(old);
          return this.json(res, 200, this.tokenResponse(scope, false));
        }
        // Without rotation the answer carries no refresh token, except LinkedIn partners, who
        // get the same one back with its lifetime not extended.
        return this.json(res, 200, this.tokenResponse(scope, false, flavor === 'linkedin' ? old : null));
      }
      case 'client_credentials': {
        if (flavor !== 'microsoft')
          return this.oauthError(res, 'unsupported_grant_type', 'no client credentials');
        if (!(call.body.scope ?? '').endsWith('/.default'))
          return this.oauthError(res, 'invalid_scope', 'need .default');
        const access = this.next('app-access');
        this.issued.access.push(access);
        return this.json(res, 200, {
          token_type: 'Bearer',
          expires_in: this.accessTtlSec,
          ext_expires_in: 3599,
          access_token: access,
        });
      }
      case 'account_credentials': {
        if (flavor !== 'zoom')
          return this.oauthError(res, 'unsupported_grant_type', 'no account credentials');
        const account = call.body.account_id ?? call.query.account_id;
        if (account === undefined || account === '')
          return this.oauthError(res, 'invalid_request', 'account_id missing');
        const access = this.next('s2s-access');
        this.issued.access.push(access);
        return this.json(res, 200, {
          access_token: access,
          token_type: 'bearer',
          expires_in: this.accessTtlSec,
          scope: 'user:read:presence_status:admin',
          api_url: 'https://api.zoom.us',
        });
      }
      default:
        return this.oauthError(res, 'unsupported_grant_type', `grant ${grant ?? '(none)'}`);
    }
  }

  /** `keepRefresh`: on a refresh without rotation, the refresh token to answer with (or null: none). */
  private tokenResponse(
    scope: string,
    firstGrant: boolean,
    keepRefresh?: string | null,
  ): Record<string, unknown> {
    const flavor = this.options.flavor;
    const access = this.next('access');
    this.issued.access.push(access);
    this.accessOwners.set(access, this.user.id);
    let refresh: string | null = null;
    if (keepRefresh !== undefined) {
      refresh = keepRefresh;
    } else if (this.refreshTokens) {
      refresh = this.next('refresh');
      this.issued.refresh.push(refresh);
      this.refreshValid.set(refresh, scope);
    }
    const expiry: Record<string, unknown> =
      this.accessTtlSec === null ? {} : { expires_in: this.accessTtlSec };
    const core: Record<string, unknown> = {
      access_token: access,
      ...expiry,
      ...(refresh === null ? {} : { refresh_token: refresh }),
      ...(refresh !== null && this.refreshTtlSec !== null && keepRefresh === undefined
        ? { refresh_token_expires_in: this.refreshTtlSec }
        : {}),
    };
    switch (flavor) {
      case 'slack':
        // The code exchange nests the user token under authed_user; a refresh answers at the root.
        return firstGrant
          ? {
              ok: true,
              app_id: 'A0FAKE',
              authed_user: { id: this.user.id, scope, token_type: 'user', ...core },
              team: { id: this.user.team, name: 'Fake Team' },
              enterprise: null,
              is_enterprise_install: false,
            }
          : { ok: true, app_id: 'A0FAKE', token_type: 'user', scope, team: { id: this.user.team }, ...core };
      case 'microsoft': {
        const claims = {
          aud: this.clientId,
          iss: `${this.url}/${this.user.tenant}/v2.0`,
          oid: this.user.id,
          tid: this.user.tenant,
        };
        const idToken = `${b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}.${b64url('sig')}`;
        return {
          token_type: 'Bearer',
          scope,
          ext_expires_in: 3599,
          ...core,
          ...(firstGrant && this.options.idToken !== false ? { id_token: idToken } : {}),
        };
      }
      case 'discord':
        return { token_type: 'Bearer', scope, ...core };
      case 'zoom':
        return { token_type: 'bearer', scope: 'user:read:user user:read:presence_status', ...core };
      case 'linkedin':
        return { token_type: 'Bearer', scope: 'email,openid,profile', ...core };
    }
  }

  private revokeEndpoint(call: FakeCall, res: ServerResponse): void {
    if (this.options.flavor === 'slack') {
      const auth = call.headers.authorization ?? '';
      const token = auth.startsWith('Bearer ') ? auth.slice(7) : (call.body.token ?? '');
      if (!this.accessOwners.has(token) || this.revoked.has(token))
        return this.json(res, 200, { ok: false, error: 'invalid_auth' });
      this.revoked.add(token);
      return this.json(res, 200, { ok: true, revoked: true });
    }
    if (!this.acceptsAuth(call))
      return this.oauthError(res, 'invalid_client', 'client authentication failed', 401);
    if (this.options.flavor === 'discord' && call.contentType !== 'application/x-www-form-urlencoded') {
      return this.json(res, 400, { error: 'unsupported_content_type' });
    }
    const token = this.options.flavor === 'zoom' ? call.query.token : call.body.token;
    if (token === undefined || token === '') return this.oauthError(res, 'invalid_request', 'token missing');
    this.revoked.add(token);
    this.refreshValid.delete(token);
    if (this.options.flavor === 'zoom') return this.json(res, 200, { status: 'success' });
    // RFC 7009: 200 with an empty body.
    res.writeHead(200);
    res.end();
  }

  private identityEndpoint(call: FakeCall, res: ServerResponse): void {
    const auth = call.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
    if (!this.accessOwners.has(token) || this.revoked.has(token))
      return this.json(res, 401, { error: 'unauthorized' });
    switch (this.options.flavor) {
      case 'microsoft':
        return this.json(res, 200, { id: this.user.id, displayName: 'Fake Person' });
      case 'discord':
        return this.json(res, 200, { id: this.user.id, username: 'fake', global_name: 'Fake' });
      case 'zoom':
        return this.json(res, 200, { id: this.user.id, account_id: 'acct-fake', email: 'fake@example.com' });
      case 'linkedin':
        return this.json(res, 200, {
          sub: this.user.id,
          name: 'Fake Person',
          email: 'fake@example.com',
          email_verified: true,
        });
      case 'slack':
        return this.json(res, 404, { error: 'not_found' });
    }
  }

  /** An OAuth error the flavor's way: Slack as 200 `ok:false`, the others as 400 (or `status`). */
  private oauthError(res: ServerResponse, error: string, description: string, status = 400): void {
    if (this.options.flavor === 'slack') return this.json(res, 200, { ok: false, error });
    if (this.options.flavor === 'zoom') return this.json(res, status, { reason: description, error });
    return this.json(res, status, { error, error_description: description });
  }

  private json(res: ServerResponse, status: number, body: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8' });
    res.end(JSON.stringify(body));
  }
}

// ---------------------------------------------------------------------- a service on a fake

export const TEST_SECRET_KEY = Buffer.alloc(32, 7).toString('base64');
export const PUBLIC_URL = 'https://presence.example.test';

export interface HarnessLog {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: object;
  readonly msg: string;
}

export interface OAuthHarness {
  readonly fake: FakeOAuthServer;
  readonly service: ConnectionService;
  readonly clock: FakeClock;
  readonly db: Db;
  /** The stores of `db` behind the async adapter the service uses. */
  readonly stores: AsyncSqliteStores;
  readonly dbPath: string;
  readonly env: Env;
  readonly events: { type: ConnectionEventType; data: ConnectionEventData }[];
  readonly logs: HarnessLog[];
  /** account key `platform/workspace/external` → owner. */
  readonly links: Map<string, string>;
  readonly linkCalls: { userId: string; account: AccountRef }[];
  addUser(userId: string): void;
  /** start → the fake's authorize page → callback: the whole flow for one user. */
  connect(userId?: string): Promise<ConnectionView>;
  /** start + authorize only: the callback query, to replay or tamper with. */
  authorizeOnly(userId?: string): Promise<{ start: AuthorizeStart; query: Record<string, string> }>;
  rows(sql: string, ...args: unknown[]): Record<string, unknown>[];
  close(): Promise<void>;
}

export interface HarnessOptions {
  readonly flavor: FakeFlavor;
  readonly dir: string;
  readonly fake?: Omit<FakeOAuthOptions, 'flavor'>;
  readonly env?: Record<string, string>;
  readonly service?: Partial<Omit<ConnectionServiceDeps, 'db' | 'env' | 'clock' | 'log'>>;
  readonly clock?: FakeClock;
}

const PLATFORM_OF: Record<FakeFlavor, string> = {
  slack: 'slack',
  microsoft: 'teams',
  discord: 'discord',
  zoom: 'zoom',
  linkedin: 'linkedin',
};

let harnessCount = 0;

/** A ConnectionService on a fresh SQLite file, pointed at a fake of one provider flavor. */
export async function oauthHarness(options: HarnessOptions): Promise<OAuthHarness> {
  const fake = await FakeOAuthServer.start({ flavor: options.flavor, ...options.fake });
  harnessCount += 1;
  const dbPath = join(options.dir, `oauth-${options.flavor}-${harnessCount}.db`);
  const db = openDb(dbPath);
  const clock = options.clock ?? new FakeClock();
  migrate(db, undefined, clock);
  const stores = asyncStoresOn(db);
  const env = parseEnv({
    PRESENCE_SECRET_KEY: TEST_SECRET_KEY,
    PUBLIC_URL,
    ...fake.env,
    ...options.env,
  });
  const events: OAuthHarness['events'] = [];
  const logs: HarnessLog[] = [];
  const links = new Map<string, string>();
  const linkCalls: OAuthHarness['linkCalls'] = [];
  const users = new Set<string>();
  const logAt =
    (level: HarnessLog['level']) =>
    (obj: object, msg?: string): void => {
      logs.push({ level, obj, msg: msg ?? '' });
    };
  const log: Log = { debug: logAt('debug'), info: logAt('info'), warn: logAt('warn'), error: logAt('error') };
  const service = new ConnectionService({
    store: stores.connections,
    env,
    clock,
    log,
    hasUser: (u) => users.has(u),
    linkAccount: (userId, account) => {
      linkCalls.push({ userId, account });
      const key = `${account.platform}/${account.workspaceId}/${account.externalId}`;
      const owner = links.get(key);
      if (owner !== undefined && owner !== userId) return { linked: false, ownerId: owner };
      links.set(key, userId);
      return { linked: true };
    },
    onEvent: (type, data) => {
      events.push({ type, data });
    },
    // Loopback calls answer at once; this only bounds a stuck one, so a busy machine never hits it.
    // Tests of the timeout itself pass their own.
    httpTimeoutMs: 30_000,
    ...options.service,
  });
  const addUser = (userId: string): void => {
    db.prepare('INSERT OR IGNORE INTO users (user_id, created_at, updated_at) VALUES (?, ?, ?)').run(
      userId,
      clock.now(),
      clock.now(),
    );
    users.add(userId);
  };
  addUser('alice');
  const authorizeOnly = async (
    userId = 'alice',
  ): Promise<{ start: AuthorizeStart; query: Record<string, string> }> => {
    const start = await service.startAuthorize(PLATFORM_OF[options.flavor], userId);
    return { start, query: await fake.authorize(start.url) };
  };
  return {
    fake,
    service,
    clock,
    db,
    stores,
    dbPath,
    env,
    events,
    logs,
    links,
    linkCalls,
    addUser,
    authorizeOnly,
    connect: async (userId = 'alice') => {
      const { query } = await authorizeOnly(userId);
      return service.completeCallback(PLATFORM_OF[options.flavor], query);
    },
    rows: (sql, ...args) => db.prepare(sql).all(...args) as Record<string, unknown>[],
    close: async () => {
      await service.stop();
      await fake.close();
      db.close();
    },
  };
}
