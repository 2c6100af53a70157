/**
 * @module store/key-store
 * The SQLite `ApiKeyStore` (core/ports): the `api_keys` table (migrations/0002_api_keys.sql), scopes
 * stored comma-separated.
 */

import type { ApiKeyRecord, ApiKeyStore } from '../core/ports';
import type { Db } from './db';
import { type ApiKeyRow, toApiKeyRecord } from './rows/api-keys';

export class SqliteApiKeyStore implements ApiKeyStore {
  // Prepared once: it runs for every request whose key is not cached.
  private readonly byId;

  constructor(private readonly db: Db) {
    this.byId = db.prepare('SELECT * FROM api_keys WHERE id = ?');
  }

  insert(key: ApiKeyRecord): void {
    this.db
      .prepare('INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(key.id, key.name, key.hash, key.scopes.join(','), key.createdAt);
  }

  get(id: string): ApiKeyRecord | null {
    const row = this.byId.get(id) as ApiKeyRow | undefined;
    return row === undefined ? null : toApiKeyRecord(row);
  }

  list(): ApiKeyRecord[] {
    return (this.db.prepare('SELECT * FROM api_keys ORDER BY created_at, id').all() as ApiKeyRow[]).map(
      toApiKeyRecord,
    );
  }

  revoke(id: string, at: number): boolean {
    return (
      this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id)
        .changes > 0
    );
  }
}
