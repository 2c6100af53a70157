/**
 * @module store/key-store
 * API keys. A key reads `pk_<id>_<secret>`: the id finds the row, the secret is checked against
 * a stored SHA-256 in constant time. Keys are random 192-bit secrets, so a fast hash is enough
 * (no password-style stretching is needed), and verification stays cheap on every request.
 * Keys are cached in memory and re-read from the database at most every 10 s, so that a key
 * created or revoked by `presence keys` in another process takes effect on a running server.
 */

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Clock } from '../core/clock';
import type { Db } from './db';

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string | null;
  readonly scopes: readonly Scope[];
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

interface Row {
  id: string;
  name: string | null;
  hash: string;
  scopes: string;
  created_at: number;
  revoked_at: number | null;
}

const KEY_PATTERN = /^pk_([0-9a-f]{16})_([A-Za-z0-9_-]{32})$/;
// The one-shot hash: a key is checked on every request, and a Hash object costs four times as much.
const sha256 = (text: string): Buffer => Buffer.from(hash('sha256', text, 'base64'), 'base64');

export function parseScopes(text: string): Scope[] {
  const scopes = [
    ...new Set(
      text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== ''),
    ),
  ];
  const bad = scopes.filter((s) => !(SCOPES as readonly string[]).includes(s));
  if (bad.length > 0 || scopes.length === 0) {
    throw new Error(
      `scopes must be a comma-separated list of ${SCOPES.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}`,
    );
  }
  return scopes as Scope[];
}

const RECHECK_MS = 10_000;

interface Cached {
  readonly hash: Buffer | null;
  readonly info: ApiKeyInfo | null;
  readonly checkedAt: number;
}

export class ApiKeyStore {
  private readonly cache = new Map<string, Cached>();
  private readonly byId;

  constructor(
    private readonly db: Db,
    private readonly clock: Clock,
  ) {
    this.byId = db.prepare('SELECT * FROM api_keys WHERE id = ?');
  }

  /** The key's row as of at most RECHECK_MS ago; unknown and revoked ids are cached as absent. */
  private lookup(id: string): Cached {
    const now = this.clock.now();
    const hit = this.cache.get(id);
    if (hit !== undefined && now - hit.checkedAt < RECHECK_MS) return hit;
    const row = this.byId.get(id) as Row | undefined;
    const entry: Cached =
      row === undefined || row.revoked_at !== null
        ? { hash: null, info: null, checkedAt: now }
        : { hash: Buffer.from(row.hash, 'hex'), info: this.toInfo(row), checkedAt: now };
    // Bounded: garbage ids must not grow the cache without limit.
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(id, entry);
    return entry;
  }

  private toInfo(row: Row): ApiKeyInfo {
    return {
      id: row.id,
      name: row.name,
      scopes: row.scopes.split(',') as Scope[],
      createdAt: row.created_at,
      revokedAt: row.revoked_at,
    };
  }

  /** Creates a key and returns it whole: the only time it is ever shown. */
  create(scopes: readonly Scope[], name: string | null = null): { key: string; info: ApiKeyInfo } {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const hash = sha256(secret);
    const row: Row = {
      id,
      name,
      hash: hash.toString('hex'),
      scopes: scopes.join(','),
      created_at: this.clock.now(),
      revoked_at: null,
    };
    this.db
      .prepare('INSERT INTO api_keys (id, name, hash, scopes, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(row.id, row.name, row.hash, row.scopes, row.created_at);
    const info = this.toInfo(row);
    this.cache.set(id, { hash, info, checkedAt: this.clock.now() });
    return { key: `pk_${id}_${secret}`, info };
  }

  /** The key's record when the presented key is valid and not revoked; null otherwise. */
  verify(presented: string): ApiKeyInfo | null {
    const m = KEY_PATTERN.exec(presented);
    if (m === null) return null;
    const entry = this.lookup(m[1]!);
    if (entry.hash === null) return null;
    return timingSafeEqual(sha256(m[2]!), entry.hash) ? entry.info : null;
  }

  list(): ApiKeyInfo[] {
    return (this.db.prepare('SELECT * FROM api_keys ORDER BY created_at, id').all() as Row[]).map((r) =>
      this.toInfo(r),
    );
  }

  revoke(id: string): boolean {
    const changed = this.db
      .prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL')
      .run(this.clock.now(), id).changes;
    this.cache.delete(id);
    return changed > 0;
  }
}
