/**
 * @module oauth/providers
 * The OAuth provider table: one entry of plain data per platform (endpoints, scopes, client
 * authentication, PKCE, refresh behaviour, identity source, revocation), after Nango's
 * providers.yaml. Quirks live here as fields, so the flow and token code stays generic.
 * Every host comes from a base URL that an environment variable overrides (README, Configuration), for
 * national clouds, proxies and the tests' loopback fake.
 *
 * The platform facts behind each entry, with their sources, are in the "Platform facts" section of
 * each connector's README (connectors/<platform>/README.md). Where a platform's documentation
 * leaves something unconfirmed, the entry takes the conservative choice and says why.
 */

import type { Env } from '../config/env';
import type { RealPlatform } from '../core/presence';

/** Platforms a person (or the app itself) can connect through OAuth. */
export const OAUTH_PLATFORMS = ['slack', 'teams', 'discord', 'zoom', 'linkedin'] as const;
export type OAuthPlatform = (typeof OAUTH_PLATFORMS)[number];

export function isOAuthPlatform(p: string): p is OAuthPlatform {
  return (OAUTH_PLATFORMS as readonly string[]).includes(p);
}

/** Platforms that exist but have no OAuth to connect, with the reason shown to the caller. */
export const NO_USER_OAUTH: Readonly<Partial<Record<RealPlatform | 'device' | 'simulated', string>>> = {
  whatsapp:
    'whatsapp has no user OAuth: the Cloud API works with a system-user access token set as WHATSAPP_ACCESS_TOKEN',
  device: 'device presence comes from heartbeats (POST /v1/heartbeats); there is nothing to connect',
  simulated: 'simulated platforms need no connection',
};

type UrlEnvKey =
  | 'SLACK_API_URL'
  | 'MS_LOGIN_URL'
  | 'GRAPH_API_URL'
  | 'DISCORD_API_URL'
  | 'ZOOM_OAUTH_URL'
  | 'ZOOM_API_URL'
  | 'LINKEDIN_OAUTH_URL'
  | 'LINKEDIN_API_URL';

type CredentialEnvKey =
  | 'SLACK_CLIENT_ID'
  | 'SLACK_CLIENT_SECRET'
  | 'MS_CLIENT_ID'
  | 'MS_CLIENT_SECRET'
  | 'DISCORD_CLIENT_ID'
  | 'DISCORD_CLIENT_SECRET'
  | 'ZOOM_CLIENT_ID'
  | 'ZOOM_CLIENT_SECRET'
  | 'LINKEDIN_CLIENT_ID'
  | 'LINKEDIN_CLIENT_SECRET';

/** A base URL: the production default and the variable that overrides it. No trailing slash. */
export interface BaseUrl {
  readonly env: UrlEnvKey;
  readonly default: string;
}

/** An endpoint under a base. `atOrigin` puts the path at the base's origin, dropping its path. */
export interface Endpoint {
  readonly base: string;
  readonly path: string;
  readonly atOrigin?: boolean;
  /** The platform's documentation of this endpoint. */
  readonly doc: string;
}

/**
 * Where the account's identity comes from:
 * - `slack_authed_user`: `authed_user.id` and `team.id` of the oauth.v2.access response;
 * - `id_token_oid`: the `oid`/`tid` claims of the id_token from the token endpoint, `/me` as fallback;
 * - `identity_endpoint`: a GET on the identity endpoint with the new token, reading `idField`.
 */
export type IdentitySource =
  | { readonly kind: 'slack_authed_user' }
  | { readonly kind: 'id_token_oid' }
  | { readonly kind: 'identity_endpoint'; readonly idField: string; readonly workspaceField?: string };

export type RevokeSpec =
  /** No endpoint: tokens are deleted here and the person removes the grant on the platform. */
  | { readonly kind: 'none'; readonly reason: string }
  /** RFC 7009 through simple-oauth2 `revoke()`, one call per listed token type present. */
  | { readonly kind: 'rfc7009'; readonly tokens: readonly ('access_token' | 'refresh_token')[] }
  /** Slack `auth.revoke`: the token itself as Bearer, no client credentials. */
  | { readonly kind: 'bearer' }
  /** Zoom: `POST /oauth/revoke?token=…` with HTTP Basic client credentials. */
  | { readonly kind: 'query_basic' };

export interface RefreshSpec {
  /** Whether refresh tokens exist at all for this platform ('optional': only in some set-ups). */
  readonly refreshTokens: 'always' | 'optional' | 'never';
  /** Does a refresh answer with a new refresh token that replaces the old one? */
  readonly rotates: boolean;
  /** Send the granted scopes again with `grant_type=refresh_token`. */
  readonly sendScope: boolean;
  /** Typical access-token lifetime, for documentation and tests (the response's expires_in rules). */
  readonly accessTtlSec: number | null;
}

