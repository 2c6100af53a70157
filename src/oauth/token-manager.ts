/**
 * @module oauth/token-manager
 * Keeps connections' access tokens usable. `getAccessToken` refreshes ahead of expiry
 * (`REFRESH_MARGIN_MS`), with at most one refresh in flight per connection (concurrent callers
 * share its promise), and a cool-down after a failure that grows with each consecutive one. A
 * refresh stores the new access token and the rotated refresh token in one statement. A sweep on
 * node-cron refreshes tokens before anyone asks, fetches app tokens (Zoom Server-to-Server) ahead
 * of their 1-hour expiry, moves expired non-refreshable grants to `reauth_required`, warns ahead
 * of LinkedIn's 60-day expiry, and purges expired authorize states.
 *
 * Health: `ok`; `refreshing` (in flight, overlaid in memory); `reauth_required` (the grant is
 * gone: invalid_grant, an expired LinkedIn token); `revoked` (the platform revoked it);
 * `error` (5xx, network, a refused request: retried after the cool-down). Entering
 * `reauth_required` or `revoked` emits `connection.reauth_required` / `connection.revoked` inside
 * the transaction that records it, so the webhook outbox can write the event atomically.
 *
 * Across nodes (issue #16), a refresh is single-flight too: it runs under the coordination lock
 * `oauth-refresh:<connection id>` (a lease, so a dead node's lock ends by itself). Refresh tokens
 * are often single-use (rotated), so a second node refreshing with the old one would get
 * invalid_grant and, at some platforms, revoke the grant. A node that finds the lock taken does
 * not call the platform: it waits and re-reads the row until the holder's outcome is stored (the
 * new token, or the failure it recorded), or until it gets the lock itself (the holder died), and
 * then re-reads the row under the lock before calling, so it refreshes with the current token.
 */

import cron, { type ScheduledTask } from 'node-cron';

import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import type { Log } from '../core/log';
import { toIso } from '../core/time';
import { InProcessLocks } from '../core/coordination';
import type {
  AsyncConnectionStore,
  ConnectionRow,
  Lease,
  Locks,
  SealedTokens,
  StoredHealth,
  StoreTx,
} from '../core/ports';
import type { AppGrant } from './app-token';
import { OAuthCallError, type ProviderClient, type TokenSet } from './provider-client';
import { PROVIDERS, isOAuthPlatform } from './providers';
import { VaultError, sealContext, type TokenVault } from './vault';

/** Refresh when the access token has less than this left (Nango's margin). */
export const REFRESH_MARGIN_MS = 5 * 60_000;
/** Cool-down after the 1st, 2nd, … consecutive failed refresh; the last one repeats. */
export const REFRESH_COOLDOWN_MS: readonly number[] = [30_000, 60_000, 2 * 60_000, 5 * 60_000, 15 * 60_000];
/** The sweep runs every minute and looks this far past the margin, so no token reaches its margin unrefreshed. */
export const SWEEP_CRON = '* * * * *';
export const SWEEP_LOOKAHEAD_MS = 2 * 60_000;
/**
 * The refresh lock's lease. It must outlast a refresh (the token request's timeout, 10 s by
 * default, plus the store write): a holder that overran it could see a second node refresh with
 * the same refresh token. It is also how long a dead holder delays the others.
 */
export const REFRESH_LOCK_TTL_MS = 30_000;
/** How often a node waiting for another's refresh re-reads the row and tries the lock. */
export const REFRESH_LOCK_POLL_MS = 200;

/** The coordination lock of one connection's refresh. */
export const refreshLockKey = (connectionId: string): string => `oauth-refresh:${connectionId}`;

export type ConnectionEventType = 'connection.reauth_required' | 'connection.revoked';

/**
 * Called inside the transaction that records the transition (`tx`), which waits for it: every
 * store call it makes must be handed `tx` (a call without it would wait for the transaction's end).
 */
export type EmitTransition = (
  type: ConnectionEventType,
  row: ConnectionRow,
  reason: string,
  tx: StoreTx,
) => void | Promise<void>;

export type UnavailableReason = 'reauth_required' | 'revoked' | 'unavailable';

/** A connection whose token cannot be had now. Safe to show: it names no secret. */
export class ConnectionUnavailableError extends AppError {
  constructor(
    readonly reason: UnavailableReason,
    message: string,
    readonly retryAt: number | null = null,
    now = 0,
  ) {
    super(
      reason === 'unavailable' ? 'platform_error' : 'forbidden',
      message,
      [{ code: reason, message }],
      retryAt === null ? {} : { 'Retry-After': String(Math.max(1, Math.ceil((retryAt - now) / 1000))) },
    );
  }
}

