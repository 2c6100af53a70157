/**
 * @module oauth/service
 * The facade the HTTP routes and the CLI use for OAuth connections (issue 5): start and finish
 * an authorize flow, list and show connections as `GET /v1/connections` shows them, delete
 * (revoking at the platform where it can), hand connectors a fresh access token, and run the
 * refresh sweep. Everything is injected through the constructor; nothing here reads the wall
 * clock or the process environment. Returned objects are JSON-ready, snake_case and never hold
 * a token (view.ts builds them). `rotateSecret` re-encrypts every stored token under a new key, for
 * `presence keys rotate-secret`.
 */

import { randomBytes } from 'node:crypto';

import { requireSecretKey, type Env } from '../config/env';
import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import type { Log } from '../core/log';
import type {
  AccountRef,
  ConnectionFilter,
  ConnectionKind,
  AsyncConnectionStore,
  ConnectionRow,
  Locks,
  SealedTokens,
  StoreTx,
} from '../core/ports';
import {
  AuthorizeFlow,
  requireOAuthPlatform,
  type AuthorizeStart,
  type CallbackQuery,
  type LinkAccount,
} from './flow';
import { AppGrants } from './app-token';
import { OAuthCallError, ProviderClient, type RevokeOutcome, type TokenSet } from './provider-client';
import {
  OAUTH_PLATFORMS,
  PROVIDERS,
  isOAuthPlatform,
  resolveProvider,
  type OAuthPlatform,
} from './providers';
import {
  REFRESH_LOCK_TTL_MS,
  TokenManager,
  type ConnectionEventType,
  type SweepReport,
} from './token-manager';
import { TokenVault, VaultError, sealContext } from './vault';
import { connectionEventData, connectionView, type ConnectionEventData, type ConnectionView } from './view';

export type { AuthorizeStart, CallbackQuery, LinkAccount } from './flow';
export type { ConnectionEventData, ConnectionView, Health } from './view';
export { STATE_TTL_MS, callbackUrl, requireOAuthPlatform } from './flow';
export { OAUTH_PLATFORMS, type OAuthPlatform } from './providers';
export type { ConnectionEventType, SweepReport } from './token-manager';
export { ConnectionUnavailableError } from './token-manager';
export { rotateSecret, type RotateReport } from './rotate';

export interface DeleteResult {
  readonly id: string;
  readonly deleted: true;
  /** Whether the platform has a revoke endpoint. */
  readonly revoke_supported: boolean;
  readonly revoked_at_platform: boolean;
  /** Why it was not revoked there (tokens were deleted here regardless), or null. */
  readonly revoke_error: string | null;
}

export interface PlatformAvailability {
  readonly platform: OAuthPlatform;
  readonly configured: boolean;
  readonly pkce: boolean;
  readonly app_grant: boolean;
}

export interface ConnectionServiceDeps {
  /** Where connections, their sealed tokens and pending authorize states are kept. */
  readonly store: AsyncConnectionStore;
  readonly env: Env;
  readonly clock: Clock;
  readonly log: Log;
  /** `PresenceEngine.linkAccount`: links, or names the user the account belongs to. */
  readonly linkAccount: LinkAccount;
  /** `PresenceEngine.hasUser`. */
  readonly hasUser: (userId: string) => boolean;
  /**
   * Called for `connection.reauth_required` and `connection.revoked` inside the store transaction
   * (`tx`) that records the change, which waits for it: the webhook outbox writes its row there,
   * passing `tx` to every store call. A throw (or rejection) rolls the change back.
   */
  readonly onEvent: (
    type: ConnectionEventType,
    data: ConnectionEventData,
    tx: StoreTx,
  ) => void | Promise<void>;
  /** Base of the default redirect URI (`${publicUrl}/v1/connect/{platform}/callback`); defaults to env.PUBLIC_URL. */
  readonly publicUrl?: string;
  /** Defaults to env.PRESENCE_SECRET_KEY, which is then required. */
  readonly secretKey?: string;
  /** Keys that may still have sealed some values (during a rotation); they open, never seal. */
  readonly previousSecretKeys?: readonly string[];
  /** For identity and direct revoke calls; the global fetch by default. */
  readonly fetch?: typeof fetch;
  /** Per request to a platform (default 10 s). */
  readonly httpTimeoutMs?: number;
  /**
   * The app grants' token sources, shared with the connectors that use the app's token (Teams):
   * `connectApp` and the refresh of an `app` connection request through them. The composition
   * root passes its one instance; by default, grants of this service's own.
   */
  readonly appGrants?: AppGrants;
  readonly refreshMarginMs?: number;
  readonly cooldownMs?: readonly number[];
  /**
   * The locks the nodes share (the coordination's): a connection's refresh is then single-flight
   * across them (token-manager.ts). Default this process's own, for a node alone.
   */
  readonly locks?: Locks;
  /** The refresh lock's lease; default the larger of 30 s and three request timeouts. */
  readonly refreshLockTtlMs?: number;
}