/** The app's own grant (no person): Zoom Server-to-Server OAuth, Microsoft client credentials. */
export interface AppGrantSpec {
  readonly grantType: 'client_credentials' | 'account_credentials';
  /** The variable naming the account or tenant the grant is for; it is required. */
  readonly accountEnv: 'ZOOM_ACCOUNT_ID' | 'MS_TENANT_ID';
  /** The request parameter carrying the account id, if the grant takes one. */
  readonly accountParam: string | null;
  /** Scope sent with the grant: a path under a base (Graph `.default`), or none. */
  readonly scope: { readonly base: string; readonly path: string } | null;
  readonly doc: string;
}

export interface OAuthProviderSpec {
  readonly platform: OAuthPlatform;
  readonly displayName: string;
  readonly clientIdEnv: CredentialEnvKey;
  readonly clientSecretEnv: CredentialEnvKey;
  readonly bases: Readonly<Record<string, BaseUrl>>;
  /** `{tenant}` in a path is replaced by `tenant` below. */
  readonly tenant?: { readonly env: 'MS_TENANT_ID'; readonly default: string };
  readonly authorize: Endpoint;
  readonly token: Endpoint;
  readonly revokeEndpoint: Endpoint | null;
  readonly identityEndpoint: Endpoint | null;
  /** Scopes presence needs. */
  readonly scopes: readonly string[];
  /** The authorize parameter carrying them; null when scopes are set on the app instead. */
  readonly scopeParam: 'scope' | 'user_scope' | null;
  readonly scopeSeparator: ' ' | ',';
  readonly extraAuthorizeParams: Readonly<Record<string, string>>;
  /** Client credentials as HTTP Basic ('header') or as client_id/client_secret in the body. */
  readonly clientAuth: 'header' | 'body';
  readonly bodyFormat: 'form' | 'json';
  /** PKCE S256 on the authorize/token exchange. */
  readonly pkce: boolean;
  /** Where the token is in the token response: the root, or Slack's `authed_user` for user tokens. */
  readonly tokenLocation: 'root' | 'authed_user';
  /** Slack answers errors with HTTP 200 and `{ ok: false, error }`. */
  readonly okFlag: boolean;
  readonly refresh: RefreshSpec;
  /** Error codes of a refresh that mean the grant is gone and the person must connect again. */
  readonly reauthErrors: readonly string[];
  /** Error codes that mean the platform revoked the grant (app uninstalled, token revoked). */
  readonly revokedErrors: readonly string[];
  /** Warn this long before a grant that cannot be refreshed expires (LinkedIn's 60 days). */
  readonly expiryWarningMs: number | null;
  readonly identity: IdentitySource;
  readonly revoke: RevokeSpec;
  readonly app: AppGrantSpec | null;
}

const DAY_MS = 24 * 60 * 60_000;

