/**
 * @module keys/api-keys
 * API keys. A key reads `pk_<id>_<secret>`: the id finds the row, the secret is checked against
 * a stored SHA-256 in constant time. Keys are random 192-bit secrets, so a fast hash is enough
 * (no password-style stretching is needed), and verification stays cheap on every request.
 * Keys are cached in memory and re-read from the store at most every 10 s, so that a key
 * created or revoked by `presence keys` in another process takes effect on a running server.
 * The rows themselves live behind the `ApiKeyStore` port.
 */

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Clock } from '../core/clock';
import { SCOPES, type ApiKeyRecord, type ApiKeyStore, type Scope } from '../core/ports';

export { SCOPES, type Scope } from '../core/ports';

export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string | null;
  readonly scopes: readonly Scope[];
  readonly createdAt: number;
  readonly revokedAt: number | null;
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

/** The keys of the service: create, verify on every request, list, revoke. */
export class ApiKeys {
  private readonly cache = new Map<string, Cached>();

  constructor(
    private readonly store: ApiKeyStore,
    private readonly clock: Clock,
  ) {}

  /** The key's row as of at most RECHECK_MS ago; unknown and revoked ids are cached as absent. */
  private lookup(id: string): Cached {
    const now = this.clock.now();
    const hit = this.cache.get(id);
    if (hit !== undefined && now - hit.checkedAt < RECHECK_MS) return hit;
    const row = this.store.get(id);
    const entry: Cached =
      row === null || row.revokedAt !== null
        ? { hash: null, info: null, checkedAt: now }
        : { hash: Buffer.from(row.hash, 'hex'), info: this.toInfo(row), checkedAt: now };
    // Bounded: garbage ids must not grow the cache without limit.
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(id, entry);
    return entry;
  }

  private toInfo(row: ApiKeyRecord): ApiKeyInfo {
    return {
      id: row.id,
      name: row.name,
      scopes: [...row.scopes],
      createdAt: row.createdAt,
      revokedAt: row.revokedAt,
    };
  }

  /** Creates a key and returns it whole: the only time it is ever shown. */
  create(scopes: readonly Scope[], name: string | null = null): { key: string; info: ApiKeyInfo } {
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(24).toString('base64url');
    const hash = sha256(secret);
    const row: ApiKeyRecord = {
      id,
      name,
      hash: hash.toString('hex'),
      scopes: [...scopes],
      createdAt: this.clock.now(),
      revokedAt: null,
    };
    this.store.insert(row);
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
    return this.store.list().map((r) => this.toInfo(r));
  }

  revoke(id: string): boolean {
    const revoked = this.store.revoke(id, this.clock.now());
    this.cache.delete(id);
    return revoked;
  }
}
