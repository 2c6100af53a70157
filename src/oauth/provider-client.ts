/**
 * @module oauth/provider-client
 * Every remote call of the connection layer, for one configured provider: the authorize URL, the
 * code exchange, refresh, the app's own grant (simple-oauth2 for all of those), the identity
 * lookup and revocation. Token responses are normalised into a `TokenSet`, and failures into an
 * `OAuthCallError` whose `kind` decides the connection's health:
 * - `reauth_required`: the grant is gone (invalid_grant and the platform's equivalents);
 * - `revoked`: the platform says the app or token was revoked;
 * - `rejected`: any other refusal (bad client credentials, malformed request): needs an operator;
 * - `transient`: 5xx, 429, timeouts and network errors: retried after a cool-down.
 * Messages are built here from status, error code and a trimmed description, with every token
 * of the call redacted, so they are safe to log and to show in `last_error`.
 */

import { AuthorizationCode, ClientCredentials, type AccessToken, type ModuleOptions } from 'simple-oauth2';

import type { Clock } from '../core/clock';
import { parseRetryAfter } from '../core/retry-after';
import type { ResolvedProvider } from './providers';

export interface TokenSet {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly tokenType: string | null;
  readonly expiresInSec: number | null;
  readonly refreshExpiresInSec: number | null;
  /** Granted scopes, when the response says. */
  readonly scopes: string[] | null;
  /** The raw response, for the identity step only: held in memory, never stored or returned. */
  readonly response: Readonly<Record<string, unknown>>;
}

export interface AccountIdentity {
  readonly externalId: string;
  readonly workspaceId: string;
}

export type FailureKind = 'reauth_required' | 'revoked' | 'rejected' | 'transient';

export class OAuthCallError extends Error {
  override name = 'OAuthCallError';
  constructor(
    readonly kind: FailureKind,
    message: string,
    readonly status: number | null = null,
    readonly code: string | null = null,
    readonly retryAfterMs: number | null = null,
  ) {
    super(message);
  }
}

export interface RevokeOutcome {
  /** Whether the platform has a revoke endpoint at all. */
  readonly supported: boolean;
  readonly revoked: boolean;
  /** Why it was not revoked (sanitised), or null. */
  readonly error: string | null;
}

export interface ProviderClientOptions {
  /** Per request; a platform that does not answer in time counts as a transient failure. */
  readonly timeoutMs: number;
  readonly fetch: typeof fetch;
  /** The current time, to read a `Retry-After` given as a date. */
  readonly clock: Clock;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
function num(v: unknown): number | null {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : null;
}

/** Trims a platform-supplied text and removes the given secrets from it. */
export function sanitize(text: string, secrets: readonly (string | null | undefined)[] = []): string {
  let out = text;
  for (const s of secrets)
    if (s !== null && s !== undefined && s.length >= 4) out = out.split(s).join('[redacted]');
  // eslint-disable-next-line no-control-regex
  out = out.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return out.length > 300 ? `${out.slice(0, 297)}...` : out;
}

interface BoomLike {
  readonly isBoom: true;
  readonly message: string;
  readonly output: { readonly statusCode: number; readonly headers?: Record<string, unknown> };
  readonly data?: {
    readonly isResponseError?: boolean;
    readonly payload?: unknown;
    readonly headers?: Record<string, unknown>;
    readonly res?: { readonly statusCode?: number; readonly headers?: Record<string, unknown> };
  } | null;
}

const isBoom = (e: unknown): e is BoomLike => isObject(e) && e.isBoom === true && isObject(e.output);

export class ProviderClient {
  private readonly authCode: AuthorizationCode;
  private readonly appGrant: ClientCredentials | null;

  constructor(
    readonly provider: ResolvedProvider,
    private readonly options: ProviderClientOptions,
  ) {
    const spec = provider.spec;
    const shared: Pick<ModuleOptions, 'client' | 'http' | 'options'> = {
      client: { id: provider.clientId, secret: provider.clientSecret },
      http: { timeout: options.timeoutMs },
      options: {
        scopeSeparator: spec.scopeSeparator,
        bodyFormat: spec.bodyFormat,
        authorizationMethod: spec.clientAuth,
      },
    };
    // Paths are given as absolute URLs: simple-oauth2 resolves them against the host with WHATWG
    // URL rules, which keeps any path prefix of an overridden base (a proxy, the tests' fake).
    this.authCode = new AuthorizationCode({
      ...shared,
      auth: {
        tokenHost: new URL(provider.tokenUrl).origin,
        tokenPath: provider.tokenUrl,
        refreshPath: provider.tokenUrl,
        revokePath: provider.revokeUrl ?? provider.tokenUrl,
        authorizeHost: new URL(provider.authorizeUrl).origin,
        authorizePath: provider.authorizeUrl,
      },
    });
    this.appGrant =
      provider.app === null
        ? null
        : new ClientCredentials({
            ...shared,
            auth: { tokenHost: new URL(provider.app.tokenUrl).origin, tokenPath: provider.app.tokenUrl },
          });
  }

