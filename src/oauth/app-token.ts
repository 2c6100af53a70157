/**
 * @module oauth/app-token
 * The app's own grants (Zoom Server-to-Server with ZOOM_ACCOUNT_ID, Microsoft client credentials
 * with MS_TENANT_ID), one token source per grant. The composition root builds `AppGrants` once and
 * gives the same instance to everything that needs the app's token: the Teams connector (which
 * polls with it and keeps no connection row), `ConnectionService.connectApp` and the refresh sweep
 * (which store it in the grant's `app` connection). So a grant has one request path
 * (`ProviderClient.appToken`), one cache, one request in flight for all of its callers, and one
 * forced refresh when a platform refuses the token (Graph's 401).
 */

import type { Env } from '../config/env';
import type { Clock } from '../core/clock';
import { ProviderClient, type TokenSet } from './provider-client';
import { OAUTH_PLATFORMS, PROVIDERS, resolveProvider, type OAuthPlatform } from './providers';

/** `force`: drop the cached token first (the platform refused it, or a new one is wanted). */
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
 * callers sharing one request; a forced call joins a request already in flight (it was started
 * after the cached token, so it brings a new one). A client-credentials grant never yields a
 * refresh token: a new token is simply requested again. A failure is not cached.
 */
export class AppTokenCache {
  private cached: { tokens: TokenSet; expiresAt: number } | null = null;
  private inflight: Promise<TokenSet> | null = null;

  constructor(
    private readonly request: () => Promise<TokenSet>,
    private readonly clock: Clock,
  ) {}

  /** A usable access token. */
  get(request: AppTokenRequest = {}): Promise<string> {
    const cached = this.usable(request);
    return cached !== null ? Promise.resolve(cached.accessToken) : this.fetch().then((t) => t.accessToken);
  }

  /** The whole token response (what a connection stores: expiry, scopes), from the same cache. */
  tokens(request: AppTokenRequest = {}): Promise<TokenSet> {
    return Promise.resolve(this.usable(request) ?? this.fetch());
  }

  private usable(request: AppTokenRequest): TokenSet | null {
    if (request.force === true) this.cached = null;
    const c = this.cached;
    return c !== null && this.clock.now() < c.expiresAt - APP_TOKEN_REFRESH_MARGIN_MS ? c.tokens : null;
  }

  private fetch(): Promise<TokenSet> {
    this.inflight ??= this.request()
      .then((t) => {
        const lifetime =
          t.expiresInSec !== null && t.expiresInSec > 0 ? t.expiresInSec * 1000 : DEFAULT_LIFETIME_MS;
        this.cached = { tokens: t, expiresAt: this.clock.now() + lifetime };
        return t;
      })
      .finally(() => {
        this.inflight = null;
      });
    return this.inflight;
  }
}

/** One app grant: a platform's app, for one account (Zoom account, Microsoft tenant). */
export interface AppGrant {
  readonly platform: OAuthPlatform;
  /** The account the grant is for; null when the configuration names none (the request then fails). */
  readonly accountId: string | null;
  /** A usable access token (for a connector). */
  readonly token: AppToken;
  /** The whole token response (for the connection layer, which stores it). */
  tokens(request?: AppTokenRequest): Promise<TokenSet>;
}

export interface AppGrantsOptions {
  readonly clock: Clock;
  /** Per token request (default 10 s). */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

/**
 * The app grants of one configuration: one per platform with an app grant in the provider table
 * whose client id and secret are set. A platform whose account variable is missing or names no
 * single account (MS_TENANT_ID=organizations) still has its grant object: its requests fail with
 * the OAuth layer's reason, which the caller reports.
 */
export class AppGrants {
  private readonly grants = new Map<OAuthPlatform, AppGrant>();

  constructor(env: Env, options: AppGrantsOptions) {
    const clientOptions = {
      timeoutMs: options.timeoutMs ?? 10_000,
      fetch: options.fetch ?? globalThis.fetch,
      clock: options.clock,
    };
    for (const platform of OAUTH_PLATFORMS) {
      if (PROVIDERS[platform].app === null) continue;
      const resolved = resolveProvider(platform, env);
      if (resolved === null) continue;
      const client = new ProviderClient(resolved, clientOptions);
      const cache = new AppTokenCache(() => client.appToken(), options.clock);
      this.grants.set(platform, {
        platform,
        accountId: resolved.app?.accountId ?? null,
        token: (request) => cache.get(request),
        tokens: (request) => cache.tokens(request),
      });
    }
  }

  /** The platform's grant, or null when its client id or secret is not set. */
  for(platform: OAuthPlatform): AppGrant | null {
    return this.grants.get(platform) ?? null;
  }
}
