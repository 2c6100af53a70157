import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';

import type { Log } from '../../src/core/log';
import { SAFETY_NET_PAGES, startCheckpointer } from '../../src/store/checkpointer';
import { openDb, type Db } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';
import { waitUntil } from '../helpers/wait';

/** About 8 MB in 2,000 commits: past SQLite's own 1,000-page checkpoint mark. */
function write(db: Db): void {
  db.exec('CREATE TABLE IF NOT EXISTS t (v BLOB)');
  const insert = db.prepare('INSERT INTO t (v) VALUES (?)');
  for (let i = 0; i < 2000; i++) insert.run(Buffer.alloc(4000, i % 251));
}

/**
 * The WAL header's checkpoint sequence number (bytes 12–15, big-endian), which SQLite increments
 * each time the WAL starts over from its first frame (https://www.sqlite.org/fileformat.html,
 * "WAL File Format").
 */
function walSequence(path: string): number {
  const header = Buffer.alloc(32);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    readSync(fd, header, 0, 32, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt32BE(12);
}

/** The main connection's safety-net auto-checkpoint mark, in bytes of WAL (pages of 4 KiB). */
const SAFETY_NET_BYTES = SAFETY_NET_PAGES * 4096;

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

  it('under steady commits the WAL starts over every round instead of growing to the safety net', async () => {
    const path = join(tmp.dir, 'steady.db');
    const db = openDb(path);
    db.exec('CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)');
    const put = db.prepare('INSERT OR REPLACE INTO t (k, v) VALUES (?, ?)');
    const { log, seen } = warnings();
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    // Past the 1,000 frames from which the worker asks for rounds to be finished; once it has
    // asked, it is running (a worker thread takes a moment to start).
    for (let i = 0; i < 600; i++) put.run(i, Buffer.alloc(4000));
    await waitUntil(() => checkpointer.asked >= 1, 'the worker running');
    const first = walSequence(path);
    // Then commits back to back, the event loop turning between them, ~80 MB of frames in all (twice
    // the safety net): the worker's passes alone never catch up with them, so without the rounds'
    // second half the WAL grows to the safety net (41 MB measured), with it to ~10–13 MB.
    const commits = 20_000;
    for (let i = 0; i < commits; i++) {
      put.run(i % 1000, Buffer.alloc(4000, i % 251));
      await new Promise((resolve) => setImmediate(resolve));
    }
    // The file never grew as far as the safety net, whose auto-checkpoint runs inside a commit.
    expect(statSync(`${path}-wal`).size).toBeLessThan(SAFETY_NET_BYTES);
    expect(walSequence(path) - first).toBeGreaterThanOrEqual(3);
    expect(checkpointer.finished).toBeGreaterThanOrEqual(3);
    await checkpointer.stop();
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(1000);
    db.close();
    expect(seen).toEqual([]);
  });

  it('finishes a round only between transactions: an open one (as an awaiting store call holds) makes it wait', async () => {
    const path = join(tmp.dir, 'open-tx.db');
    const db = openDb(path);
    const { log, seen } = warnings();
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    write(db); // past the 1,000 frames from which the worker asks for its rounds to be finished
    // Synchronously after the writes, so no round could finish before the transaction opened.
    db.exec('BEGIN');
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(10));
    // Three requests: each one waited for the transaction until it gave up, and nothing ran in it.
    await waitUntil(() => checkpointer.asked >= 3, 'three requests to finish a round');
    expect(checkpointer.finished).toBe(0);
    expect(seen).toEqual([]);
    db.exec('COMMIT');
    await waitUntil(() => checkpointer.finished >= 1, 'a finished round after the commit');
    await checkpointer.stop();
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(2001);
    db.close();
    expect(seen).toEqual([]);
  });

  it('a reader on an old snapshot holds the WAL back; once it ends, rounds finish again by themselves', async () => {
    const path = join(tmp.dir, 'reader.db');
    const db = openDb(path);
    db.exec('CREATE TABLE t (v BLOB)');
    const { log, seen } = warnings();
    const checkpointer = startCheckpointer(db, { intervalMs: 20, log });
    // The fault: a second connection keeps a read transaction open, as a long report would.
    const reader = openDb(path);
    reader.exec('BEGIN');
    expect((reader.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(0);
    write(db);
    await waitUntil(() => checkpointer.asked >= 3, 'three requests to finish a round');
    // The frames after the reader's snapshot could not be copied, so no round finished.
    expect(checkpointer.finished).toBe(0);
    const held = walSequence(path);
    reader.exec('COMMIT');
    await waitUntil(() => checkpointer.finished >= 1, 'a finished round once the reader is gone');
    db.prepare('INSERT INTO t (v) VALUES (?)').run(Buffer.alloc(10));
    // That write found every frame copied and started the WAL over.
    expect(walSequence(path)).toBe(held + 1);
    await checkpointer.stop();
    reader.close();
    expect((db.prepare('SELECT count(*) AS n FROM t').get() as { n: number }).n).toBe(2001);
    db.close();
    // A reader holding frames back is not a failure: nothing was logged.
    expect(seen).toEqual([]);
  });
});
