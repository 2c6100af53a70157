import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { PresenceEngine, type EngineOptions } from '../../src/aggregator/engine';
import { FakeClock } from '../../src/core/clock';
import type { StoreTx } from '../../src/core/changes';
import type { RefreshedTimes, WriteOp } from '../../src/core/ports';
import { Ladder } from '../../src/core/presence';
import { migrate, openDb, type Db } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { SqliteRefreshSlots } from '../../src/store/refresh-slots';

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
  store: CountingStore;
  db: Db;
  path: string;
  /** Opens a second engine on the same file, as a restart would. */
  reopen(options?: Partial<Omit<EngineOptions, 'clock'>>): TestEngine;
  close(): void;
}

export function testEngine(
  path: string,
  options: Partial<Omit<EngineOptions, 'clock'>> & { clock?: FakeClock } = {},
): TestEngine {
  const db = openDb(path);
  migrate(db);
  const store = new CountingStore(db);
  const clock = options.clock ?? new FakeClock();
  const engine = new PresenceEngine({ ladder: new Ladder(), ...options, clock, store: store });
  engine.load();
  return {
    engine,
    clock,
    store,
    db,
    path,
    reopen: (more = {}) => testEngine(path, { ...options, clock, ...more }),
    close: () => db.close(),
  };
}
