/**
 * @module keys/api-keys
 * API keys. A key reads `pk_<id>_<secret>`: the id finds the row, the secret is checked against
 * a stored SHA-256 in constant time. Keys are random 192-bit secrets, so a fast hash is enough
 * (no password-style stretching is needed), and verification stays cheap on every request.
 * The rows live behind the (asynchronous) `ApiKeyStore` port; what a request checks is held in
 * memory (see `ApiKeys`).
 */

import { hash, randomBytes, timingSafeEqual } from 'node:crypto';

import type { Clock } from '../core/clock';
import { SCOPES, type ApiKeyRecord, type AsyncApiKeyStore, type Scope } from '../core/ports';
import { RecheckCache } from '../core/recheck-cache';
import { isUnreachable as unreachable } from '../store/faults';

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

interface Cached {
  readonly hash: Buffer | null;
  readonly info: ApiKeyInfo | null;
}

const ABSENT: Cached = { hash: null, info: null };

/**
 * The keys of the service: create, verify on every request, list, revoke. A key seen lately is
 * checked from memory (`RecheckCache`: re-read in the background, never trusted more than 1 s
 * after the store last showed it), so a request costs no store round trip and a key created or
 * revoked on another node (or by `presence keys`) takes effect within 1 s; a revocation here
 * takes effect at once.
 */
export class ApiKeys {
  private readonly cache: RecheckCache<Cached>;

  constructor(
    private readonly store: AsyncApiKeyStore,
    private readonly clock: Clock,
  ) {
    // A key seen before keeps opening reads while the store does not answer (store/faults.ts):
    // nobody can revoke it there meanwhile, and reads from memory need no store.
    this.cache = new RecheckCache({ clock, load: (id) => this.read(id), keepWhile: unreachable });
  }

  /** Store reads the cache made (for tests). */
  get storeReads(): number {
    return this.cache.reads;
  }

  /** Unknown and revoked ids are cached as absent. */
  private async read(id: string): Promise<Cached> {
    const row = await this.store.get(id);
    return row === null || row.revokedAt !== null
      ? ABSENT
      : { hash: Buffer.from(row.hash, 'hex'), info: this.toInfo(row) };
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
  async create(
    scopes: readonly Scope[],
    name: string | null = null,
  ): Promise<{ key: string; info: ApiKeyInfo }> {
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
    await this.store.insert(row);
    const info = this.toInfo(row);
    this.cache.set(id, { hash, info });
    return { key: `pk_${id}_${secret}`, info };
  }

  /**
   * The request path's check, from memory: the key's record when the presented key is valid and
   * not revoked, null when it is not, and undefined when only the store can tell (`verify`).
   */
  verifyCached(presented: string): ApiKeyInfo | null | undefined {
    const m = KEY_PATTERN.exec(presented);
    if (m === null) return null;
    const hit = this.cache.peek(m[1]!);
    return hit === undefined ? undefined : match(hit.value, m[2]!);
  }

  /** As `verifyCached`, reading the store when memory cannot tell; rejects when the store fails. */
  async verify(presented: string): Promise<ApiKeyInfo | null> {
    const m = KEY_PATTERN.exec(presented);
    if (m === null) return null;
    return match(await this.cache.get(m[1]!), m[2]!);
  }

  async list(): Promise<ApiKeyInfo[]> {
    return (await this.store.list()).map((r) => this.toInfo(r));
  }

  /** Refused here from the call on, before the store has answered; false when no active key has `id`. */
  async revoke(id: string): Promise<boolean> {
    this.cache.set(id, ABSENT);
    try {
      return await this.store.revoke(id, this.clock.now());
    } catch (error) {
      // Not revoked after all (or not known to be): the next use asks the store.
      this.cache.delete(id);
      throw error;
    }
  }
}

function match(entry: Cached, secret: string): ApiKeyInfo | null {
  if (entry.hash === null) return null;
  return timingSafeEqual(sha256(secret), entry.hash) ? entry.info : null;
}
