/**
 * PostgreSQL failing under the stores, classified as store faults (store/faults.ts) so that the
 * engine and the routes answer 503 `unavailable`: a connection cut by a TCP proxy, a session the
 * server terminates (57P01), a pool whose waiting queue is full; and the pool recovering by
 * itself once the server answers again.
 */

import { classifyStoreError, isStoreFault } from '../../src/store/faults';
import { openPgStores, type PgStores } from '../../src/store/pg';
import { openPool } from '../../src/store/pg/pool';
import { createTestDatabase, pgUrl, type TestDatabase } from '../helpers/pg-database';
import { TcpProxy } from '../helpers/tcp-proxy';
import { sleep } from '../helpers/wait';

let database: TestDatabase;
let proxy: TcpProxy;
const opened: PgStores[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
beforeEach(async () => {
  proxy = await TcpProxy.start({ host: '127.0.0.1', port: 5432 });
});
afterEach(async () => {
  for (const s of opened.splice(0)) await s.close();
  await proxy.close();
});
afterAll(async () => {
  await database.drop();
});

async function throughProxy(max = 3): Promise<PgStores> {
  const s = await openPgStores({ connectionString: pgUrl(database.name, `127.0.0.1:${proxy.port}`), max });
  opened.push(s);
  return s;
}

const key = (id: string) => ({
  id,
  hash: `hash-${id}`,
  scopes: ['read' as const],
  name: null,
  createdAt: 1,
  revokedAt: null,
});

/** The reason a call fails with, or 'resolved'. */
const reasonOf = (p: Promise<unknown>): Promise<string> =>
  p.then(
    () => 'resolved',
    (e: unknown) => (isStoreFault(e) ? classifyStoreError(e, 0).reason : `not a fault: ${String(e)}`),
  );

describe('PostgreSQL failing under the stores', () => {
  it('a cut connection fails calls as database_unreachable, and the pool recovers once it is back', async () => {
    const s = await throughProxy();
    await s.keys.insert(key('k1'));
    // One client in a transaction when the cut comes: its COMMIT fails.
    const held = s.transaction(async () => {
      await proxy.cut();
    });
    expect(await reasonOf(held)).toBe('database_unreachable');
    // While it is down every call fails as unreachable (connections refused), none hangs.
    expect(await reasonOf(s.keys.insert(key('k2')))).toBe('database_unreachable');
    expect(await reasonOf(s.presence.loadAll())).toBe('database_unreachable');
    expect(await s.ready()).toBe(false);
    await proxy.restore();
    // Back: the pool opens new clients by itself.
    await s.keys.insert(key('k3'));
    expect((await s.keys.list()).map((k) => k.id).sort()).toEqual(['k1', 'k3']);
    expect(await s.ready()).toBe(true);
  });

  it('a statement whose session the server terminates fails with 57P01, a fault; the next call works', async () => {
    const s = await throughProxy(1);
    const admin = openPool({ connectionString: database.url, max: 1 });
    try {
      // Its failure is taken at once: it may come before the terminating call returns.
      const failure = s.pool.query("SELECT pg_sleep(60), 'presence-fault-test'").then(
        () => null,
        (e: unknown) => e as { code?: string },
      );
      const running = async (): Promise<boolean> =>
        (
          await admin.query(
            "SELECT 1 FROM pg_stat_activity WHERE query LIKE '%presence-fault-test%' AND pid != pg_backend_pid()",
          )
        ).rowCount === 1;
      while (!(await running())) await sleep(20);
      await admin.query(
        `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE '%presence-fault-test%' AND pid != pg_backend_pid()`,
      );
      const error = await failure;
      expect(error?.code).toBe('57P01');
      expect(isStoreFault(error)).toBe(true);
      expect(classifyStoreError(error, 0).reason).toBe('database_unreachable');
      expect((await s.keys.list()).map((k) => k.id).sort()).toEqual(['k1', 'k3']);
    } finally {
      await admin.end();
    }
  });

  it('refuses at once, as database_busy, a checkout beyond the waiting queue', async () => {
    const pool = openPool({ connectionString: database.url, max: 1, maxWaiting: 1 });
    try {
      const client = await pool.connect();
      const waiting = pool.query('SELECT 1');
      expect(await reasonOf(pool.query('SELECT 2'))).toBe('database_busy');
      client.release();
      await expect(waiting).resolves.toBeDefined();
    } finally {
      await pool.end();
    }
  });

  it('a checkout that waits for a client fails at the connect timeout, not later', async () => {
    const pool = openPool({ connectionString: database.url, max: 1, connectTimeoutMs: 200 });
    try {
      const client = await pool.connect();
      expect(await reasonOf(pool.query('SELECT 1'))).toBe('database_unreachable');
      client.release();
      await expect(pool.query('SELECT 1')).resolves.toBeDefined();
    } finally {
      await pool.end();
    }
  });
});
