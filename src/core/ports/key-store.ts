/**
 * @module core/ports/key-store
 * The API key store.
 */

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A stored API key: never the key itself, only a SHA-256 of its secret part. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string | null;
  /** Hex SHA-256 of the key's secret part. */
  readonly hash: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

export interface ApiKeyStore {
  insert(key: ApiKeyRecord): void;
  get(id: string): ApiKeyRecord | null;
  /** Oldest first (then by id). */
  list(): ApiKeyRecord[];
  /** Marks an active key revoked at `at`; false when there is no active key with that id. */
  revoke(id: string, at: number): boolean;
}