export const PROVIDERS: Readonly<Record<OAuthPlatform, OAuthProviderSpec>> = {
  slack: {
    platform: 'slack',
    displayName: 'Slack',
    clientIdEnv: 'SLACK_CLIENT_ID',
    clientSecretEnv: 'SLACK_CLIENT_SECRET',
    // SLACK_API_URL is the Web API base (@slack/web-api's slackApiUrl); the authorize page is at
    // the same origin, under /oauth/v2/authorize, so one override moves both.
    bases: { api: { env: 'SLACK_API_URL', default: 'https://slack.com/api' } },
    authorize: {
      base: 'api',
      path: '/oauth/v2/authorize',
      atOrigin: true,
      doc: 'https://api.slack.com/authentication/oauth-v2',
    },
    token: {
      base: 'api',
      path: '/oauth.v2.access',
      doc: 'https://docs.slack.dev/reference/methods/oauth.v2.access',
    },
    revokeEndpoint: {
      base: 'api',
      path: '/auth.revoke',
      doc: 'https://docs.slack.dev/reference/methods/auth.revoke',
    },
    identityEndpoint: null,
    // User-token scopes: users.getPresence on the person's own token also tells manual_away and
    // auto_away, and DND/profile reads cover custom status (connectors/slack/README.md, Platform facts).
    scopes: ['users:read', 'dnd:read', 'users.profile:read'],
    scopeParam: 'user_scope',
    scopeSeparator: ',',
    extraAuthorizeParams: {},
    // "prefer HTTP Basic client auth" (oauth.v2.access docs).
    clientAuth: 'header',
    bodyFormat: 'form',
    // PKCE on oauth.v2.access is not documented (connectors/slack/README.md) and this is a confidential
    // client with a secret; the single-use state already guards the callback. Off.
    pkce: false,
    tokenLocation: 'authed_user',
    okFlag: true,
    // Rotation is opt-in per app: with it, 12 h access tokens and a new refresh token on every
    // refresh (the old one is revoked); without it, tokens never expire and there is no refresh.
    refresh: { refreshTokens: 'optional', rotates: true, sendScope: false, accessTtlSec: 12 * 3600 },
    reauthErrors: ['invalid_refresh_token', 'invalid_grant', 'token_expired'],
    revokedErrors: ['token_revoked', 'app_uninstalled', 'account_inactive'],
    expiryWarningMs: null,
    identity: { kind: 'slack_authed_user' },
    revoke: { kind: 'bearer' },
    app: null,
  },

  teams: {
    platform: 'teams',
    displayName: 'Microsoft Teams',
    clientIdEnv: 'MS_CLIENT_ID',
    clientSecretEnv: 'MS_CLIENT_SECRET',
    bases: {
      login: { env: 'MS_LOGIN_URL', default: 'https://login.microsoftonline.com' },
      // The Graph host root, without a version, as the Graph SDK's baseUrl.
      graph: { env: 'GRAPH_API_URL', default: 'https://graph.microsoft.com' },
    },
    // Work and school accounts only: Graph presence does not support personal accounts (connectors/teams/README.md),
    // so without a tenant the multi-tenant `organizations` authority is used.
    tenant: { env: 'MS_TENANT_ID', default: 'organizations' },
    authorize: {
      base: 'login',
      path: '/{tenant}/oauth2/v2.0/authorize',
      doc: 'https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow',
    },
    token: {
      base: 'login',
      path: '/{tenant}/oauth2/v2.0/token',
      doc: 'https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow',
    },
    revokeEndpoint: null,
    identityEndpoint: {
      base: 'graph',
      path: '/v1.0/me',
      doc: 'https://learn.microsoft.com/graph/api/user-get',
    },
    // offline_access is what yields a refresh token; openid gives the id_token naming the account.
    scopes: ['openid', 'profile', 'offline_access', 'User.Read', 'Presence.Read.All'],
    scopeParam: 'scope',
    scopeSeparator: ' ',
    extraAuthorizeParams: { response_mode: 'query' },
    clientAuth: 'body',
    bodyFormat: 'form',
    // The v2 authorization-code flow documents code_challenge (S256) for web apps too, and MSAL
    // always sends it (connectors/teams/README.md); sending PKCE is harmless where an
    // authority ignores it and protects against code injection where it does not. On.
    pkce: true,
    tokenLocation: 'root',
    okFlag: false,
    // Refresh tokens replace themselves on every use (90 days; the old one is not revoked).
    refresh: { refreshTokens: 'always', rotates: true, sendScope: true, accessTtlSec: 3600 },
    reauthErrors: ['invalid_grant', 'interaction_required', 'consent_required'],
    revokedErrors: [],
    expiryWarningMs: null,
    identity: { kind: 'id_token_oid' },
    revoke: {
      kind: 'none',
      reason:
        'the Microsoft identity platform has no token revocation endpoint for apps; remove the app under My Apps or in Entra ID',
    },
    app: {
      grantType: 'client_credentials',
      accountEnv: 'MS_TENANT_ID',
      accountParam: null,
      scope: { base: 'graph', path: '/.default' },
      doc: 'https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow',
    },
  },

  discord: {
    platform: 'discord',
    displayName: 'Discord',
    clientIdEnv: 'DISCORD_CLIENT_ID',
    clientSecretEnv: 'DISCORD_CLIENT_SECRET',
    // DISCORD_API_URL is discord.js's `rest.api` (https://discord.com/api); the authorize page is
    // at its origin.
    bases: { api: { env: 'DISCORD_API_URL', default: 'https://discord.com/api' } },
    authorize: {
      base: 'api',
      path: '/oauth2/authorize',
      atOrigin: true,
      doc: 'https://discord.com/developers/docs/topics/oauth2#authorization-code-grant',
    },
    token: {
      base: 'api',
      path: '/oauth2/token',
      doc: 'https://discord.com/developers/docs/topics/oauth2#authorization-code-grant-access-token-exchange-example',
    },
    revokeEndpoint: {
      base: 'api',
      path: '/oauth2/token/revoke',
      doc: 'https://discord.com/developers/docs/topics/oauth2#authorization-code-grant-token-revocation-example',
    },
    identityEndpoint: {
      base: 'api',
      path: '/v10/users/@me',
      doc: 'https://discord.com/developers/docs/resources/user#get-current-user',
    },
    // Presence itself comes from the bot on the gateway; the person's grant only proves who they are.
    scopes: ['identify'],
    scopeParam: 'scope',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    // Token and revoke accept only application/x-www-form-urlencoded; Basic client auth is accepted.
    clientAuth: 'header',
    bodyFormat: 'form',
    // PKCE is documented for the Embedded App / Social SDK public clients only; for a web app
    // with a secret it is not documented (connectors/discord/README.md). Off.
    pkce: false,
    tokenLocation: 'root',
    okFlag: false,
    refresh: { refreshTokens: 'always', rotates: true, sendScope: false, accessTtlSec: 7 * 24 * 3600 },
    reauthErrors: ['invalid_grant'],
    revokedErrors: [],
    expiryWarningMs: null,
    identity: { kind: 'identity_endpoint', idField: 'id' },
    // Revoking either token ends the grant; RFC 7009 says an unknown token still answers 200.
    revoke: { kind: 'rfc7009', tokens: ['access_token', 'refresh_token'] },
    app: null,
  },

  zoom: {
    platform: 'zoom',
    displayName: 'Zoom',
    clientIdEnv: 'ZOOM_CLIENT_ID',
    clientSecretEnv: 'ZOOM_CLIENT_SECRET',
    bases: {
      oauth: { env: 'ZOOM_OAUTH_URL', default: 'https://zoom.us' },
      api: { env: 'ZOOM_API_URL', default: 'https://api.zoom.us/v2' },
    },
    authorize: {
      base: 'oauth',
      path: '/oauth/authorize',
      doc: 'https://developers.zoom.us/docs/integrations/oauth/',
    },
    token: {
      base: 'oauth',
      path: '/oauth/token',
      doc: 'https://developers.zoom.us/docs/integrations/oauth/',
    },
    revokeEndpoint: {
      base: 'oauth',
      path: '/oauth/revoke',
      doc: 'https://developers.zoom.us/docs/integrations/oauth/#revoking-an-access-token',
    },
    identityEndpoint: {
      base: 'api',
      path: '/users/me',
      doc: 'https://developers.zoom.us/docs/api/users/#tag/users/GET/users/{userId}',
    },
    // Informational: Zoom takes scopes from the app's Marketplace configuration, not from the
    // authorize URL, so none are sent (scopeParam null); the granted ones come back in `scope`.
    scopes: ['user:read:user', 'user:read:presence_status'],
    scopeParam: null,
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    clientAuth: 'header',
    bodyFormat: 'form',
    // PKCE is supported (Zoom Apps require it; connectors/zoom/README.md). On.
    pkce: true,
    tokenLocation: 'root',
    okFlag: false,
    // 1 h access tokens; refresh tokens rotate on use (lifetime unconfirmed, ~90 days).
    refresh: { refreshTokens: 'always', rotates: true, sendScope: false, accessTtlSec: 3600 },
    reauthErrors: ['invalid_grant'],
    revokedErrors: [],
    expiryWarningMs: null,
    identity: { kind: 'identity_endpoint', idField: 'id' },
    revoke: { kind: 'query_basic' },
    // Server-to-Server OAuth: 1 h tokens and no refresh token; a new one is fetched ahead of expiry.
    app: {
      grantType: 'account_credentials',
      accountEnv: 'ZOOM_ACCOUNT_ID',
      accountParam: 'account_id',
      scope: null,
      doc: 'https://developers.zoom.us/docs/internal-apps/s2s-oauth/',
    },
  },

  linkedin: {
    platform: 'linkedin',
    displayName: 'LinkedIn',
    clientIdEnv: 'LINKEDIN_CLIENT_ID',
    clientSecretEnv: 'LINKEDIN_CLIENT_SECRET',
    bases: {
      oauth: { env: 'LINKEDIN_OAUTH_URL', default: 'https://www.linkedin.com/oauth' },
      api: { env: 'LINKEDIN_API_URL', default: 'https://api.linkedin.com' },
    },
    authorize: {
      base: 'oauth',
      path: '/v2/authorization',
      doc: 'https://learn.microsoft.com/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2',
    },
    token: {
      base: 'oauth',
      path: '/v2/accessToken',
      doc: 'https://learn.microsoft.com/linkedin/shared/authentication/authorization-code-flow',
    },
    // Not confirmed in LinkedIn's documentation: an RFC 7009-style endpoint, widely used with client
    // credentials in the body. A failed revoke never blocks the local deletion.
    revokeEndpoint: {
      base: 'oauth',
      path: '/v2/revoke',
      doc: 'https://learn.microsoft.com/linkedin/shared/authentication/authorization-code-flow',
    },
    identityEndpoint: {
      base: 'api',
      path: '/v2/userinfo',
      doc: 'https://learn.microsoft.com/linkedin/consumer/integrations/self-serve/sign-in-with-linkedin-v2#api-request-to-retreive-member-details',
    },
    scopes: ['openid', 'profile', 'email'],
    scopeParam: 'scope',
    scopeSeparator: ' ',
    extraAuthorizeParams: {},
    clientAuth: 'body',
    bodyFormat: 'form',
    // PKCE for web apps is not documented; LinkedIn documents it for native clients only. Off.
    pkce: false,
    tokenLocation: 'root',
    okFlag: false,
    // 60-day access tokens; refresh tokens only for approved partners (365 days, not extended by
    // refreshing). Most connections must be renewed by the person: hence the expiry warning.
    refresh: { refreshTokens: 'optional', rotates: false, sendScope: false, accessTtlSec: 60 * 24 * 3600 },
    reauthErrors: ['invalid_grant'],
    revokedErrors: [],
    expiryWarningMs: 7 * DAY_MS,
    identity: { kind: 'identity_endpoint', idField: 'sub' },
    revoke: { kind: 'rfc7009', tokens: ['access_token'] },
    app: null,
  },
};