  get platform(): string {
    return this.provider.spec.platform;
  }

  authorizeUrl(p: { redirectUri: string; state: string; codeChallenge: string | null }): string {
    const spec = this.provider.spec;
    const params: Record<string, string | string[]> = {
      redirect_uri: p.redirectUri,
      state: p.state,
      ...spec.extraAuthorizeParams,
    };
    // `scope` goes through simple-oauth2, which joins it with the configured separator; Slack's
    // `user_scope` is not a parameter the library knows, so it is joined here the same way.
    if (spec.scopeParam === 'scope') params.scope = [...spec.scopes];
    if (spec.scopeParam === 'user_scope') params.user_scope = spec.scopes.join(spec.scopeSeparator);
    if (p.codeChallenge !== null) {
      params.code_challenge = p.codeChallenge;
      params.code_challenge_method = 'S256';
    }
    return this.authCode.authorizeURL(params);
  }

  /** Exchanges an authorization code (the endpoint's doc URL is in providers.ts `token.doc`). */
  async exchangeCode(p: {
    code: string;
    redirectUri: string;
    codeVerifier: string | null;
  }): Promise<TokenSet> {
    const params: Record<string, string> = { code: p.code, redirect_uri: p.redirectUri };
    if (p.codeVerifier !== null) params.code_verifier = p.codeVerifier;
    let token: AccessToken;
    try {
      token = await this.authCode.getToken(params as unknown as Parameters<AuthorizationCode['getToken']>[0]);
    } catch (e) {
      throw this.classify(e, 'code exchange', [p.code, p.codeVerifier]);
    }
    return this.tokenSet(token.token, 'code exchange', [p.code]);
  }

  /** `grant_type=refresh_token` on the token endpoint (providers.ts `token.doc`). */
  async refresh(p: { accessToken: string; refreshToken: string }): Promise<TokenSet> {
    const spec = this.provider.spec;
    const secrets = [p.accessToken, p.refreshToken];
    const current = this.authCode.createToken({ access_token: p.accessToken, refresh_token: p.refreshToken });
    let next: AccessToken;
    try {
      next = await current.refresh(spec.refresh.sendScope ? { scope: [...spec.scopes] } : {});
    } catch (e) {
      throw this.classify(e, 'refresh', secrets);
    }
    return this.tokenSet(next.token, 'refresh', secrets);
  }

  /**
   * The app's own token: Zoom `grant_type=account_credentials&account_id=…` (Server-to-Server
   * OAuth, https://developers.zoom.us/docs/internal-apps/s2s-oauth/) or Microsoft
   * `client_credentials` with the Graph `.default` scope
   * (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow).
   */
  async appToken(): Promise<TokenSet> {
    const app = this.provider.app;
    const spec = this.provider.spec.app;
    if (this.appGrant === null || app === null || spec === null) {
      throw new OAuthCallError('rejected', `${this.platform} has no app grant configured`);
    }
    const params: Record<string, string> = {};
    // simple-oauth2 lets these parameters override its own grant_type (connectors/zoom/README.md, Platform facts).
    if (spec.grantType !== 'client_credentials') params.grant_type = spec.grantType;
    if (spec.accountParam !== null) params[spec.accountParam] = app.accountId;
    if (app.scope !== null) params.scope = app.scope;
    let token: AccessToken;
    try {
      token = await this.appGrant.getToken(params);
    } catch (e) {
      throw this.classify(e, 'app token', []);
    }
    return this.tokenSet(token.token, 'app token', []);
  }

