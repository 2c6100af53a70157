/**
 * The API key service over its (asynchronous) store port, with an in-memory store standing in for
 * the database every node shares: a key is shown once and verified against a hash only; a key in
 * use is checked from memory, re-read in the background, and never trusted more than 1 s (by the
 * FakeClock) after the store last showed it, so a key created or revoked on another node takes
 * effect within 1 s, and a revocation on this node at once.
 */
import { FakeClock } from '../../src/core/clock';
import type { ApiKeyRecord, AsyncApiKeyStore } from '../../src/core/ports';
import { ApiKeys } from '../../src/keys/api-keys';

class MemoryKeyStore implements AsyncApiKeyStore {
  readonly rows = new Map<string, ApiKeyRecord>();
  reads = 0;
  /** While set, every call fails with it (the database is down). */
  down: Error | null = null;

  /** Every call answers on a later microtask, as a database would (and fails while down). */
  private async up(): Promise<void> {
    await Promise.resolve();
    if (this.down !== null) throw this.down;
  }

  async insert(key: ApiKeyRecord): Promise<void> {
    await this.up();
    this.rows.set(key.id, key);
  }

  async get(id: string): Promise<ApiKeyRecord | null> {
    this.reads += 1;
    await this.up();
    return this.rows.get(id) ?? null;
  }

