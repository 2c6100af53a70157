/**
 * @module store/connection-store
 * The SQLite `ConnectionStore` (core/ports): OAuth connections and pending authorize states
 * (migrations/0004_connections.sql). It stores what it is given: token columns arrive sealed by
 * the vault and leave sealed. Every multi-column change is one statement, so a rotated refresh
 * token is never stored apart from the access token it came with. All stores of a database share
 * its one connection, so the `tx` arguments need no use here: a statement inside `transaction`
 * runs in it.
 */

import type {
  ConnectionFilter,
  ConnectionKind,
  ConnectionRow,
  ConnectionStore,
  NewConnection,
  SealedCell,
  SealedTokens,
  StateRow,
  StoredHealth,
  StoreTx,
} from '../core/ports';
import type { Db } from './db';
import {
  grantValues,
  newConnectionValues,
  sealedCellsOf,
  type TokenRow,
  type VerifierRow,
} from './rows/connections';
import { sqliteTx } from './tx';

export class SqliteConnectionStore implements ConnectionStore {
  constructor(private readonly db: Db) {}

  /**
   * Runs `fn` in one IMMEDIATE transaction (nested calls become savepoints of the outer one): it
   * takes the write lock up front, so a read-then-write cannot lose a race to another process.
   * `fn` is handed the transaction, for what others write in it (the webhook outbox's events).
   */
  transaction<T>(fn: (tx: StoreTx) => T): T {
    const tx = sqliteTx(this.db);
    return this.db.transaction(() => fn(tx)).immediate();
  }

  // ------------------------------------------------------------------ authorize states

  insertState(row: StateRow): void {
    this.db
      .prepare(
        `INSERT INTO oauth_states (state_hash, platform, user_id, redirect_uri, code_verifier, created_at, expires_at)
         VALUES (@state_hash, @platform, @user_id, @redirect_uri, @code_verifier, @created_at, @expires_at)`,
      )
      .run(row);
  }

  /** Deletes and returns the state: whatever the caller decides, it cannot be used twice. */
  takeState(stateHash: string): StateRow | null {
    const row = this.db
      .prepare('DELETE FROM oauth_states WHERE state_hash = ? RETURNING *')
      .get(stateHash) as StateRow | undefined;
    return row ?? null;
  }

  purgeStates(now: number): number {
    return this.db.prepare('DELETE FROM oauth_states WHERE expires_at <= ?').run(now).changes;
  }

  // ------------------------------------------------------------------ connections

  get(id: string): ConnectionRow | null {
    const row = this.db.prepare('SELECT * FROM connections WHERE connection_id = ?').get(id) as
      ConnectionRow | undefined;
    return row ?? null;
  }

  findByAccount(
    platform: string,
    kind: ConnectionKind,
    workspaceId: string,
    externalId: string,
  ): ConnectionRow | null {
    const row = this.db
      .prepare(
        'SELECT * FROM connections WHERE platform = ? AND kind = ? AND workspace_id = ? AND external_id = ?',
      )
      .get(platform, kind, workspaceId, externalId) as ConnectionRow | undefined;
    return row ?? null;
  }

