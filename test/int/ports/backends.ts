/**
 * The two implementations of the store ports, behind one `AsyncStores` face, for the port
 * conformance suite: every test in this folder runs once per backend (`forEachStore`).
 *
 * - sqlite: the real SQLite stores on a temporary file, each result wrapped in a promise. A
 *   transaction body or `stage` may await: the adapter opens the transaction itself (BEGIN ...
 *   COMMIT on the one connection) and runs the SQLite store's own transactional method inside it,
 *   where better-sqlite3 turns it into a savepoint, so the store's code is what is tested.
 * - pg: the PostgreSQL stores on a database created for the describe block (`presence_t_<random>` on
 *   127.0.0.1:5432, trust auth, user postgres), dropped at the end; emptied before each test.
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import pg from 'pg';

import type {
  AsyncStores,
  EventType,
  LoadedUser,
  NewDelivery,
  NewEvent,
  StoredEndpoint,
  StoreTx,
  WriteOp,
} from '../../../src/core/ports';
import { openPgStores, type PgStores } from '../../../src/store/pg';
import { openSqliteStores, type SqliteStores } from '../../../src/store/sqlite';
import { sqliteTx } from '../../../src/store/tx';
import { tmpDir } from '../../helpers/engine';

export type BackendName = 'sqlite' | 'pg';

export const PG_HOST = '127.0.0.1:5432';
export const pgUrl = (database: string): string => `postgres://postgres@${PG_HOST}/${database}`;

export interface Backend {
  readonly name: BackendName;
  /** A fresh, empty, migrated store; closed after the test. */
  open(): Promise<AsyncStores>;
}

/** Wraps every method of `port` in a promise, `overrides` first. */
function promised<P extends object>(port: P, overrides: Record<string, unknown> = {}): never {
  return new Proxy(port, {
    get(target, key) {
      if (typeof key === 'string' && key in overrides) return overrides[key];
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      return async (...args: unknown[]) => await (value as (...a: unknown[]) => unknown).apply(target, args);
    },
  }) as never;
}

/** The SQLite stores as `AsyncStores` (see the module comment). */
export function asyncSqlite(s: SqliteStores): AsyncStores {
  const { db } = s;
  const handle = sqliteTx(db);
  const inTx = async <T>(fn: (tx: StoreTx) => T | Promise<T>, begin = 'BEGIN'): Promise<T> => {
    db.exec(begin);
    try {
      const result = await fn(handle);
      db.exec('COMMIT');
      return result;
    } catch (error) {
      if (db.inTransaction) db.exec('ROLLBACK');
      throw error;
    }
  };
  type Stage = ((tx: StoreTx) => void | Promise<void>) | undefined;
  // SQLite's scrubbing runs a synchronous fn: around an awaited one, the adapter keeps
  // secure_delete on itself, then lets the store's scrubbing truncate the WAL.
  const scrubbing = async <T>(fn: () => T | Promise<T>) => {
    const before = db.pragma('secure_delete', { simple: true }) as number;
    db.pragma('secure_delete = ON');
    let result: T;
    try {
      result = await fn();
    } finally {
      db.pragma(`secure_delete = ${before}`);
    }
    const { walTruncated } = s.scrubbing(() => undefined);
    return { result, walTruncated };
  };
  return {
    presence: promised(s.presence, {
      write: (ops: readonly WriteOp[], stage: Stage) =>
        inTx(async (tx) => {
          s.presence.write(ops);
          await stage?.(tx);
        }),
      deleteUser: (userId: string, stage: Stage) =>
        inTx(async (tx) => {
          const gone = s.presence.deleteUser(userId);
          await stage?.(tx);
          return gone;
        }),
    }),
    keys: promised(s.keys),
    connections: promised(s.connections, {
      transaction: (fn: (tx: StoreTx) => unknown) => inTx(fn, 'BEGIN IMMEDIATE'),
    }),
    webhooks: promised(s.webhooks, { transaction: inTx, scrubbing }),
    privacy: promised(s.privacy),
    heldDevices: promised(s.heldDevices),
    transaction: inTx,
    scrubbing,
    ready: async () => await Promise.resolve(s.ready()),
    close: async () => await Promise.resolve(s.close()),
  };
}

