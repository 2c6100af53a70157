import { statSync } from 'node:fs';
import { join } from 'node:path';

import { startCheckpointer } from '../../src/store/checkpointer';
import { openDb, type Db } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
    for (let i = 0; i < 100 && statSync(path).size < 8_000_000; i++) await sleep(20);
    expect(statSync(path).size).toBeGreaterThan(8_000_000);
    await fast.stop();
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(2000);
    db.close();
  });

  it('stops cleanly, also right after it started', async () => {
    const db = openDb(join(tmp.dir, 'quick.db'));
    await startCheckpointer(db).stop();
    write(db);
    db.close();
  });
});