  /** Who the new token belongs to, per the provider's identity source. */
  async identity(tokens: TokenSet): Promise<AccountIdentity> {
    const source = this.provider.spec.identity;
    const r = tokens.response;
    switch (source.kind) {
      case 'slack_authed_user': {
        // oauth.v2.access: the person is `authed_user.id`, the workspace `team.id` (an org-wide
        // install has `enterprise` instead).
        const user = isObject(r.authed_user) ? str(r.authed_user.id) : null;
        const team =
          (isObject(r.team) ? str(r.team.id) : null) ??
          (isObject(r.enterprise) ? str(r.enterprise.id) : null);
        if (user === null) throw new OAuthCallError('rejected', 'slack token response names no authed_user');
        return { externalId: user, workspaceId: team ?? '' };
      }
      case 'id_token_oid': {
        // The id_token came straight from the token endpoint over TLS, which authenticates its
        // issuer (OpenID Connect Core §3.1.3.7), so its claims are read without a JWKS check.
        const claims = decodeJwtClaims(str(r.id_token));
        const oid = claims === null ? null : str(claims.oid);
        if (oid !== null)
          return {
            externalId: oid,
            workspaceId: (claims && str(claims.tid)) ?? this.provider.defaultWorkspace,
          };
        const me = await this.getJson(tokens.accessToken, 'identity');
        const id = str(me.id);
        if (id === null)
          throw new OAuthCallError('rejected', `${this.platform} identity endpoint returned no id`);
        return { externalId: id, workspaceId: this.provider.defaultWorkspace };
      }
      case 'identity_endpoint': {
        // Discord GET /users/@me, Zoom GET /users/me, LinkedIn GET /v2/userinfo: URLs in
        // providers.ts `identityEndpoint.doc`.
        const body = await this.getJson(tokens.accessToken, 'identity');
        const raw = body[source.idField];
        const id = typeof raw === 'number' ? String(raw) : str(raw);
        if (id === null) {
          throw new OAuthCallError(
            'rejected',
            `${this.platform} identity endpoint returned no ${source.idField}`,
          );
        }
        const ws = source.workspaceField === undefined ? null : str(body[source.workspaceField]);
        return { externalId: id, workspaceId: ws ?? '' };
      }
    }
  }

  /**
   * Revokes at the platform. Never throws: the caller deletes the tokens either way and reports
   * the outcome.
   */
  async revoke(t: { accessToken: string | null; refreshToken: string | null }): Promise<RevokeOutcome> {
    const spec = this.provider.spec.revoke;
    const url = this.provider.revokeUrl;
    const secrets = [t.accessToken, t.refreshToken];
    if (spec.kind === 'none' || url === null) {
      return {
        supported: false,
        revoked: false,
        error: spec.kind === 'none' ? spec.reason : 'no revoke endpoint',
      };
    }
    if (t.accessToken === null && t.refreshToken === null) {
      return {
        supported: true,
        revoked: false,
        error: 'the stored tokens could not be read, so none was sent',
      };
    }
    try {
      switch (spec.kind) {
        case 'rfc7009': {
          // RFC 7009 through simple-oauth2 (Discord token/revoke, LinkedIn oauth/v2/revoke;
          // doc URLs in providers.ts `revokeEndpoint.doc`). `json: true` accepts the empty or
          // non-JSON 200 these endpoints answer with.
          const token = this.authCode.createToken({
            access_token: t.accessToken ?? undefined,
            refresh_token: t.refreshToken ?? undefined,
          });
          let sent = 0;
          for (const type of spec.tokens) {
            const value = type === 'access_token' ? t.accessToken : t.refreshToken;
            if (value === null) continue;
            await token.revoke(type, { json: true });
            sent += 1;
          }
          return sent > 0
            ? { supported: true, revoked: true, error: null }
            : { supported: true, revoked: false, error: 'no token of a revocable type was stored' };
        }
        case 'bearer': {
          // https://docs.slack.dev/reference/methods/auth.revoke: the token revokes itself.
          const token = t.accessToken ?? t.refreshToken ?? '';
          const res = await this.send(url, { method: 'POST', headers: { Authorization: `Bearer ${token}` } });
          const body = await readJson(res);
          if (!res.ok || (body !== null && body.ok === false)) {
            const code = body === null ? null : str(body.error);
            return {
              supported: true,
              revoked: false,
              error: sanitize(`auth.revoke answered ${res.status} ${code ?? ''}`, secrets),
            };
          }
          return { supported: true, revoked: true, error: null };
        }
        case 'query_basic': {
          // https://developers.zoom.us/docs/integrations/oauth/#revoking-an-access-token:
          // POST /oauth/revoke?token=… with HTTP Basic client credentials.
          const token = t.accessToken ?? t.refreshToken ?? '';
          const basic = Buffer.from(`${this.provider.clientId}:${this.provider.clientSecret}`).toString(
            'base64',
          );
          const res = await this.send(`${url}?token=${encodeURIComponent(token)}`, {
            method: 'POST',
            headers: { Authorization: `Basic ${basic}` },
          });
          await res.arrayBuffer();
          if (!res.ok) return { supported: true, revoked: false, error: `revoke answered ${res.status}` };
          return { supported: true, revoked: true, error: null };
        }
      }
    } catch (e) {
      return { supported: true, revoked: false, error: this.classify(e, 'revoke', secrets).message };
    }
  }

  // ------------------------------------------------------------------ helpers

  private async send(url: string, init: RequestInit): Promise<Response> {
    return this.options.fetch(url, { ...init, signal: AbortSignal.timeout(this.options.timeoutMs) });
  }

