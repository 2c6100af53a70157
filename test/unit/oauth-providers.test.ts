/**
 * @module test/unit/oauth-providers
 * The provider table as data: production defaults, configuration overrides, platforms left off.
 */

import { parseEnv } from '../../src/config/env';
import { OAUTH_PLATFORMS, PROVIDERS, resolveProvider, type OAuthPlatform } from '../../src/oauth/providers';
import { requireOAuthPlatform } from '../../src/oauth/flow';

const creds = {
  SLACK_CLIENT_ID: 's',
  SLACK_CLIENT_SECRET: 'ss',
  MS_CLIENT_ID: 'm',
  MS_CLIENT_SECRET: 'ms',
  DISCORD_CLIENT_ID: 'd',
  DISCORD_CLIENT_SECRET: 'ds',
  ZOOM_CLIENT_ID: 'z',
  ZOOM_CLIENT_SECRET: 'zs',
  LINKEDIN_CLIENT_ID: 'l',
  LINKEDIN_CLIENT_SECRET: 'ls',
};

describe('OAuth provider table', () => {
  it('has one entry per OAuth platform, and WhatsApp is refused with a reason', () => {
    expect(Object.keys(PROVIDERS).sort()).toEqual([...OAUTH_PLATFORMS].sort());
    for (const p of OAUTH_PLATFORMS) expect(PROVIDERS[p].platform).toBe(p);
    expect(() => requireOAuthPlatform('whatsapp')).toThrow(/system-user access token/);
    expect(() => requireOAuthPlatform('orkut')).toThrow(
      expect.objectContaining({ code: 'not_found' }) as Error,
    );
  });

  it('defaults to the production hosts of each platform', () => {
    const env = parseEnv(creds);
    const urls = (p: OAuthPlatform): Record<string, string | null> => {
      const r = resolveProvider(p, env);
      if (r === null) throw new Error(p);
      return { authorize: r.authorizeUrl, token: r.tokenUrl, revoke: r.revokeUrl, identity: r.identityUrl };
    };
    expect(urls('slack')).toEqual({
      authorize: 'https://slack.com/oauth/v2/authorize',
      token: 'https://slack.com/api/oauth.v2.access',
      revoke: 'https://slack.com/api/auth.revoke',
      identity: null,
    });
    expect(urls('teams')).toEqual({
      authorize: 'https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize',
      token: 'https://login.microsoftonline.com/organizations/oauth2/v2.0/token',
      revoke: null,
      identity: 'https://graph.microsoft.com/v1.0/me',
    });
    expect(urls('discord')).toEqual({
      authorize: 'https://discord.com/oauth2/authorize',
      token: 'https://discord.com/api/oauth2/token',
      revoke: 'https://discord.com/api/oauth2/token/revoke',
      identity: 'https://discord.com/api/v10/users/@me',
    });
    expect(urls('zoom')).toEqual({
      authorize: 'https://zoom.us/oauth/authorize',
      token: 'https://zoom.us/oauth/token',
      revoke: 'https://zoom.us/oauth/revoke',
      identity: 'https://api.zoom.us/v2/users/me',
    });
    expect(urls('linkedin')).toEqual({
      authorize: 'https://www.linkedin.com/oauth/v2/authorization',
      token: 'https://www.linkedin.com/oauth/v2/accessToken',
      revoke: 'https://www.linkedin.com/oauth/v2/revoke',
      identity: 'https://api.linkedin.com/v2/userinfo',
    });
  });

  it('lets every host be overridden, keeping path prefixes', () => {
    const env = parseEnv({
      ...creds,
      SLACK_API_URL: 'http://proxy.test/slack/api/',
      MS_LOGIN_URL: 'https://login.microsoftonline.us',
      GRAPH_API_URL: 'https://graph.microsoft.us',
      MS_TENANT_ID: 'contoso.onmicrosoft.com',
      DISCORD_API_URL: 'http://127.0.0.1:1/api',
      ZOOM_OAUTH_URL: 'http://127.0.0.1:2',
      ZOOM_API_URL: 'http://127.0.0.1:3/v2',
      ZOOM_ACCOUNT_ID: 'acct',
      LINKEDIN_OAUTH_URL: 'http://127.0.0.1:4/oauth',
      LINKEDIN_API_URL: 'http://127.0.0.1:5',
    });
    expect(resolveProvider('slack', env)).toMatchObject({
      authorizeUrl: 'http://proxy.test/oauth/v2/authorize',
      tokenUrl: 'http://proxy.test/slack/api/oauth.v2.access',
    });
    expect(resolveProvider('teams', env)).toMatchObject({
      authorizeUrl: 'https://login.microsoftonline.us/contoso.onmicrosoft.com/oauth2/v2.0/authorize',
      identityUrl: 'https://graph.microsoft.us/v1.0/me',
      defaultWorkspace: 'contoso.onmicrosoft.com',
      app: { scope: 'https://graph.microsoft.us/.default', accountId: 'contoso.onmicrosoft.com' },
    });
    expect(resolveProvider('discord', env)).toMatchObject({
      authorizeUrl: 'http://127.0.0.1:1/oauth2/authorize',
      tokenUrl: 'http://127.0.0.1:1/api/oauth2/token',
    });
    expect(resolveProvider('zoom', env)).toMatchObject({
      tokenUrl: 'http://127.0.0.1:2/oauth/token',
      identityUrl: 'http://127.0.0.1:3/v2/users/me',
      app: { tokenUrl: 'http://127.0.0.1:2/oauth/token', accountId: 'acct', scope: null },
    });
    expect(resolveProvider('linkedin', env)).toMatchObject({
      tokenUrl: 'http://127.0.0.1:4/oauth/v2/accessToken',
      identityUrl: 'http://127.0.0.1:5/v2/userinfo',
    });
  });

  it('leaves a platform off without its client id and secret, and app grants off without their account', () => {
    const env = parseEnv({
      SLACK_CLIENT_ID: 'only-id',
      MS_CLIENT_ID: 'm',
      MS_CLIENT_SECRET: 'x',
      MS_TENANT_ID: 'common',
    });
    expect(resolveProvider('slack', env)).toBeNull();
    expect(resolveProvider('zoom', env)).toBeNull();
    const teams = resolveProvider('teams', env);
    expect(teams?.authorizeUrl).toBe('https://login.microsoftonline.com/common/oauth2/v2.0/authorize');
    // `common` names no tenant: no client-credentials grant, no workspace to record.
    expect(teams).toMatchObject({ app: null, defaultWorkspace: '' });
  });

  it('keeps the platform quirks as data', () => {
    expect(PROVIDERS.slack).toMatchObject({
      scopeParam: 'user_scope',
      scopeSeparator: ',',
      tokenLocation: 'authed_user',
      okFlag: true,
    });
    expect(PROVIDERS.teams.scopes).toContain('offline_access');
    expect(PROVIDERS.teams.refresh).toMatchObject({ rotates: true, sendScope: true });
    expect(PROVIDERS.discord).toMatchObject({ bodyFormat: 'form', refresh: { accessTtlSec: 604_800 } });
    expect(PROVIDERS.zoom.app).toMatchObject({ grantType: 'account_credentials' });
    expect(PROVIDERS.linkedin).toMatchObject({
      scopes: ['openid', 'profile', 'email'],
      pkce: false,
      refresh: { refreshTokens: 'optional', accessTtlSec: 60 * 24 * 3600 },
      expiryWarningMs: 7 * 24 * 3600_000,
    });
    // PKCE only where confirmed for web apps.
    expect(OAUTH_PLATFORMS.filter((p) => PROVIDERS[p].pkce)).toEqual(['teams', 'zoom']);
  });
});