export class ConnectionService {
  private readonly store: AsyncConnectionStore;
  private readonly vault: TokenVault;
  private readonly clients = new Map<OAuthPlatform, ProviderClient>();
  private readonly tokens: TokenManager;
  private readonly flow: AuthorizeFlow;
  private readonly appGrants: AppGrants;

  constructor(private readonly deps: ConnectionServiceDeps) {
    const { env, clock, log } = deps;
    this.store = deps.store;
    this.vault = TokenVault.fromSecrets(
      deps.secretKey ?? requireSecretKey(env),
      deps.previousSecretKeys ?? [],
    );
    const options = { timeoutMs: deps.httpTimeoutMs ?? 10_000, fetch: deps.fetch ?? globalThis.fetch, clock };
    for (const platform of OAUTH_PLATFORMS) {
      const resolved = resolveProvider(platform, env);
      if (resolved !== null) this.clients.set(platform, new ProviderClient(resolved, options));
    }
    const client = (p: string): ProviderClient | null =>
      isOAuthPlatform(p) ? (this.clients.get(p) ?? null) : null;
    this.appGrants = deps.appGrants ?? new AppGrants(env, options);
    this.tokens = new TokenManager({
      store: this.store,
      vault: this.vault,
      client,
      appGrant: (p) => (isOAuthPlatform(p) ? this.appGrants.for(p) : null),
      clock,
      log,
      emit: (type, row, reason, tx) => deps.onEvent(type, this.eventData(row, reason), tx),
      ...(deps.refreshMarginMs === undefined ? {} : { refreshMarginMs: deps.refreshMarginMs }),
      ...(deps.cooldownMs === undefined ? {} : { cooldownMs: deps.cooldownMs }),
      ...(deps.locks === undefined ? {} : { locks: deps.locks }),
      // A refresh is one token request and one write: the lease outlasts a request that times out.
      refreshLockTtlMs: deps.refreshLockTtlMs ?? Math.max(REFRESH_LOCK_TTL_MS, 3 * options.timeoutMs),
    });
    this.flow = new AuthorizeFlow({
      store: this.store,
      vault: this.vault,
      client,
      clock,
      log,
      linkAccount: deps.linkAccount,
      hasUser: deps.hasUser,
      publicUrl: deps.publicUrl ?? env.PUBLIC_URL,
    });
  }

  /** Which platforms can be connected on this server. */
  platforms(): PlatformAvailability[] {
    return OAUTH_PLATFORMS.map((platform) => {
      const client = this.clients.get(platform);
      return {
        platform,
        configured: client !== undefined,
        pkce: PROVIDERS[platform].pkce,
        app_grant: client?.provider.app != null,
      };
    });
  }

  /**
   * `GET /v1/connect/{platform}?user_id=`: the URL to redirect the person to.
   * Errors: not_found (unknown platform or user), invalid_request (WhatsApp and other platforms
   * without OAuth, a platform without credentials, a bad user id or redirect URI, no PUBLIC_URL).
   */
  startAuthorize(platform: string, userId: string, redirectUri?: string): Promise<AuthorizeStart> {
    return this.flow.start(platform, userId, redirectUri);
  }

  /**
   * `GET /v1/connect/{platform}/callback`: exchanges the code, links the account, stores the
   * connection. Errors (nothing stored in any of them): invalid_request (missing, unknown,
   * reused, expired or foreign state; missing code; code refused), forbidden (the person
   * declined: `error=access_denied`), not_found (unknown platform; user deleted meanwhile),
   * conflict (account linked to another user), platform_error (the platform failed).
   */
  async completeCallback(platform: string, query: CallbackQuery): Promise<ConnectionView> {
    const row = await this.flow.complete(platform, query, (p) =>
      this.upsert(p.platform, 'user', p.userId, p.account, p.tokens),
    );
    return this.view(row);
  }

