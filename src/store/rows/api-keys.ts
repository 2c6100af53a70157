/**
 * @module store/rows/api-keys
 * The `api_keys` row as both databases return it (scopes comma-separated), and its mapping to
 * the port's `ApiKeyRecord`; the SQLite and PostgreSQL key stores share them.
 */

import type { ApiKeyRecord, Scope } from '../../core/ports';

export interface ApiKeyRow {
  id: string;
  name: string | null;
  hash: string;
  scopes: string;
  created_at: number;
  revoked_at: number | null;
}

export const toApiKeyRecord = (row: ApiKeyRow): ApiKeyRecord => ({
  id: row.id,
  name: row.name,
  hash: row.hash,
  scopes: row.scopes.split(',') as Scope[],
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});