export interface SweepReport {
  refreshed: number;
  failed: number;
  expired: number;
  warned: number;
  statesPurged: number;
}

export interface TokenManagerDeps {
  readonly store: AsyncConnectionStore;
  readonly vault: TokenVault;
  readonly client: (platform: string) => ProviderClient | null;
  /** The app grant's one token source (app-token.ts): an `app` connection is refreshed through it. */
  readonly appGrant: (platform: string) => AppGrant | null;
  readonly clock: Clock;
  readonly log: Log;
  readonly emit: EmitTransition;
  readonly refreshMarginMs?: number;
  readonly cooldownMs?: readonly number[];
  /**
   * The locks shared by the nodes (the coordination's), making a refresh single-flight across
   * them; default this process's own (one node: the in-flight map already is).
   */
  readonly locks?: Locks;
  /** The refresh lock's lease (default `REFRESH_LOCK_TTL_MS`); must outlast a refresh. */
  readonly refreshLockTtlMs?: number;
  /** How often a waiting node re-reads the row (default `REFRESH_LOCK_POLL_MS`; real time). */
  readonly lockPollMs?: number;
}

export class TokenManager {
  /** Null: a sweep's refresh that found another node refreshing, and left it to it. */
  private readonly inflight = new Map<string, Promise<string | null>>();
  private readonly margin: number;
  private readonly cooldown: readonly number[];
  private readonly locks: Locks;
  private readonly lockTtl: number;
  private readonly lockPoll: number;
  private task: ScheduledTask | null = null;
  /** Set by `stop`: a wait for another node's refresh ends instead of outliving the service. */
  private stopping = false;

  constructor(private readonly deps: TokenManagerDeps) {
    this.margin = deps.refreshMarginMs ?? REFRESH_MARGIN_MS;
    this.cooldown = deps.cooldownMs ?? REFRESH_COOLDOWN_MS;
    this.locks = deps.locks ?? new InProcessLocks(deps.clock);
    this.lockTtl = deps.refreshLockTtlMs ?? REFRESH_LOCK_TTL_MS;
    this.lockPoll = deps.lockPollMs ?? REFRESH_LOCK_POLL_MS;
  }

  isRefreshing(id: string): boolean {
    return this.inflight.has(id);
  }

  /** A usable access token, refreshed first when it is within the margin of its expiry. */
  async getAccessToken(id: string): Promise<string> {
    const row = await this.requireRow(id);
    const now = this.deps.clock.now();
    this.assertUsable(row);
    if (this.inflight.has(id)) return this.refresh(id);
    if (row.expires_at === null || row.expires_at - now > this.margin) return this.openAccess(row);
    if (!this.refreshable(row, now)) {
      if (row.expires_at > now) return this.openAccess(row);
      await this.expire(row);
      throw this.unusable(await this.requireRow(id));
    }
    if (row.retry_at !== null && row.retry_at > now) {
      // Cooling down after a failure: the current token still serves while it lasts.
      if (row.expires_at > now) return this.openAccess(row);
      throw new ConnectionUnavailableError(
        'unavailable',
        `connection ${id}: refresh failed and is retried after ${toIso(row.retry_at)} (${row.last_error ?? 'error'})`,
        row.retry_at,
        now,
      );
    }
    return this.refresh(id, row);
  }

  /**
   * Refreshes now (callers of one connection share one refresh, on this node and across the
   * nodes sharing the locks) and returns the new access token.
   */
  refresh(id: string, seen?: ConnectionRow): Promise<string> {
    const pending = this.inflight.get(id);
    // A sweep's refresh that left it to another node answers null: then wait for that one.
    if (pending !== undefined) return pending.then((t) => t ?? this.refresh(id));
    return this.begin(id, true, seen) as Promise<string>;
  }

  /**
   * Starts this node's one refresh of `id`. `wait`: when another node holds the lock, wait for
   * its outcome (else answer null). `seen`: the row the caller decided on; a refresh stored since
   * is the answer.
   */
  private begin(id: string, wait: boolean, seen?: ConnectionRow): Promise<string | null> {
    const p = this.doRefresh(id, wait, seen).finally(() => this.inflight.delete(id));
    this.inflight.set(id, p);
    return p;
  }

  /** Waits for a refresh in flight, if any, whatever its outcome. */
  async settle(id: string): Promise<void> {
    const pending = this.inflight.get(id);
    if (pending !== undefined) await pending.catch(() => undefined);
  }

