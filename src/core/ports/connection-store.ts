/**
 * @module core/ports/connection-store
 * OAuth connections with their sealed tokens, and pending authorize states.
 */

import type { StoreTx } from '../changes';

/** Stored health. `refreshing` is not stored: it is overlaid while a refresh is in flight. */
export type StoredHealth = 'ok' | 'reauth_required' | 'revoked' | 'error';
export type ConnectionKind = 'user' | 'app';

/** A connection as stored; its token columns sealed by the token vault. */
export interface ConnectionRow {
  readonly connection_id: string;
  readonly platform: string;
  readonly kind: ConnectionKind;
  readonly user_id: string | null;
  readonly external_id: string;
  readonly workspace_id: string;
  /** JSON array of the granted scopes. */
  readonly scopes: string;
  readonly access_token: string;
  readonly refresh_token: string | null;
  readonly token_type: string | null;
  readonly expires_at: number | null;
  readonly refresh_expires_at: number | null;
  readonly health: StoredHealth;
  readonly last_error: string | null;
  readonly last_error_at: number | null;
  readonly retry_at: number | null;
  readonly failures: number;
  readonly refreshed_at: number | null;
  readonly expiry_warned_at: number | null;
  readonly created_at: number;
  readonly updated_at: number;
}

/** A pending authorize flow: the state is stored as a SHA-256 only, the PKCE verifier sealed. */
export interface StateRow {
  readonly state_hash: string;
  readonly platform: string;
  readonly user_id: string;
  readonly redirect_uri: string;
  readonly code_verifier: string | null;
  readonly created_at: number;
  readonly expires_at: number;
}

/** New tokens, already sealed. */
export interface SealedTokens {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly tokenType: string | null;
  readonly expiresAt: number | null;
  readonly refreshExpiresAt: number | null;
  readonly scopes: readonly string[] | null;
}

export interface NewConnection extends SealedTokens {
  readonly id: string;
  readonly platform: string;
  readonly kind: ConnectionKind;
  readonly userId: string | null;
  readonly externalId: string;
  readonly workspaceId: string;
}

export interface ConnectionFilter {
  readonly userId?: string;
  readonly platform?: string;
  readonly kind?: ConnectionKind;
}

/** One sealed value somewhere in the connection tables, for key rotation. */
export interface SealedCell {
  readonly table: 'connections' | 'oauth_states';
  readonly column: 'access_token' | 'refresh_token' | 'code_verifier';
  readonly key: string;
  readonly value: string;
}

/**
 * Pending authorize states: single-use, so `takeState` removes what it returns. Every method
 * takes the open transaction, when it runs inside one, as its last argument.
 */
export interface AuthorizeStateStore {
  /**
   * Runs `fn` in one transaction that takes the write lock up front (a read-then-write cannot
   * lose a race to another process); nested calls join the outer transaction.
   */
  transaction<T>(fn: (tx: StoreTx) => T): T;
  insertState(row: StateRow, tx?: StoreTx): void;
  /** Deletes and returns the state: whatever the caller decides, it cannot be used twice. */
  takeState(stateHash: string, tx?: StoreTx): StateRow | null;
  /** Deletes expired states; returns how many. */
  purgeStates(now: number, tx?: StoreTx): number;
}

/**
 * OAuth connections and their tokens. It stores what it is given: token columns arrive sealed
 * and leave sealed. Every multi-column change is one call, so a rotated refresh token is never
 * stored apart from the access token it came with.
 */
export interface ConnectionStore extends AuthorizeStateStore {
  get(id: string, tx?: StoreTx): ConnectionRow | null;
  findByAccount(
    platform: string,
    kind: ConnectionKind,
    workspaceId: string,
    externalId: string,
    tx?: StoreTx,
  ): ConnectionRow | null;
  /** Oldest first. */
  list(filter?: ConnectionFilter, tx?: StoreTx): ConnectionRow[];
  /** Inserts a healthy connection refreshed `now`. */
  insert(c: NewConnection, now: number, tx?: StoreTx): void;
  /**
   * A reconnect of an account that already has a row: new owner, new tokens, and a clean bill of
   * health.
   */
  replaceGrant(id: string, userId: string | null, t: SealedTokens, now: number, tx?: StoreTx): void;
  /**
   * A successful refresh: new access token, new (or kept) refresh token, expiries, health ok.
   * Null fields of `t` other than the tokens keep what is stored. False: no such connection.
   */
  saveRefreshed(id: string, t: SealedTokens, now: number, tx?: StoreTx): boolean;
  /** `last_error_at` becomes `now` with an error, null without. */
  setHealth(
    id: string,
    fields: {
      readonly health: StoredHealth;
      readonly lastError: string | null;
      readonly retryAt: number | null;
      readonly failures: number;
    },
    now: number,
    tx?: StoreTx,
  ): void;
  markExpiryWarned(id: string, now: number, tx?: StoreTx): void;
  delete(id: string, tx?: StoreTx): boolean;
  /** Healthy (or erring) connections whose access token ends before `horizon`, soonest first. */
  expiringBefore(horizon: number, tx?: StoreTx): ConnectionRow[];
  /**
   * Healthy (or erring) user connections of these platforms whose grant ends before `horizon`
   * and that were not warned about yet. The grant ends with the refresh token where one with an
   * end date is held (or the access token, if that outlives it), else with the access token if
   * nothing refreshes it.
   */
  unwarnedEndingBefore(platforms: readonly string[], horizon: number, tx?: StoreTx): ConnectionRow[];
  /** Every sealed value (tokens, PKCE verifiers), for key rotation. */
  sealedCells(tx?: StoreTx): SealedCell[];
  writeCell(cell: SealedCell, value: string, tx?: StoreTx): void;
}