/** A provider entry with this deployment's configuration applied: full URLs and credentials. */
export interface ResolvedProvider {
  readonly spec: OAuthProviderSpec;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly authorizeUrl: string;
  readonly tokenUrl: string;
  readonly revokeUrl: string | null;
  readonly identityUrl: string | null;
  /** The workspace recorded when the token response names none (Teams: a configured tenant). */
  readonly defaultWorkspace: string;
  /** Set when the app grant is configured (its account variable is present). */
  readonly app: {
    readonly tokenUrl: string;
    readonly accountId: string;
    readonly scope: string | null;
  } | null;
}

function baseOf(spec: OAuthProviderSpec, env: Env, name: string): string {
  const base = spec.bases[name];
  if (base === undefined) throw new Error(`provider ${spec.platform}: unknown base ${name}`);
  return (env[base.env] ?? base.default).replace(/\/+$/, '');
}

function endpointUrl(spec: OAuthProviderSpec, env: Env, e: Endpoint, tenant: string): string {
  const base = baseOf(spec, env, e.base);
  const root = e.atOrigin === true ? new URL(base).origin : base;
  return root + e.path.replace('{tenant}', encodeURIComponent(tenant));
}

/** Authorities that name no tenant: fine for a person's sign-in, not for an app's own grant. */
const SHARED_AUTHORITIES = new Set(['organizations', 'common', 'consumers']);