  /** For connectors and inbound handlers: the platform refused the token (a 401 on an API call). */
  async markReauthRequired(id: string, reason: string): Promise<void> {
    await this.transition(await this.requireRow(id), 'reauth_required', reason, null, null);
  }

  /** For inbound handlers: the platform says the grant was revoked (Slack `tokens_revoked`, …). */
  async markRevoked(id: string, reason: string): Promise<void> {
    await this.transition(await this.requireRow(id), 'revoked', reason, null, null);
  }

  async sweep(): Promise<SweepReport> {
    const { store, clock, log } = this.deps;
    const now = clock.now();
    const report: SweepReport = { refreshed: 0, failed: 0, expired: 0, warned: 0, statesPurged: 0 };
    report.statesPurged = await store.purgeStates(now);

    // One at a time: a handful of connections come due per minute, and serial refreshes keep
    // the platforms' token endpoints free of bursts.
    for (const row of await store.expiringBefore(now + this.margin + SWEEP_LOOKAHEAD_MS)) {
      if (this.inflight.has(row.connection_id)) continue;
      if (!this.refreshable(row, now)) {
        if (row.expires_at !== null && row.expires_at <= now) {
          await this.expire(row);
          report.expired += 1;
        }
        continue;
      }
      if (row.retry_at !== null && row.retry_at > now) continue;
      try {
        // Every node sweeps the same rows at the same minute: one whose lock another node holds
        // is that node's to refresh, and waiting for it would only delay this sweep.
        if ((await this.begin(row.connection_id, false, row)) !== null) report.refreshed += 1;
      } catch {
        report.failed += 1;
      }
    }

    for (const spec of Object.values(PROVIDERS)) {
      if (spec.expiryWarningMs === null) continue;
      for (const row of await store.unwarnedEndingBefore([spec.platform], now + spec.expiryWarningMs)) {
        const end =
          row.refresh_token !== null && row.refresh_expires_at !== null
            ? Math.max(row.refresh_expires_at, row.expires_at ?? 0)
            : (row.expires_at ?? now);
        log.warn(
          {
            connection_id: row.connection_id,
            platform: row.platform,
            user_id: row.user_id,
            expires_at: toIso(end),
          },
          `${spec.displayName} connection expires soon and cannot be refreshed: the person must connect again`,
        );
        await store.markExpiryWarned(row.connection_id, now);
        report.warned += 1;
      }
    }
    return report;
  }

  /** Schedules the sweep on node-cron (every minute). */
  start(): void {
    this.stopping = false;
    if (this.task !== null) return;
    const { log } = this.deps;
    this.task = cron.schedule(
      SWEEP_CRON,
      async () => {
        try {
          const r = await this.sweep();
          if (r.refreshed + r.failed + r.expired + r.warned > 0) log.info({ ...r }, 'oauth token sweep');
        } catch (e) {
          log.error({ err: e instanceof Error ? e.message : String(e) }, 'oauth token sweep failed');
        }
      },
      {
        name: 'oauth-token-sweep',
        noOverlap: true,
        logger: {
          info: (m) => log.debug({}, m),
          warn: (m) => log.warn({}, m),
          error: (m) => log.error({}, m instanceof Error ? m.message : m),
          debug: (m) => log.debug({}, m instanceof Error ? m.message : m),
        },
      },
    );
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const task = this.task;
    this.task = null;
    if (task !== null) await task.destroy();
    await Promise.allSettled([...this.inflight.values()]);
  }

  // ------------------------------------------------------------------ internals

  /**
   * One refresh across the nodes: under the connection's lock, or the outcome of the node that
   * holds it (null when `wait` is false and another node holds it).
   */
  private async doRefresh(id: string, wait: boolean, caller?: ConnectionRow): Promise<string | null> {
    const seen = caller ?? (await this.requireRow(id));
    this.assertUsable(seen);
    const key = refreshLockKey(id);
    let waiting = false;
    for (;;) {
      const lease = await this.acquire(id, key);
      if (lease !== null) {
        try {
          // Re-read under the lock: a node that refreshed since `seen` was read rotated the
          // refresh token, and its outcome is the answer (never a second call with the old token).
          const row = await this.requireRow(id);
          return this.outcomeSince(seen, row) ?? (await this.refreshHeld(row));
        } finally {
          await this.locks.release(lease).catch(() => false);
        }
      }
      if (!wait) return null;
      if (!waiting) {
        waiting = true;
        this.deps.log.debug({ connection_id: id }, "waiting for another node's refresh of the connection");
      }
      await new Promise<void>((resolve) => setTimeout(resolve, this.lockPoll).unref());
      if (this.stopping) {
        throw new ConnectionUnavailableError('unavailable', `connection ${id}: the service is stopping`);
      }
      const outcome = this.outcomeSince(seen, await this.requireRow(id));
      if (outcome !== null) return outcome;
    }
  }

