/**
 * @module store/pg/connection-store
 * OAuth connections and pending authorize states on PostgreSQL (`Async<ConnectionStore>`;
 * migrations/pg/0003). It stores what it is given: token columns arrive sealed by the token vault
 * (above the store, as on SQLite) and leave sealed. Every multi-column change is one statement,
 * so a rotated refresh token is never stored apart from the access token it came with.
 */

import type pg from 'pg';

import type { StoreTx } from '../../core/changes';
import type {
  AsyncConnectionStore,
  ConnectionFilter,
  ConnectionKind,
  ConnectionRow,
  NewConnection,
  SealedCell,
  SealedTokens,
  StateRow,
  StoredHealth,
} from '../../core/ports';
import {
  grantValues,
  newConnectionValues,
  sealedCellsOf,
  type TokenRow,
  type VerifierRow,
} from '../rows/connections';
import { inPgTx, on } from './pool';

/**
 * The advisory lock every connection transaction takes first ('conn' in ASCII): as SQLite's
 * IMMEDIATE transaction takes the write lock up front, a read-then-write in one cannot lose a
 * race to another node's.
 */
const CONNECTIONS_LOCK = 0x636f6e6e;

export class PgConnectionStore implements AsyncConnectionStore {
  constructor(private readonly pool: pg.Pool) {}

