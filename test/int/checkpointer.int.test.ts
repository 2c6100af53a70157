import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';

import type { Log } from '../../src/core/log';
import { startCheckpointer } from '../../src/store/checkpointer';
import { openDb, type Db } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';
import { waitUntil } from '../helpers/wait';

/** About 8 MB in 2,000 commits: past SQLite's own 1,000-page checkpoint mark. */
function write(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS t (v BLOB)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  for (let i = 0; i < 2000; i++) insert.run(Buffer.alloc(4000, i % 251));
}

describe('background WAL checkpoints', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('commits never checkpoint; the worker copies the WAL into the database file', async () => {
    const path = join(tmp.dir, 'ckpt.db');
    const db = openDb(path);
    const checkpointer = startCheckpointer(db, { intervalMs: 60_000 });
    write(db);
    // Nothing in the commits moved pages into the file: they are all in the WAL.
    expect(statSync(path).size).toBeLessThan(100_000);
    expect(statSync(`${path}-wal`).size).toBeGreaterThan(8_000_000);
    await checkpointer.stop();

    const fast = startCheckpointer(db, { intervalMs: 20 });
    // A condition, not a deadline: however busy the machine, the worker gets there.
    await waitUntil(() => statSync(path).size > 8_000_000);
    expect(statSync(path).size).toBeGreaterThan(8_000_000);
    await fast.stop();
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(2000);
    db.close();
  });

  /**
   * SQLite deletes the WAL when the last connection to a database closes, and only then: so the
   * WAL outliving the main connection's close means the worker's connection is still open.
   * https://www.sqlite.org/wal.html ("when the last connection to a database closes, that
   * connection does one last checkpoint and then deletes the WAL and its associated shared-memory file")
   */
  const warnings = (): { log: Log; seen: string[] } => {
    const seen: string[] = [];
    const note = (_obj: object, msg?: string): void => {
      seen.push(msg ?? '');
    };
    return { log: { debug: () => undefined, info: () => undefined, warn: note, error: note }, seen };
  };

  it('while running, the worker holds its own connection (the control for the case below)', async () => {
    const path = join(tmp.dir, 'running.db');
    const db = openDb(path);
    const { log, seen } = warnings();
    // Started first, so that the main connection's commits leave every page in the WAL.
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    // No check of the file's size right after the writes: the worker runs in its own thread and
    // may checkpoint while they are still going on.
    write(db);
    // The worker has opened the database once it has checkpointed into the file.
    await waitUntil(() => statSync(path).size > 8_000_000);
    db.close();
    expect(existsSync(`${path}-wal`)).toBe(true);
    await checkpointer.stop();
    // Its connection was the last: closing it removed the WAL.
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(seen).toEqual([]);
  });

  it('stops cleanly, also right after it started: its connection closed, no warnings, the data kept', async () => {
    const path = join(tmp.dir, 'quick.db');
    const db = openDb(path);
    write(db);
    const { log, seen } = warnings();
    await startCheckpointer(db, { intervalMs: 20, log }).stop();
    // After stop() nothing of the worker is left holding the database: the main connection's
    // close is the last one, so SQLite checkpoints and deletes the WAL.
    db.close();
    expect(existsSync(`${path}-wal`)).toBe(false);
    expect(seen).toEqual([]);
    const again = openDb(path);
    expect((again.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(2000);
    again.close();
  });
});