  /** The refresh lock, or null when another node holds it. A coordination failure is the connection's unavailability, not a refresh failure (nothing is recorded). */
  private async acquire(id: string, key: string): Promise<Lease | null> {
    try {
      return await this.locks.acquire(key, this.lockTtl);
    } catch (e) {
      throw new ConnectionUnavailableError(
        'unavailable',
        `connection ${id}: the refresh lock cannot be taken (${e instanceof Error ? e.message : String(e)})`,
      );
    }
  }

  /**
   * What another node's refresh since `seen` came to, from the row: its new access token, or the
   * failure it recorded (thrown as this node's own would be); null when nothing happened yet.
   */
  private outcomeSince(seen: ConnectionRow, row: ConnectionRow): string | null {
    this.assertUsable(row);
    if (row.access_token !== seen.access_token || row.refreshed_at !== seen.refreshed_at) {
      return this.openAccess(row);
    }
    const now = this.deps.clock.now();
    if (row.last_error_at !== seen.last_error_at && row.retry_at !== null && row.retry_at > now) {
      throw this.unusable(row);
    }
    return null;
  }

  /** The refresh itself, by the holder of the connection's lock, with the row read under it. */
  private async refreshHeld(row: ConnectionRow): Promise<string> {
    const { store, clock, log } = this.deps;
    const id = row.connection_id;
    const client = this.deps.client(row.platform);
    if (client === null) {
      throw new ConnectionUnavailableError(
        'unavailable',
        `${row.platform} is not configured (client id and secret)`,
      );
    }
    let tokens: TokenSet;
    try {
      if (row.kind === 'app') {
        const grant = this.deps.appGrant(row.platform);
        if (grant === null)
          throw new OAuthCallError('rejected', `${row.platform} has no app grant configured`);
        // A new token, which also becomes the one every other user of the grant gets.
        tokens = await grant.tokens({ force: true });
      } else {
        const refreshToken =
          row.refresh_token === null ? null : this.open(row, 'refresh_token', row.refresh_token);
        if (refreshToken === null) throw new OAuthCallError('reauth_required', 'no refresh token is stored');
        tokens = await client.refresh({
          accessToken: this.open(row, 'access_token', row.access_token),
          refreshToken,
        });
      }
    } catch (e) {
      if (e instanceof AppError) throw e;
      const err =
        e instanceof OAuthCallError
          ? e
          : new OAuthCallError('transient', `${row.platform} refresh failed unexpectedly`);
      await this.recordFailure(row, err);
      throw this.unusable(await this.requireRow(id), err);
    }
    const now = clock.now();
    const sealed = this.sealRefreshed(row, tokens, now);
    if (!(await store.saveRefreshed(id, sealed, now))) {
      throw new AppError('not_found', `connection ${id} was deleted during its refresh`);
    }
    if (row.health !== 'ok') {
      log.info({ connection_id: id, platform: row.platform, was: row.health }, 'connection recovered');
    }
    log.debug(
      {
        connection_id: id,
        platform: row.platform,
        expires_at: sealed.expiresAt === null ? null : toIso(sealed.expiresAt),
        rotated: tokens.refreshToken !== null,
      },
      'connection token refreshed',
    );
    return tokens.accessToken;
  }

  private sealRefreshed(row: ConnectionRow, t: TokenSet, now: number): SealedTokens {
    const { vault } = this.deps;
    const ctx = (column: 'access_token' | 'refresh_token'): string =>
      sealContext({ table: 'connections', column, key: row.connection_id });
    return {
      accessToken: vault.seal(t.accessToken, ctx('access_token')),
      // A platform that does not rotate answers without a refresh token: the stored one stays.
      refreshToken:
        t.refreshToken === null ? row.refresh_token : vault.seal(t.refreshToken, ctx('refresh_token')),
      tokenType: t.tokenType,
      expiresAt: t.expiresInSec === null ? null : now + t.expiresInSec * 1000,
      refreshExpiresAt: t.refreshExpiresInSec === null ? null : now + t.refreshExpiresInSec * 1000,
      scopes: t.scopes,
    };
  }

