import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PresenceEngine, type EngineOptions } from '../../src/aggregator/engine';
import { FakeClock } from '../../src/core/clock';
import type { StoreTx } from '../../src/core/changes';
import type { AsyncPresenceStore, RefreshedTimes, WriteOp } from '../../src/core/ports';
import { asyncSqlite, type AsyncSqliteStores } from '../../src/store/async-sqlite';
import { Ladder } from '../../src/core/presence';
import type { Db, MigrationReport } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { SqliteRefreshSlots } from '../../src/store/refresh-slots';
import { openSqliteStores, sqliteStoresOn } from '../../src/store/sqlite';

/** A fresh directory for one test's database files. */
export function tmpDir(): { dir: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'presence-test-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The refreshed times the file holds in its packed slots, by user. */
export function storedRefreshes(db: Db): Map<string, RefreshedTimes> {
  const out = new Map<string, RefreshedTimes>();
  new SqliteRefreshSlots(db).load((e) =>
    out.set(e.userId, { ...e, observations: e.observations.map((o) => ({ ...o })) }),
  );
  return out;
}

/**
 * The presence store of `db` (open, migrated) behind the async face of the ports, as the service
 * composes it; `presence` replaces the SQLite store (a counting or failing one).
 */
const NOTHING_APPLIED: MigrationReport = { applied: [], upToDate: [] };

export function asyncPresenceOn(db: Db, presence?: SqlitePresenceStore): AsyncPresenceStore {
  const stores = sqliteStoresOn(db, NOTHING_APPLIED);
  return asyncSqlite(presence === undefined ? stores : { ...stores, presence }).presence;
}

/** A store that counts what reaches SQLite, to check what the hot path writes. */
export class CountingStore extends SqlitePresenceStore {
  transactions = 0;
  ops: WriteOp[] = [];

  override write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void): void {
    this.transactions += 1;
    this.ops.push(...ops);
    super.write(ops, stage);
  }
}

export interface TestEngine {
  engine: PresenceEngine;
  clock: FakeClock;
  /** The SQLite presence store under the engine, counting its writes. */
  store: CountingStore;
  /** The file's stores behind their async face, as the service composes them (store.presence is `store`). */
  stores: AsyncSqliteStores;
  db: Db;
  path: string;
  /** Opens a second engine on the same file, as a restart would. */
  reopen(options?: Partial<Omit<EngineOptions, 'clock'>>): Promise<TestEngine>;
  close(): void;
}

/** An engine loaded from the file at `path`, over the SQLite stores' async face (`asyncSqlite`). */
export async function testEngine(
  path: string,
  options: Partial<Omit<EngineOptions, 'clock'>> & { clock?: FakeClock } = {},
): Promise<TestEngine> {
  const sqlite = openSqliteStores(path);
  const store = new CountingStore(sqlite.db);
  const stores = asyncSqlite({ ...sqlite, presence: store });
  const clock = options.clock ?? new FakeClock();
  const engine = new PresenceEngine({ ladder: new Ladder(), ...options, clock, store: stores.presence });
  await engine.load();
  return {
    engine,
    clock,
    store,
    stores,
    db: sqlite.db,
    path,
    reopen: (more = {}) => testEngine(path, { ...options, clock, ...more }),
    close: () => sqlite.db.close(),
  };
}
