/**
 * @module oauth/flow
 * The authorization-code flow. `start` hands out the platform's authorize URL with a random
 * `state` (256 bits) bound to the user, the platform and the redirect URI, stored as a SHA-256
 * only, single-use and valid for `STATE_TTL_MS`; plus a PKCE S256 challenge where the platform
 * takes one (the verifier is kept sealed by the vault). `complete` takes the callback's query:
 * it spends the state first, so a replay, a platform error or a missing code all leave it spent
 * and store nothing; then it exchanges the code, finds out whose account it is, links the account
 * to the user (a conflict revokes the fresh grant and stores nothing) and stores the connection.
 */

import { createHash, randomBytes } from 'node:crypto';

import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import type { Log } from '../core/log';
import type { AccountRef, AsyncAuthorizeStateStore, ConnectionRow, LinkResult } from '../core/ports';
import { USER_ID_PATTERN } from '../core/presence';
import { toIso } from '../core/time';
import { OAuthCallError, type ProviderClient, type TokenSet } from './provider-client';
import { NO_USER_OAUTH, PROVIDERS, isOAuthPlatform, type OAuthPlatform } from './providers';
import { VaultError, sealContext, type TokenVault } from './vault';

/** How long an authorize URL can be used. */
export const STATE_TTL_MS = 10 * 60_000;

export type LinkAccount = (userId: string, account: AccountRef) => LinkResult | Promise<LinkResult>;

export interface FlowDeps {
  /** Where the flow keeps its pending states. */
  readonly store: AsyncAuthorizeStateStore;
  readonly vault: TokenVault;
  readonly client: (platform: OAuthPlatform) => ProviderClient | null;
  readonly clock: Clock;
  readonly log: Log;
  readonly linkAccount: LinkAccount;
  readonly hasUser: (userId: string) => boolean;
  /** Base of the default redirect URI; without it, callers must pass a redirect URI. */
  readonly publicUrl: string | undefined;
}

export interface AuthorizeStart {
  readonly platform: OAuthPlatform;
  readonly user_id: string;
  /** Where to send the person (the route answers 302 to it). */
  readonly url: string;
  readonly state: string;
  readonly redirect_uri: string;
  readonly pkce: boolean;
  readonly expires_at: string;
}

/** The callback's query string as a router parses it. */
export type CallbackQuery = Readonly<Record<string, unknown>>;

const sha256 = (s: string): string => createHash('sha256').update(s).digest('hex');

