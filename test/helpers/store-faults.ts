/**
 * Store faults injected for real, through SQLite itself, so the engine meets the errors a
 * failing disk gives it (tests run as root, where chmod does not stop a write):
 * - a write lock held by a second connection (`BEGIN IMMEDIATE`), as another process would;
 * - a full disk: `max_page_count` pinned at the file's current size, so the next page SQLite
 *   needs fails with SQLITE_FULL exactly as ENOSPC does;
 * - a read-only database: `query_only`, which fails every write with SQLITE_READONLY.
 */

import Database from 'better-sqlite3';

import type { Db } from '../../src/store/db';

/** A second connection holding the write lock until `release()`. */
export function holdWriteLock(path: string): { release(): void } {
  const other = new Database(path);
  other.pragma('busy_timeout = 0');
  other.exec('BEGIN IMMEDIATE');
  let held = true;
  return {
    release() {
      if (!held) return;
      held = false;
      other.exec('COMMIT');
      other.close();
    },
  };
}

/** Makes the next page the database needs fail with SQLITE_FULL; the result undoes it. */
export function fillDisk(db: Db): () => void {
  // Free pages would still take writes, as they would on a real full disk; use them up first.
  db.exec('VACUUM');
  const pages = db.pragma('page_count', { simple: true }) as number;
  db.pragma(`max_page_count = ${pages}`);
  return () => {
    db.pragma('max_page_count = 4294967294');
  };
}

/** Makes every write fail with SQLITE_READONLY; the result undoes it. */
export function makeReadOnly(db: Db): () => void {
  db.pragma('query_only = ON');
  return () => {
    db.pragma('query_only = OFF');
  };
}

/** Settles to 'pending' when `p` has not settled by the time queued callbacks have run. */
export async function peek<T>(p: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
  let state: 'pending' | 'resolved' | 'rejected' = 'pending';
  p.then(
    () => (state = 'resolved'),
    () => (state = 'rejected'),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return state;
}
