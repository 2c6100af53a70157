/**
 * @module store/pg/key-store
 * The API key store on PostgreSQL (`Async<ApiKeyStore>`): the `api_keys` table, scopes stored
 * comma-separated as on SQLite.
 */

import type pg from 'pg';

import type { ApiKeyRecord, AsyncApiKeyStore } from '../../core/ports';
import { type ApiKeyRow, toApiKeyRecord } from '../rows/api-keys';

export class PgApiKeyStore implements AsyncApiKeyStore {
  constructor(private readonly pool: pg.Pool) {}

  async insert(key: ApiKeyRecord): Promise<void> {
    await this.pool.query(
      'INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES ($1, $2, $3, $4, $5)',
      [key.id, key.name, key.hash, key.scopes.join(','), key.createdAt],
    );
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    const { rows } = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    return rows[0] === undefined ? null : toApiKeyRecord(rows[0]);
  }

  async list(): Promise<ApiKeyRecord[]> {
    const { rows } = await this.pool.query<ApiKeyRow>('SELECT * FROM api_keys ORDER BY created_at, id');
    return rows.map(toApiKeyRecord);
  }

  async revoke(id: string, at: number): Promise<boolean> {
    const r = await this.pool.query(
      'UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL',
      [at, id],
    );
    return (r.rowCount ?? 0) > 0;
  }
}