/**
 * Applies the configuration to an entry. Returns null when the platform's client id or secret is
 * missing: the platform is then off for connections.
 */
export function resolveProvider(platform: OAuthPlatform, env: Env): ResolvedProvider | null {
  const spec = PROVIDERS[platform];
  const clientId = env[spec.clientIdEnv];
  const clientSecret = env[spec.clientSecretEnv];
  if (clientId === undefined || clientSecret === undefined) return null;
  const configuredTenant = spec.tenant === undefined ? undefined : env[spec.tenant.env];
  const tenant = configuredTenant ?? spec.tenant?.default ?? '';
  const url = (e: Endpoint | null): string | null => (e === null ? null : endpointUrl(spec, env, e, tenant));
  let app: ResolvedProvider['app'] = null;
  if (spec.app !== null) {
    const accountId = env[spec.app.accountEnv];
    if (accountId !== undefined && !SHARED_AUTHORITIES.has(accountId)) {
      const appTenant = spec.tenant === undefined ? tenant : accountId;
      const scope = spec.app.scope;
      app = {
        tokenUrl: endpointUrl(spec, env, spec.token, appTenant),
        accountId,
        scope: scope === null ? null : baseOf(spec, env, scope.base) + scope.path,
      };
    }
  }
  return {
    spec,
    clientId,
    clientSecret,
    authorizeUrl: endpointUrl(spec, env, spec.authorize, tenant),
    tokenUrl: endpointUrl(spec, env, spec.token, tenant),
    revokeUrl: url(spec.revokeEndpoint),
    identityUrl: url(spec.identityEndpoint),
    defaultWorkspace:
      configuredTenant === undefined || SHARED_AUTHORITIES.has(configuredTenant) ? '' : configuredTenant,
    app,
  };
}