  /**
   * Connects the app's own grant (Zoom Server-to-Server with ZOOM_ACCOUNT_ID; Microsoft client
   * credentials with MS_TENANT_ID) and keeps its token fresh from then on. The token comes from
   * the grant's one source (app-token.ts), the one the Teams connector polls with.
   */
  async connectApp(platformName: string): Promise<ConnectionView> {
    const platform = requireOAuthPlatform(platformName);
    const client = this.clients.get(platform);
    const spec = PROVIDERS[platform];
    if (client === undefined) {
      throw new AppError(
        'invalid_request',
        `${platform} is not configured: set ${spec.clientIdEnv} and ${spec.clientSecretEnv}`,
      );
    }
    const app = client.provider.app;
    if (app === null) {
      throw new AppError(
        'invalid_request',
        spec.app === null
          ? `${platform} has no app grant`
          : `${platform} app grant needs ${spec.app.accountEnv}`,
      );
    }
    const grant = this.appGrants.for(platform);
    if (grant === null) throw new AppError('invalid_request', `${platform} has no app grant`);
    let tokens: TokenSet;
    try {
      // A new token (connecting is asked for), which every other user of the grant then gets too.
      tokens = await grant.tokens({ force: true });
    } catch (e) {
      const message = e instanceof OAuthCallError ? e.message : `${platform} app token request failed`;
      throw new AppError('platform_error', message);
    }
    const account: AccountRef = { platform, externalId: app.accountId, workspaceId: app.accountId };
    const row = await this.upsert(platform, 'app', null, account, tokens);
    this.deps.log.info({ connection_id: row.connection_id, platform }, 'app connection stored');
    return this.view(row);
  }

  async list(
    filter: { user_id?: string; platform?: string; kind?: ConnectionKind } = {},
  ): Promise<ConnectionView[]> {
    const f: ConnectionFilter = {
      ...(filter.user_id === undefined ? {} : { userId: filter.user_id }),
      ...(filter.platform === undefined ? {} : { platform: filter.platform }),
      ...(filter.kind === undefined ? {} : { kind: filter.kind }),
    };
    return (await this.store.list(f)).map((r) => this.view(r));
  }

  /** Errors: not_found. */
  async get(id: string): Promise<ConnectionView> {
    return this.view(await this.requireRow(id));
  }

  /** The connection holding an account's grant, if any (for connectors). */
  async findByAccount(account: AccountRef, kind: ConnectionKind = 'user'): Promise<ConnectionView | null> {
    const row = await this.store.findByAccount(
      account.platform,
      kind,
      account.workspaceId,
      account.externalId,
    );
    return row === null ? null : this.view(row);
  }

  /**
   * `DELETE /v1/connections/{id}`: revokes at the platform where it has a revoke endpoint, then
   * deletes the tokens whether or not that worked, and emits `connection.revoked`.
   * Errors: not_found.
   */
  async deleteConnection(id: string): Promise<DeleteResult> {
    await this.requireRow(id);
    // A refresh in flight would otherwise rotate the tokens under the revoke.
    await this.tokens.settle(id);
    const row = await this.requireRow(id);
    const client = isOAuthPlatform(row.platform) ? this.clients.get(row.platform) : undefined;
    let outcome: RevokeOutcome;
    if (client === undefined) {
      outcome = {
        supported: false,
        revoked: false,
        error: `${row.platform} is not configured, so nothing was revoked there`,
      };
    } else {
      outcome = await client.revoke({
        accessToken: this.tryOpen(row, 'access_token', row.access_token),
        refreshToken:
          row.refresh_token === null ? null : this.tryOpen(row, 'refresh_token', row.refresh_token),
      });
    }
    await this.store.transaction(async (tx) => {
      const current = await this.store.get(id, tx);
      if (current === null) return;
      await this.store.delete(id, tx);
      if (current.health !== 'revoked') {
        await this.deps.onEvent('connection.revoked', this.eventData(current, 'deleted through the API'), tx);
      }
    });
    this.deps.log.info(
      {
        connection_id: id,
        platform: row.platform,
        revoked_at_platform: outcome.revoked,
        revoke_error: outcome.error,
      },
      'connection deleted',
    );
    return {
      id,
      deleted: true,
      revoke_supported: outcome.supported,
      revoked_at_platform: outcome.revoked,
      revoke_error: outcome.error,
    };
  }

