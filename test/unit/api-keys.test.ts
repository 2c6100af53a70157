/**
 * The API key service over its store port, with an in-memory store standing in for SQLite (what
 * any other implementation of the port must be enough for): a key is shown once, verified against
 * a hash only, and a revocation made elsewhere (another process, writing the store directly) is
 * seen within the 10 s re-check.
 */
import { FakeClock } from '../../src/core/clock';
import type { ApiKeyRecord, ApiKeyStore } from '../../src/core/ports';
import { ApiKeys } from '../../src/keys/api-keys';

class MemoryKeyStore implements ApiKeyStore {
  readonly rows = new Map<string, ApiKeyRecord>();
  reads = 0;

  insert(key: ApiKeyRecord): void {
    this.rows.set(key.id, key);
  }

  get(id: string): ApiKeyRecord | null {
    this.reads += 1;
    return this.rows.get(id) ?? null;
  }

  list(): ApiKeyRecord[] {
    return [...this.rows.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  revoke(id: string, at: number): boolean {
    const row = this.rows.get(id);
    if (row === undefined || row.revokedAt !== null) return false;
    this.rows.set(id, { ...row, revokedAt: at });
    return true;
  }
}

describe('ApiKeys over the ApiKeyStore port', () => {
  it('stores a hash, never the key, and verifies the key it showed once', () => {
    const store = new MemoryKeyStore();
    const keys = new ApiKeys(store, new FakeClock());
    const { key, info } = keys.create(['read', 'write'], 'ops');
    expect(key).toMatch(/^pk_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
    const row = store.rows.get(info.id)!;
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(key.slice(20));
    expect(keys.verify(key)).toEqual(info);
    expect(keys.verify(`${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`)).toBeNull();
    expect(keys.list()).toEqual([info]);
  });

  it('sees a revocation written by someone else within 10 s, and its own at once', () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const server = new ApiKeys(store, clock);
    const cli = new ApiKeys(store, clock);
    const a = server.create(['read']);
    const b = server.create(['admin']);
    expect(server.verify(a.key)).not.toBeNull();

    expect(cli.revoke(a.info.id)).toBe(true);
    expect(server.verify(a.key)).not.toBeNull(); // cached for up to 10 s
    clock.advance(10_000);
    expect(server.verify(a.key)).toBeNull();

    expect(server.revoke(b.info.id)).toBe(true);
    expect(server.verify(b.key)).toBeNull();
    expect(server.revoke(b.info.id)).toBe(false);
  });

  it('reads the store at most once per 10 s for a key in use', () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key } = keys.create(['read']);
    const before = store.reads;
    for (let i = 0; i < 100; i++) keys.verify(key);
    expect(store.reads).toBe(before);
    clock.advance(10_000);
    keys.verify(key);
    expect(store.reads).toBe(before + 1);
  });
});