  async list(): Promise<ApiKeyRecord[]> {
    await this.up();
    return [...this.rows.values()].sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  async revoke(id: string, at: number): Promise<boolean> {
    await this.up();
    const row = this.rows.get(id);
    if (row === undefined || row.revokedAt !== null) return false;
    this.rows.set(id, { ...row, revokedAt: at });
    return true;
  }
}

/** Lets the background re-reads the cache started land. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('ApiKeys over the ApiKeyStore port', () => {
  it('stores a hash, never the key, and verifies the key it showed once', async () => {
    const store = new MemoryKeyStore();
    const keys = new ApiKeys(store, new FakeClock());
    const { key, info } = await keys.create(['read', 'write'], 'ops');
    expect(key).toMatch(/^pk_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
    const row = store.rows.get(info.id)!;
    expect(row.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(row)).not.toContain(key.slice(20));
    expect(keys.verifyCached(key)).toEqual(info);
    expect(await keys.verify(key)).toEqual(info);
    const wrong = `${key.slice(0, -1)}${key.endsWith('A') ? 'B' : 'A'}`;
    expect(keys.verifyCached(wrong)).toBeNull();
    expect(await keys.verify(wrong)).toBeNull();
    expect(keys.verifyCached('pk_nothing')).toBeNull();
    expect(await keys.list()).toEqual([info]);
  });

  it('a key created on another node: unknown from memory, then verified through the store', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const here = new ApiKeys(store, clock);
    const other = new ApiKeys(store, clock);
    const { key, info } = await other.create(['read']);
    expect(here.verifyCached(key)).toBeUndefined(); // only the store can tell
    expect(await here.verify(key)).toEqual(info);
    expect(here.verifyCached(key)).toEqual(info);
  });

  it('an id that was unknown is re-read within 1 s: a key created elsewhere meanwhile works', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const here = new ApiKeys(store, clock);
    const other = new ApiKeys(store, clock);
    const made = await other.create(['read']);
    // Read here before the other node's insert landed (the row taken away, then put back).
    const row = store.rows.get(made.info.id)!;
    store.rows.delete(made.info.id);
    expect(await here.verify(made.key)).toBeNull();
    expect(here.verifyCached(made.key)).toBeNull(); // absent, from memory
    store.rows.set(made.info.id, row);
    clock.advance(1000);
    expect(here.verifyCached(made.key)).toBeUndefined();
    expect(await here.verify(made.key)).toEqual(made.info);
  });

  it('a revocation on another node takes effect within 1 s; one on this node at once', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const here = new ApiKeys(store, clock);
    const other = new ApiKeys(store, clock);
    const a = await here.create(['read']);
    const b = await here.create(['admin']);

    expect(await other.revoke(a.info.id)).toBe(true);
    expect(here.verifyCached(a.key)).not.toBeNull(); // memory, read less than 1 s ago
    clock.advance(999);
    expect(here.verifyCached(a.key)).not.toBeNull(); // still inside the second (re-read started)
    clock.advance(1);
    // 1 s after the store last showed it: no longer trusted, whatever the background read did.
    const fresh = here.verifyCached(a.key);
    expect(fresh === undefined || fresh === null).toBe(true);
    expect(await here.verify(a.key)).toBeNull();
    expect(here.verifyCached(a.key)).toBeNull();

    const revoking = here.revoke(b.info.id);
    expect(here.verifyCached(b.key)).toBeNull(); // before the store has even answered
    expect(await revoking).toBe(true);
    expect(await here.verify(b.key)).toBeNull();
    expect(await here.revoke(b.info.id)).toBe(false);
  });

  it('a key in use never waits: re-read in the background before its second is up', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key, info } = await keys.create(['read']);
    const before = store.reads;
    for (let i = 0; i < 100; i++) expect(keys.verifyCached(key)).toEqual(info);
    expect(store.reads).toBe(before); // nothing read while fresh
    for (let t = 0; t < 10; t++) {
      clock.advance(600); // past the refresh point, never past 1 s since the last read
      expect(keys.verifyCached(key)).toEqual(info);
      expect(keys.verifyCached(key)).toEqual(info); // one re-read per key at a time
      await settle();
    }
    expect(store.reads).toBe(before + 10);
  });

  it('a revocation here wins over a re-read that was in flight', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key, info } = await keys.create(['read']);
    clock.advance(600);
    expect(keys.verifyCached(key)).toEqual(info); // starts a re-read that will find it active
    await keys.revoke(info.id);
    await settle();
    expect(keys.verifyCached(key)).toBeNull();
  });

  it('a store that fails: keys read lately still pass, others (and stale ones) reject', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key, info } = await keys.create(['read']);
    const other = await new ApiKeys(store, clock).create(['read']);
    store.down = new Error('database down');
    clock.advance(600);
    expect(keys.verifyCached(key)).toEqual(info); // its background re-read fails quietly
    await settle();
    await expect(keys.verify(other.key)).rejects.toThrow('database down');
    clock.advance(400);
    expect(keys.verifyCached(key)).toBeUndefined();
    await expect(keys.verify(key)).rejects.toThrow('database down');
    store.down = null;
    expect(await keys.verify(key)).toEqual(info); // recovered by itself
  });

  it('a store that does not answer (unreachable): keys seen before keep passing, past 1 s too', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key, info } = await keys.create(['read']);
    const other = await new ApiKeys(store, clock).create(['read']);
    store.down = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), {
      code: 'ECONNREFUSED',
      syscall: 'connect',
    });
    clock.advance(5000);
    expect(keys.verifyCached(key)).toBeUndefined();
    const readsBefore = store.reads;
    expect(await keys.verify(key)).toEqual(info); // the store was tried, and could not have changed it
    expect(store.reads).toBeGreaterThan(readsBefore);
    await expect(keys.verify(other.key)).rejects.toThrow('ECONNREFUSED'); // never seen here
    store.down = null;
    await keys.revoke(info.id); // the store answers again: the usual rules hold
    expect(await keys.verify(key)).toBeNull();
  });

  it('a revocation the store refused is not kept: the next use asks the store', async () => {
    const store = new MemoryKeyStore();
    const clock = new FakeClock();
    const keys = new ApiKeys(store, clock);
    const { key, info } = await keys.create(['read']);
    store.down = new Error('database down');
    await expect(keys.revoke(info.id)).rejects.toThrow('database down');
    expect(keys.verifyCached(key)).toBeUndefined();
    store.down = null;
    expect(await keys.verify(key)).toEqual(info);
  });
});