  list(filter: ConnectionFilter = {}): ConnectionRow[] {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.userId !== undefined) {
      where.push('user_id = ?');
      args.push(filter.userId);
    }
    if (filter.platform !== undefined) {
      where.push('platform = ?');
      args.push(filter.platform);
    }
    if (filter.kind !== undefined) {
      where.push('kind = ?');
      args.push(filter.kind);
    }
    const clause = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
    return this.db
      .prepare(`SELECT * FROM connections ${clause} ORDER BY created_at, connection_id`)
      .all(...args) as ConnectionRow[];
  }

  insert(c: NewConnection, now: number): void {
    this.db
      .prepare(
        `INSERT INTO connections (connection_id, platform, kind, user_id, external_id, workspace_id, scopes,
           access_token, refresh_token, token_type, expires_at, refresh_expires_at, health, refreshed_at,
           created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', ?, ?, ?)`,
      )
      .run(...newConnectionValues(c), now, now, now);
  }

  /**
   * A reconnect of an account that already has a row: new owner (the account may have moved to
   * another user through unlink + link), new tokens, and a clean bill of health.
   */
  replaceGrant(id: string, userId: string | null, t: SealedTokens, now: number): void {
    this.db
      .prepare(
        `UPDATE connections SET user_id = ?, scopes = ?, access_token = ?, refresh_token = ?, token_type = ?,
           expires_at = ?, refresh_expires_at = ?, health = 'ok', last_error = NULL, last_error_at = NULL,
           retry_at = NULL, failures = 0, refreshed_at = ?, expiry_warned_at = NULL, updated_at = ?
         WHERE connection_id = ?`,
      )
      .run(...grantValues(userId, t), now, now, id);
  }

  /**
   * A successful refresh: the new access token, the new (or kept) refresh token and their
   * expiries in one statement, so a rotation can never be half-stored.
   */
  saveRefreshed(id: string, t: SealedTokens, now: number): boolean {
    return (
      this.db
        .prepare(
          `UPDATE connections SET access_token = ?, refresh_token = ?, token_type = COALESCE(?, token_type),
             expires_at = ?, refresh_expires_at = COALESCE(?, refresh_expires_at),
             scopes = COALESCE(?, scopes), health = 'ok', last_error = NULL, last_error_at = NULL,
             retry_at = NULL, failures = 0, refreshed_at = ?, updated_at = ?
           WHERE connection_id = ?`,
        )
        .run(
          t.accessToken,
          t.refreshToken,
          t.tokenType,
          t.expiresAt,
          t.refreshExpiresAt,
          t.scopes === null ? null : JSON.stringify(t.scopes),
          now,
          now,
          id,
        ).changes === 1
    );
  }

  setHealth(
    id: string,
    fields: {
      readonly health: StoredHealth;
      readonly lastError: string | null;
      readonly retryAt: number | null;
      readonly failures: number;
    },
    now: number,
  ): void {
    this.db
      .prepare(
        `UPDATE connections SET health = ?, last_error = ?, last_error_at = ?, retry_at = ?, failures = ?,
           updated_at = ?
         WHERE connection_id = ?`,
      )
      .run(
        fields.health,
        fields.lastError,
        fields.lastError === null ? null : now,
        fields.retryAt,
        fields.failures,
        now,
        id,
      );
  }

  markExpiryWarned(id: string, now: number): void {
    this.db.prepare('UPDATE connections SET expiry_warned_at = ? WHERE connection_id = ?').run(now, id);
  }

  delete(id: string): boolean {
    return this.db.prepare('DELETE FROM connections WHERE connection_id = ?').run(id).changes === 1;
  }

  /** Connections whose access token ends before `horizon`, soonest first. */
  expiringBefore(horizon: number): ConnectionRow[] {
    return this.db
      .prepare(
        `SELECT * FROM connections WHERE expires_at IS NOT NULL AND expires_at <= ?
           AND health IN ('ok', 'error') ORDER BY expires_at`,
      )
      .all(horizon) as ConnectionRow[];
  }

  /**
   * User connections of these platforms whose grant ends before `horizon` and that were not
   * warned about yet. The grant ends with the refresh token where one with an end date is held
   * (or the access token, if that outlives it), else with the access token if nothing refreshes it.
   */
  unwarnedEndingBefore(platforms: readonly string[], horizon: number): ConnectionRow[] {
    if (platforms.length === 0) return [];
    const marks = platforms.map(() => '?').join(', ');
    return this.db
      .prepare(
        `SELECT * FROM connections WHERE platform IN (${marks}) AND kind = 'user' AND expiry_warned_at IS NULL
           AND health IN ('ok', 'error')
           AND CASE
                 WHEN refresh_token IS NOT NULL AND refresh_expires_at IS NOT NULL
                   THEN MAX(refresh_expires_at, COALESCE(expires_at, 0))
                 WHEN refresh_token IS NULL THEN expires_at
               END <= ?`,
      )
      .all(...platforms, horizon) as ConnectionRow[];
  }

  // ------------------------------------------------------------------ key rotation

  sealedCells(): SealedCell[] {
    const conns = this.db
      .prepare('SELECT connection_id, access_token, refresh_token FROM connections')
      .all() as TokenRow[];
    const states = this.db
      .prepare('SELECT state_hash, code_verifier FROM oauth_states WHERE code_verifier IS NOT NULL')
      .all() as VerifierRow[];
    return sealedCellsOf(conns, states);
  }

  writeCell(cell: SealedCell, value: string): void {
    const keyColumn = cell.table === 'connections' ? 'connection_id' : 'state_hash';
    // Table and column names come from the closed unions above, never from input.
    this.db
      .prepare(`UPDATE ${cell.table} SET ${cell.column} = ? WHERE ${keyColumn} = ?`)
      .run(value, cell.key);
  }
}