function sqliteBackend(): Backend {
  const opened: { stores: AsyncStores; cleanup(): void }[] = [];
  afterEach(async () => {
    for (const o of opened.splice(0)) {
      await o.stores.close();
      o.cleanup();
    }
  });
  return {
    name: 'sqlite',
    open: () => {
      const tmp = tmpDir();
      const stores = asyncSqlite(openSqliteStores(join(tmp.dir, 'presence.db')));
      opened.push({ stores, cleanup: tmp.cleanup });
      return Promise.resolve(stores);
    },
  };
}

/** Creates a database of its own on the local PostgreSQL; `drop` removes it. */
export async function createTestDatabase(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = `presence_t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl('postgres') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  return {
    name,
    url: pgUrl(name),
    drop: async () => {
      const c = new pg.Client({ connectionString: pgUrl('postgres') });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

function pgBackend(): Backend {
  let database: Awaited<ReturnType<typeof createTestDatabase>> | null = null;
  const opened: PgStores[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    for (const s of opened.splice(0)) await s.close();
  });
  afterAll(async () => {
    await database?.drop();
  });
  return {
    name: 'pg',
    open: async () => {
      const stores = await openPgStores({ connectionString: database!.url, max: 4 });
      opened.push(stores);
      const { rows } = await stores.pool.query<{ tablename: string }>(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename != 'schema_migrations'",
      );
      await stores.pool.query(`TRUNCATE ${rows.map((r) => r.tablename).join(', ')} RESTART IDENTITY CASCADE`);
      return stores;
    },
  };
}

/** Declares `body`'s tests once per backend, each in a describe block named after it. */
export function forEachStore(title: string, body: (backend: Backend) => void): void {
  describe.each<BackendName>(['sqlite', 'pg'])(`${title} (%s)`, (name) => {
    body(name === 'sqlite' ? sqliteBackend() : pgBackend());
  });
}

export const user = (userId: string, at = 1): WriteOp => ({
  op: 'user',
  user: { userId, displayName: null, timezone: null, createdAt: at, updatedAt: at },
});

/**
 * The message a call fails with ('resolved' if it did not): the two drivers word constraint
 * errors differently, and better-sqlite3's errors do not pass jest's `toThrow` check.
 */
export async function failure(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => 'resolved',
    (e: unknown) => (e instanceof Error ? e.message : String(e)),
  );
}

export const UNIQUE = /UNIQUE constraint failed|duplicate key value/;
export const FOREIGN_KEY = /FOREIGN KEY constraint failed|violates foreign key constraint/;

/** A `NewEvent`, positionally. */
export const event = (
  msgId: string,
  type: EventType,
  userId: string | null,
  version: number | null,
  createdAt: number,
  payload: string,
): NewEvent => ({ msgId, type, userId, version, createdAt, payload });

/** A webhook endpoint as the store keeps it (secret sealed), with `over` changed. */
export const endpoint = (id: string, over: Partial<StoredEndpoint> = {}): StoredEndpoint => ({
  id,
  url: `https://example.test/${id}`,
  events: ['presence.changed'],
  userIds: null,
  coalesceMs: 0,
  sealedSecret: `v1.k.iv.tag.secret-${id}`,
  sealedPreviousSecret: null,
  previousExpiresAt: null,
  enabled: true,
  disabledReason: null,
  disabledAt: null,
  failingSince: null,
  createdAt: 1,
  updatedAt: 1,
  ...over,
});

/** A `NewDelivery`, positionally. */
export const delivery = (
  endpointId: string,
  eventSeq: number,
  orderingKey: string,
  notBefore: number,
  nextAttemptAt: number,
  replay: boolean,
  now: number,
): NewDelivery => ({ endpointId, eventSeq, orderingKey, notBefore, nextAttemptAt, replay, now });

/** Every stored user, as an array (the port may hand them over as any iterable). */
export async function loadAll(s: AsyncStores): Promise<LoadedUser[]> {
  return [...(await s.presence.loadAll())];
}
