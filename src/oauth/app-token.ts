/**
 * @module oauth/app-token
 * The app's own grant held in memory, for a connector that must not store a connection row
 * (Teams polls with the Microsoft client-credentials token but `GET /v1/connections` does not
 * list it). The request is `ProviderClient.appToken`, the same one `ConnectionService.connectApp`
 * and the refresh sweep use, so there is one implementation of the client-credentials call;
 * this adds the cache, the refresh ahead of expiry and the forced refresh after a 401.
 */

import type { Env } from '../config/env';
import type { Clock } from '../core/clock';
import { ProviderClient, type TokenSet } from './provider-client';
import { resolveProvider } from './providers';

/** `force`: drop the cached token first (the platform refused it). */
export interface AppTokenRequest {
  readonly force?: boolean;
}

/** What a connector is given: a usable app token, fetched again when asked to. */
export type AppToken = (request?: AppTokenRequest) => Promise<string>;

/** A token is replaced this long before it expires, so no call starts with a dying one. */
export const APP_TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** When the endpoint gives no `expires_in`: Microsoft's documented default lifetime. */
const DEFAULT_LIFETIME_MS = 3600_000;

/**
 * Caches the token until shortly before it expires (by the injected clock), with concurrent
 * callers sharing one request. A client-credentials grant never yields a refresh token: a new
 * token is simply requested again.
 */
export class AppTokenCache {
  private cached: { token: string; expiresAt: number } | null = null;
  private inflight: Promise<string> | null = null;

  constructor(
    private readonly request: () => Promise<TokenSet>,
    private readonly clock: Clock,
  ) {}

  get(request: AppTokenRequest = {}): Promise<string> {
    if (request.force === true) this.cached = null;
    const now = this.clock.now();
    if (this.cached !== null && now < this.cached.expiresAt - APP_TOKEN_REFRESH_MARGIN_MS) {
      return Promise.resolve(this.cached.token);
    }
    this.inflight ??= this.fetch().finally(() => {
      this.inflight = null;
    });
    return this.inflight;
  }

  private async fetch(): Promise<string> {
    const t = await this.request();
    const lifetime =
      t.expiresInSec !== null && t.expiresInSec > 0 ? t.expiresInSec * 1000 : DEFAULT_LIFETIME_MS;
    this.cached = { token: t.accessToken, expiresAt: this.clock.now() + lifetime };
    return t.accessToken;
  }
}

export interface MicrosoftAppTokenOptions {
  readonly tenantId: string;
  readonly clientId: string;
  readonly clientSecret: string;
  /** MS_LOGIN_URL; default https://login.microsoftonline.com. */
  readonly loginUrl?: string;
  /** Default: the Graph `.default` scope of providers.ts. */
  readonly scope?: string;
  readonly clock: Clock;
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

/**
 * The Microsoft client-credentials token through the provider table's `teams` entry. Fails with
 * `OAuthCallError` (status and code set when the endpoint answered).
 */
export function microsoftAppToken(o: MicrosoftAppTokenOptions): AppToken {
  const env = {
    MS_TENANT_ID: o.tenantId,
    MS_CLIENT_ID: o.clientId,
    MS_CLIENT_SECRET: o.clientSecret,
    ...(o.loginUrl === undefined ? {} : { MS_LOGIN_URL: o.loginUrl }),
  } as unknown as Env;
  const resolved = resolveProvider('teams', env);
  if (resolved === null) throw new Error('the Microsoft client credentials are incomplete');
  const provider =
    o.scope === undefined || resolved.app === null
      ? resolved
      : { ...resolved, app: { ...resolved.app, scope: o.scope } };
  const client = new ProviderClient(provider, {
    timeoutMs: o.timeoutMs ?? 10_000,
    fetch: o.fetch ?? globalThis.fetch,
    clock: o.clock,
  });
  const cache = new AppTokenCache(() => client.appToken(), o.clock);
  return (request) => cache.get(request);
}