/** The redirect URI the routes serve: `${PUBLIC_URL}/v1/connect/{platform}/callback`. */
export function callbackUrl(publicUrl: string, platform: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/v1/connect/${platform}/callback`;
}

/** Resolves a path parameter to a platform that can be connected, or the fitting 4xx. */
export function requireOAuthPlatform(platform: string): OAuthPlatform {
  if (isOAuthPlatform(platform)) return platform;
  const reason = (NO_USER_OAUTH as Record<string, string | undefined>)[platform];
  if (reason !== undefined) throw new AppError('invalid_request', reason);
  throw new AppError('not_found', `unknown platform "${platform.slice(0, 40)}"`, [
    {
      code: 'unknown_platform',
      message: `platforms that can be connected: ${Object.keys(PROVIDERS).join(', ')}`,
    },
  ]);
}

function one(query: CallbackQuery, name: string): string | null {
  const v = query[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string')
    throw new AppError('invalid_request', `query parameter ${name} must appear once`);
  return v;
}

/** Platform-supplied text shown back to the caller: short, printable. */
function platformText(s: string | null): string {
  if (s === null) return '';
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return clean.length > 200 ? `${clean.slice(0, 197)}...` : clean;
}

export class AuthorizeFlow {
  constructor(private readonly deps: FlowDeps) {}

  async start(platformName: string, userId: string, redirectUri?: string): Promise<AuthorizeStart> {
    const { store, vault, clock, hasUser } = this.deps;
    const platform = requireOAuthPlatform(platformName);
    const client = this.requireClient(platform);
    if (!USER_ID_PATTERN.test(userId))
      throw new AppError('invalid_request', 'user_id is not a valid user id');
    if (!hasUser(userId)) throw new AppError('not_found', `unknown user ${userId}`);
    const redirect = this.redirectUri(platform, redirectUri);

    const now = clock.now();
    const state = randomBytes(32).toString('base64url');
    const stateHash = sha256(state);
    const verifier = PROVIDERS[platform].pkce ? randomBytes(32).toString('base64url') : null;
    const challenge = verifier === null ? null : createHash('sha256').update(verifier).digest('base64url');
    const expiresAt = now + STATE_TTL_MS;
    await store.transaction(async (tx) => {
      await store.purgeStates(now, tx);
      await store.insertState(
        {
          state_hash: stateHash,
          platform,
          user_id: userId,
          redirect_uri: redirect,
          code_verifier:
            verifier === null
              ? null
              : vault.seal(
                  verifier,
                  sealContext({ table: 'oauth_states', column: 'code_verifier', key: stateHash }),
                ),
          created_at: now,
          expires_at: expiresAt,
        },
        tx,
      );
    });
    return {
      platform,
      user_id: userId,
      url: client.authorizeUrl({ redirectUri: redirect, state, codeChallenge: challenge }),
      state,
      redirect_uri: redirect,
      pkce: verifier !== null,
      expires_at: toIso(expiresAt),
    };
  }

  /**
   * Finishes the flow. `store` persists the connection and returns its row; it runs only once the
   * account is linked.
   */
  async complete(
    platformName: string,
    query: CallbackQuery,
    store: (p: {
      platform: OAuthPlatform;
      userId: string;
      tokens: TokenSet;
      account: AccountRef;
    }) => Promise<ConnectionRow>,
  ): Promise<ConnectionRow> {
    const { vault, clock, log, hasUser, linkAccount } = this.deps;
    const platform = requireOAuthPlatform(platformName);
    const client = this.requireClient(platform);
    const stateParam = one(query, 'state');
    const error = one(query, 'error');
    const code = one(query, 'code');

    // Spent before anything else is looked at: whatever follows, this state is used up.
    const stateHash = stateParam === null || stateParam === '' ? null : sha256(stateParam);
    const saved = stateHash === null ? null : await this.deps.store.takeState(stateHash);

    if (error !== null) {
      const description = platformText(one(query, 'error_description'));
      throw new AppError(
        error === 'access_denied' ? 'forbidden' : 'invalid_request',
        `${platform} did not grant access: ${platformText(error)}${description === '' ? '' : ` (${description})`}`,
        [{ code: 'platform_error', message: platformText(error) }],
      );
    }
    if (stateHash === null) throw new AppError('invalid_request', 'the callback has no state parameter');
    if (saved === null) {
      throw new AppError('invalid_request', 'unknown or already used state: start the connection again', [
        { code: 'invalid_state', message: 'unknown or already used state' },
      ]);
    }
    if (saved.platform !== platform) {
      throw new AppError('invalid_request', `this state was issued for ${saved.platform}, not ${platform}`, [
        { code: 'invalid_state', message: 'platform mismatch' },
      ]);
    }
    const now = clock.now();
    if (saved.expires_at <= now) {
      throw new AppError(
        'invalid_request',
        'the state has expired (10 minutes): start the connection again',
        [{ code: 'expired_state', message: 'state expired' }],
      );
    }
    if (code === null || code === '')
      throw new AppError('invalid_request', 'the callback has no code parameter');
    if (!hasUser(saved.user_id)) throw new AppError('not_found', `unknown user ${saved.user_id}`);

    let verifier: string | null = null;
    if (saved.code_verifier !== null) {
      try {
        verifier = vault.open(
          saved.code_verifier,
          sealContext({ table: 'oauth_states', column: 'code_verifier', key: saved.state_hash }),
        );
      } catch (e) {
        if (!(e instanceof VaultError)) throw e;
        // The key changed between start and callback without the old one kept as previous.
        throw new AppError(
          'invalid_request',
          'this authorization can no longer be completed: start the connection again',
        );
      }
    }

    let tokens: TokenSet;
    let identity;
    try {
      tokens = await client.exchangeCode({ code, redirectUri: saved.redirect_uri, codeVerifier: verifier });
      identity = await client.identity(tokens);
    } catch (e) {
      throw this.callbackError(platform, e);
    }
    const account: AccountRef = {
      platform,
      externalId: identity.externalId,
      workspaceId: identity.workspaceId,
    };
    const linked = await linkAccount(saved.user_id, account);
    if (!linked.linked) {
      // The grant is useless to us: give it back rather than leave it dangling on the platform.
      const outcome = await client.revoke({
        accessToken: tokens.accessToken,
        refreshToken: tokens.refreshToken,
      });
      log.info(
        { platform, user_id: saved.user_id, revoked_at_platform: outcome.revoked },
        'connection refused: the account is linked to another user',
      );
      throw new AppError('conflict', `this ${platform} account is already linked to another user`, [
        { code: 'account_linked', message: 'the account belongs to another user; unlink it there first' },
      ]);
    }
    const row = await store({ platform, userId: saved.user_id, tokens, account });
    log.info(
      { connection_id: row.connection_id, platform, user_id: saved.user_id, external_id: account.externalId },
      'connection stored',
    );
    return row;
  }

  private requireClient(platform: OAuthPlatform): ProviderClient {
    const client = this.deps.client(platform);
    if (client === null) {
      const spec = PROVIDERS[platform];
      throw new AppError(
        'invalid_request',
        `${platform} is not configured on this server: set ${spec.clientIdEnv} and ${spec.clientSecretEnv}`,
      );
    }
    return client;
  }

  private redirectUri(platform: OAuthPlatform, given: string | undefined): string {
    if (given !== undefined) {
      let url: URL;
      try {
        url = new URL(given);
      } catch {
        throw new AppError('invalid_request', 'redirect_uri is not a URL');
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') {
        throw new AppError('invalid_request', 'redirect_uri must be http or https');
      }
      return given;
    }
    if (this.deps.publicUrl === undefined) {
      throw new AppError(
        'invalid_request',
        'PUBLIC_URL is not set, so there is no callback URL for OAuth redirects',
      );
    }
    return callbackUrl(this.deps.publicUrl, platform);
  }

  private callbackError(platform: OAuthPlatform, e: unknown): AppError {
    if (e instanceof AppError) return e;
    if (e instanceof OAuthCallError) {
      // A refused code (expired, reused, wrong verifier) is the caller's flow to restart; a
      // platform that failed or did not answer is a 502.
      if (e.kind === 'transient') return new AppError('platform_error', e.message);
      if (e.status !== null && e.status < 500 && e.code !== null) {
        return new AppError('invalid_request', `${platform} refused the authorization code: ${e.message}`, [
          { code: 'code_refused', message: e.code },
        ]);
      }
      return new AppError('platform_error', e.message);
    }
    return new AppError('platform_error', `${platform} callback failed`);
  }
}