  transaction<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    return inPgTx(this.pool, fn, CONNECTIONS_LOCK);
  }

  private async rows(sql: string, args: unknown[], tx?: StoreTx): Promise<ConnectionRow[]> {
    return (await on(this.pool, tx).query<ConnectionRow>(sql, args)).rows;
  }

  private async count(sql: string, args: unknown[], tx?: StoreTx): Promise<number> {
    return (await on(this.pool, tx).query(sql, args)).rowCount ?? 0;
  }

  // ------------------------------------------------------------------ authorize states

  async insertState(row: StateRow, tx?: StoreTx): Promise<void> {
    await this.count(
      `INSERT INTO oauth_states (state_hash, platform, user_id, redirect_uri, code_verifier, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        row.state_hash,
        row.platform,
        row.user_id,
        row.redirect_uri,
        row.code_verifier,
        row.created_at,
        row.expires_at,
      ],
      tx,
    );
  }

  async takeState(stateHash: string, tx?: StoreTx): Promise<StateRow | null> {
    const { rows } = await on(this.pool, tx).query<StateRow>(
      'DELETE FROM oauth_states WHERE state_hash = $1 RETURNING *',
      [stateHash],
    );
    return rows[0] ?? null;
  }

  purgeStates(now: number, tx?: StoreTx): Promise<number> {
    return this.count('DELETE FROM oauth_states WHERE expires_at <= $1', [now], tx);
  }

  // ------------------------------------------------------------------ connections

  async get(id: string, tx?: StoreTx): Promise<ConnectionRow | null> {
    return (await this.rows('SELECT * FROM connections WHERE connection_id = $1', [id], tx))[0] ?? null;
  }

  async findByAccount(
    platform: string,
    kind: ConnectionKind,
    workspaceId: string,
    externalId: string,
    tx?: StoreTx,
  ): Promise<ConnectionRow | null> {
    const rows = await this.rows(
      'SELECT * FROM connections WHERE platform = $1 AND kind = $2 AND workspace_id = $3 AND external_id = $4',
      [platform, kind, workspaceId, externalId],
      tx,
    );
    return rows[0] ?? null;
  }

  list(filter: ConnectionFilter = {}, tx?: StoreTx): Promise<ConnectionRow[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const [column, value] of [
      ['user_id', filter.userId],
      ['platform', filter.platform],
      ['kind', filter.kind],
    ] as const) {
      if (value === undefined) continue;
      args.push(value);
      where.push(`${column} = $${args.length}`);
    }
    const clause = where.length === 0 ? '' : `WHERE ${where.join(' AND ')}`;
    return this.rows(`SELECT * FROM connections ${clause} ORDER BY created_at, connection_id`, args, tx);
  }

  async insert(c: NewConnection, now: number, tx?: StoreTx): Promise<void> {
    await this.count(
      `INSERT INTO connections (connection_id, platform, kind, user_id, external_id, workspace_id, scopes,
         access_token, refresh_token, token_type, expires_at, refresh_expires_at, health, refreshed_at,
         created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'ok', $13, $13, $13)`,
      [...newConnectionValues(c), now],
      tx,
    );
  }

  async replaceGrant(
    id: string,
    userId: string | null,
    t: SealedTokens,
    now: number,
    tx?: StoreTx,
  ): Promise<void> {
    await this.count(
      `UPDATE connections SET user_id = $1, scopes = $2, access_token = $3, refresh_token = $4, token_type = $5,
         expires_at = $6, refresh_expires_at = $7, health = 'ok', last_error = NULL, last_error_at = NULL,
         retry_at = NULL, failures = 0, refreshed_at = $8, expiry_warned_at = NULL, updated_at = $8
       WHERE connection_id = $9`,
      [...grantValues(userId, t), now, id],
      tx,
    );
  }

  async saveRefreshed(id: string, t: SealedTokens, now: number, tx?: StoreTx): Promise<boolean> {
    const n = await this.count(
      `UPDATE connections SET access_token = $1, refresh_token = $2, token_type = COALESCE($3, token_type),
         expires_at = $4, refresh_expires_at = COALESCE($5, refresh_expires_at),
         scopes = COALESCE($6, scopes), health = 'ok', last_error = NULL, last_error_at = NULL,
         retry_at = NULL, failures = 0, refreshed_at = $7, updated_at = $7
       WHERE connection_id = $8`,
      [
        t.accessToken,
        t.refreshToken,
        t.tokenType,
        t.expiresAt,
        t.refreshExpiresAt,
        t.scopes === null ? null : JSON.stringify(t.scopes),
        now,
        id,
      ],
      tx,
    );
    return n === 1;
  }

  async setHealth(
    id: string,
    fields: {
      readonly health: StoredHealth;
      readonly lastError: string | null;
      readonly retryAt: number | null;
      readonly failures: number;
    },
    now: number,
    tx?: StoreTx,
  ): Promise<void> {
    await this.count(
      `UPDATE connections SET health = $1, last_error = $2, last_error_at = $3, retry_at = $4, failures = $5,
         updated_at = $6
       WHERE connection_id = $7`,
      [
        fields.health,
        fields.lastError,
        fields.lastError === null ? null : now,
        fields.retryAt,
        fields.failures,
        now,
        id,
      ],
      tx,
    );
  }

  async markExpiryWarned(id: string, now: number, tx?: StoreTx): Promise<void> {
    await this.count('UPDATE connections SET expiry_warned_at = $1 WHERE connection_id = $2', [now, id], tx);
  }

  async delete(id: string, tx?: StoreTx): Promise<boolean> {
    return (await this.count('DELETE FROM connections WHERE connection_id = $1', [id], tx)) === 1;
  }

  expiringBefore(horizon: number, tx?: StoreTx): Promise<ConnectionRow[]> {
    return this.rows(
      `SELECT * FROM connections WHERE expires_at IS NOT NULL AND expires_at <= $1
         AND health IN ('ok', 'error') ORDER BY expires_at`,
      [horizon],
      tx,
    );
  }

  async unwarnedEndingBefore(
    platforms: readonly string[],
    horizon: number,
    tx?: StoreTx,
  ): Promise<ConnectionRow[]> {
    if (platforms.length === 0) return [];
    return this.rows(
      `SELECT * FROM connections WHERE platform = ANY($1::text[]) AND kind = 'user' AND expiry_warned_at IS NULL
         AND health IN ('ok', 'error')
         AND CASE
               WHEN refresh_token IS NOT NULL AND refresh_expires_at IS NOT NULL
                 THEN GREATEST(refresh_expires_at, COALESCE(expires_at, 0))
               WHEN refresh_token IS NULL THEN expires_at
             END <= $2`,
      [platforms, horizon],
      tx,
    );
  }

  // ------------------------------------------------------------------ key rotation

  async sealedCells(tx?: StoreTx): Promise<SealedCell[]> {
    const q = on(this.pool, tx);
    const conns = await q.query<TokenRow>(
      'SELECT connection_id, access_token, refresh_token FROM connections',
    );
    const states = await q.query<VerifierRow>(
      'SELECT state_hash, code_verifier FROM oauth_states WHERE code_verifier IS NOT NULL',
    );
    return sealedCellsOf(conns.rows, states.rows);
  }

  async writeCell(cell: SealedCell, value: string, tx?: StoreTx): Promise<void> {
    const keyColumn = cell.table === 'connections' ? 'connection_id' : 'state_hash';
    // Table and column names come from the closed unions of SealedCell, never from input.
    await this.count(
      `UPDATE ${cell.table} SET ${cell.column} = $1 WHERE ${keyColumn} = $2`,
      [value, cell.key],
      tx,
    );
  }
}