  private async getJson(accessToken: string, what: string): Promise<Json> {
    const url = this.provider.identityUrl;
    if (url === null) throw new OAuthCallError('rejected', `${this.platform} has no ${what} endpoint`);
    let res: Response;
    try {
      res = await this.send(url, {
        headers: { Authorization: `Bearer ${accessToken}`, Accept: 'application/json' },
      });
    } catch (e) {
      throw this.classify(e, what, [accessToken]);
    }
    const body = await readJson(res);
    if (!res.ok || body === null) {
      const transient = res.status >= 500 || res.status === 429;
      throw new OAuthCallError(
        transient ? 'transient' : 'rejected',
        `${this.platform} ${what} endpoint answered ${res.status}`,
        res.status,
      );
    }
    return body;
  }

  private tokenSet(
    raw: Readonly<Record<string, unknown>>,
    what: string,
    secrets: readonly (string | null)[],
  ): TokenSet {
    const spec = this.provider.spec;
    if (spec.okFlag && raw.ok !== true) {
      throw this.failure(200, str(raw.error), null, what, secrets, null);
    }
    // Slack puts a user token under `authed_user` on the code exchange, but at the root of a
    // refresh response; take whichever has the token.
    const nested = spec.tokenLocation === 'authed_user' && isObject(raw.authed_user) ? raw.authed_user : null;
    const src = nested !== null && str(nested.access_token) !== null ? nested : raw;
    const accessToken = str(src.access_token);
    if (accessToken === null) {
      throw new OAuthCallError(
        'rejected',
        `${this.platform} ${what}: the response holds no access token`,
        200,
      );
    }
    const scope = str(src.scope);
    return {
      accessToken,
      refreshToken: str(src.refresh_token),
      tokenType: str(src.token_type),
      expiresInSec: num(src.expires_in),
      refreshExpiresInSec: num(src.refresh_token_expires_in),
      scopes: scope === null ? null : scope.split(/[\s,]+/).filter((s) => s !== ''),
      response: raw,
    };
  }

  /** Turns whatever simple-oauth2 (wreck), fetch or the platform threw into an OAuthCallError. */
  private classify(e: unknown, what: string, secrets: readonly (string | null)[]): OAuthCallError {
    if (e instanceof OAuthCallError) return e;
    if (isBoom(e)) {
      // A 4xx/5xx with a body is a response error; a non-JSON body surfaces as a 406 from wreck
      // with the real response attached; timeouts and refused connections carry no response.
      const res = e.data?.res;
      const status = res?.statusCode ?? (e.data?.isResponseError === true ? e.output.statusCode : null);
      if (status === null) {
        return new OAuthCallError(
          'transient',
          `${this.platform} ${what} failed: ${sanitize(e.message, secrets)}`,
        );
      }
      const payload = e.data?.payload;
      const body = isObject(payload) ? payload : null;
      const code = body === null ? null : (str(body.error) ?? null);
      const description =
        body === null ? null : (str(body.error_description) ?? str(body.reason) ?? str(body.message) ?? null);
      return this.failure(
        status,
        code,
        description,
        what,
        secrets,
        parseRetryAfter((res?.headers ?? e.data?.headers)?.['retry-after'], this.options.clock.now()),
      );
    }
    if (e instanceof Error) {
      const timeout = e.name === 'TimeoutError' || e.name === 'AbortError';
      return new OAuthCallError(
        'transient',
        `${this.platform} ${what} failed: ${timeout ? 'timed out' : sanitize(e.message, secrets)}`,
      );
    }
    return new OAuthCallError('transient', `${this.platform} ${what} failed`);
  }

  private failure(
    status: number,
    code: string | null,
    description: string | null,
    what: string,
    secrets: readonly (string | null)[],
    retryAfterMs: number | null,
  ): OAuthCallError {
    const spec = this.provider.spec;
    let kind: FailureKind;
    if (status >= 500 || status === 429) kind = 'transient';
    else if (code !== null && spec.revokedErrors.includes(code)) kind = 'revoked';
    else if (code !== null && spec.reauthErrors.includes(code)) kind = 'reauth_required';
    else kind = 'rejected';
    const detail = [code, description].filter((x): x is string => x !== null).join(': ');
    const message = sanitize(
      `${this.platform} ${what} answered ${status}${detail === '' ? '' : ` ${detail}`}`,
      secrets,
    );
    return new OAuthCallError(kind, message, status, code, retryAfterMs);
  }
}

async function readJson(res: Response): Promise<Json | null> {
  try {
    const body: unknown = await res.json();
    return isObject(body) ? body : null;
  } catch {
    return null;
  }
}

/** The claims of a JWT, without verifying it (see the id_token note above), or null. */
export function decodeJwtClaims(jwt: string | null): Json | null {
  if (jwt === null) return null;
  const part = jwt.split('.')[1];
  if (part === undefined) return null;
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return isObject(claims) ? claims : null;
  } catch {
    return null;
  }
}
