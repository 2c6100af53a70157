/**
 * The two implementations of the store ports, behind one `AsyncStores` face, for the port
 * conformance suite: every test in this folder runs once per backend (`forEachStore`).
 *
 * - sqlite: the real SQLite stores on a temporary file, behind the service's own adapter
 *   (`store/async-sqlite.ts`), so the store's code and the adapter are what is tested.
 * - pg: the PostgreSQL stores on a database created for the describe block (`presence_t_<random>` on
 *   127.0.0.1:5432, trust auth, user postgres), dropped at the end; emptied before each test.
 */

import { join } from 'node:path';

import type {
  AsyncStores,
  EventType,
  LoadedUser,
  NewDelivery,
  NewEvent,
  StoredEndpoint,
  WriteOp,
} from '../../../src/core/ports';
import { openPgStores, type PgStores } from '../../../src/store/pg';
import { asyncSqlite } from '../../../src/store/async-sqlite';
import { openSqliteStores } from '../../../src/store/sqlite';
import { tmpDir } from '../../helpers/engine';
import { createTestDatabase } from '../../helpers/pg-database';

export type BackendName = 'sqlite' | 'pg';

export { createTestDatabase, PG_HOST, pgUrl } from '../../helpers/pg-database';

export interface Backend {
  readonly name: BackendName;
  /** A fresh, empty, migrated store; closed after the test. */
  open(): Promise<AsyncStores>;
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

/** A `NewDelivery`, positionally (`event`: its event's index in the batch written with it). */
export const delivery = (
  endpointId: string,
  event: number,
  orderingKey: string,
  notBefore: number,
  nextAttemptAt: number,
  replay: boolean,
  now: number,
): NewDelivery => ({ endpointId, event, orderingKey, notBefore, nextAttemptAt, replay, now });

/** Every stored user, as an array (the port may hand them over as any iterable). */
export async function loadAll(s: AsyncStores): Promise<LoadedUser[]> {
  return [...(await s.presence.loadAll())];
}