  private async recordFailure(row: ConnectionRow, err: OAuthCallError): Promise<void> {
    const now = this.deps.clock.now();
    const failures = row.failures + 1;
    if (err.kind === 'reauth_required' || err.kind === 'revoked') {
      await this.transition(row, err.kind, err.message, null, failures);
      return;
    }
    const step = this.cooldown[Math.min(failures, this.cooldown.length) - 1] ?? 60_000;
    const retryAt = now + Math.max(step, err.retryAfterMs ?? 0);
    await this.transition(row, 'error', err.message, retryAt, failures);
  }

  /** Records a health change; entering reauth_required/revoked emits its event in the same transaction. */
  private async transition(
    row: ConnectionRow,
    health: StoredHealth,
    lastError: string,
    retryAt: number | null,
    failures: number | null,
  ): Promise<void> {
    const { store, clock, log, emit } = this.deps;
    const now = clock.now();
    let entered = false;
    await store.transaction(async (tx) => {
      const current = await store.get(row.connection_id, tx);
      if (current === null) return;
      await store.setHealth(
        row.connection_id,
        { health, lastError, retryAt, failures: failures ?? current.failures },
        now,
        tx,
      );
      if (current.health !== health && (health === 'reauth_required' || health === 'revoked')) {
        entered = true;
        await emit(
          health === 'revoked' ? 'connection.revoked' : 'connection.reauth_required',
          current,
          lastError,
          tx,
        );
      }
    });
    const fields = {
      connection_id: row.connection_id,
      platform: row.platform,
      user_id: row.user_id,
      health,
      last_error: lastError,
      retry_at: retryAt === null ? null : toIso(retryAt),
    };
    if (entered) log.warn(fields, `connection needs attention: ${health}`);
    else if (health === 'error') log.warn(fields, 'connection refresh failed; retrying after the cool-down');
  }

  private expire(row: ConnectionRow): Promise<void> {
    const end =
      row.refresh_expires_at !== null && row.refresh_token !== null ? row.refresh_expires_at : row.expires_at;
    const platform = isOAuthPlatform(row.platform) ? PROVIDERS[row.platform].displayName : row.platform;
    return this.transition(
      row,
      'reauth_required',
      `the grant expired at ${end === null ? 'an unknown time' : toIso(end)} and ${platform} gave no way to refresh it; the person must connect again`,
      null,
      null,
    );
  }

  private refreshable(row: ConnectionRow, now: number): boolean {
    if (row.kind === 'app') return this.deps.client(row.platform)?.provider.app != null;
    if (row.refresh_token === null) return false;
    return row.refresh_expires_at === null || row.refresh_expires_at > now;
  }

  private assertUsable(row: ConnectionRow): void {
    if (row.health === 'reauth_required' || row.health === 'revoked') throw this.unusable(row);
  }

  private unusable(row: ConnectionRow, err?: OAuthCallError): AppError {
    const now = this.deps.clock.now();
    if (row.health === 'reauth_required') {
      return new ConnectionUnavailableError(
        'reauth_required',
        `connection ${row.connection_id} needs the person to connect ${row.platform} again (${row.last_error ?? 'grant ended'})`,
      );
    }
    if (row.health === 'revoked') {
      return new ConnectionUnavailableError(
        'revoked',
        `connection ${row.connection_id} was revoked (${row.last_error ?? 'revoked'})`,
      );
    }
    return new ConnectionUnavailableError(
      'unavailable',
      `connection ${row.connection_id}: ${err?.message ?? row.last_error ?? 'refresh failed'}`,
      row.retry_at,
      now,
    );
  }

  private async requireRow(id: string): Promise<ConnectionRow> {
    const row = await this.deps.store.get(id);
    if (row === null) throw new AppError('not_found', `no connection ${id}`);
    return row;
  }

  private openAccess(row: ConnectionRow): string {
    return this.open(row, 'access_token', row.access_token);
  }

  private open(row: ConnectionRow, column: 'access_token' | 'refresh_token', sealed: string): string {
    try {
      return this.deps.vault.open(
        sealed,
        sealContext({ table: 'connections', column, key: row.connection_id }),
      );
    } catch (e) {
      if (e instanceof VaultError) {
        throw new AppError(
          'internal',
          `the tokens of connection ${row.connection_id} cannot be decrypted with the configured PRESENCE_SECRET_KEY (${e.message})`,
        );
      }
      throw e;
    }
  }
}