  /** Deletes (and revokes) every connection of a user: call before deleting the user. */
  async deleteConnectionsOfUser(userId: string): Promise<DeleteResult[]> {
    const out: DeleteResult[] = [];
    for (const row of await this.store.list({ userId }))
      out.push(await this.deleteConnection(row.connection_id));
    return out;
  }

  /**
   * For connectors: a usable access token, refreshed ahead of expiry. Errors: not_found;
   * forbidden (details code `reauth_required` or `revoked`); platform_error (refresh failing,
   * cooling down: `Retry-After` header); internal (tokens not decryptable with the configured key).
   */
  getAccessToken(id: string): Promise<string> {
    return this.tokens.getAccessToken(id);
  }

  /** For connectors: the platform refused the token on an API call (401). */
  markReauthRequired(id: string, reason: string): Promise<void> {
    return this.tokens.markReauthRequired(id, reason);
  }

  /** For inbound handlers: the platform revoked the grant (Slack `tokens_revoked`, `app_uninstalled`). */
  markRevoked(id: string, reason: string): Promise<void> {
    return this.tokens.markRevoked(id, reason);
  }

  /** One sweep now (the schedule calls this every minute). */
  sweep(): Promise<SweepReport> {
    return this.tokens.sweep();
  }

  /** Starts the refresh schedule (node-cron, every minute). */
  start(): void {
    this.tokens.start();
  }

  /** Stops the schedule and waits for refreshes in flight. */
  stop(): Promise<void> {
    return this.tokens.stop();
  }

  // ------------------------------------------------------------------ internals

  private upsert(
    platform: OAuthPlatform,
    kind: ConnectionKind,
    userId: string | null,
    account: AccountRef,
    tokens: TokenSet,
  ): Promise<ConnectionRow> {
    const now = this.deps.clock.now();
    return this.store.transaction(async (tx) => {
      const existing = await this.store.findByAccount(
        platform,
        kind,
        account.workspaceId,
        account.externalId,
        tx,
      );
      const id = existing?.connection_id ?? `con_${randomBytes(12).toString('base64url')}`;
      const sealed = this.seal(id, tokens, now);
      if (existing === null) {
        await this.store.insert(
          {
            id,
            platform,
            kind,
            userId,
            externalId: account.externalId,
            workspaceId: account.workspaceId,
            ...sealed,
          },
          now,
          tx,
        );
      } else {
        await this.store.replaceGrant(id, userId, sealed, now, tx);
      }
      const row = await this.store.get(id, tx);
      if (row === null) throw new AppError('internal', 'connection vanished while being stored');
      return row;
    });
  }

  private seal(id: string, t: TokenSet, now: number): SealedTokens {
    const ctx = (column: 'access_token' | 'refresh_token'): string =>
      sealContext({ table: 'connections', column, key: id });
    return {
      accessToken: this.vault.seal(t.accessToken, ctx('access_token')),
      refreshToken: t.refreshToken === null ? null : this.vault.seal(t.refreshToken, ctx('refresh_token')),
      tokenType: t.tokenType,
      expiresAt: t.expiresInSec === null ? null : now + t.expiresInSec * 1000,
      refreshExpiresAt: t.refreshExpiresInSec === null ? null : now + t.refreshExpiresInSec * 1000,
      scopes: t.scopes ?? [],
    };
  }

  private tryOpen(
    row: ConnectionRow,
    column: 'access_token' | 'refresh_token',
    sealed: string,
  ): string | null {
    try {
      return this.vault.open(sealed, sealContext({ table: 'connections', column, key: row.connection_id }));
    } catch (e) {
      if (e instanceof VaultError) return null;
      throw e;
    }
  }

  private async requireRow(id: string): Promise<ConnectionRow> {
    const row = await this.store.get(id);
    if (row === null) throw new AppError('not_found', `no connection ${id.slice(0, 64)}`);
    return row;
  }

  private refreshable(row: ConnectionRow, now: number): boolean {
    if (row.kind === 'app')
      return isOAuthPlatform(row.platform) && this.clients.get(row.platform)?.provider.app != null;
    return row.refresh_token !== null && (row.refresh_expires_at === null || row.refresh_expires_at > now);
  }

  private view(row: ConnectionRow): ConnectionView {
    const now = this.deps.clock.now();
    return connectionView(row, now, {
      refreshing: this.tokens.isRefreshing(row.connection_id),
      refreshable: this.refreshable(row, now),
    });
  }

  private eventData(row: ConnectionRow, reason: string): ConnectionEventData {
    return connectionEventData(row, reason, this.deps.clock.now());
  }
}
