/**
 * @module store/db
 * Opens the SQLite database (better-sqlite3, WAL) and applies the numbered plain-SQL migrations of
 * `migrations/`. Each applied migration is recorded with a SHA-256 of its text, and a database
 * whose applied migration was edited or removed is refused rather than silently diverging.
 */

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

import Database from 'better-sqlite3';

import { systemClock, type Clock } from '../core/clock';

export type Db = Database.Database;

export const MIGRATIONS_DIR = resolve(__dirname, '../../migrations');

export interface OpenOptions {
  /**
   * 'normal' (default) survives a crash of the process, kill -9 included, because committed pages
   * are in the WAL; 'full' also survives power loss, at the cost of an fsync per transaction.
   */
  readonly synchronous?: 'normal' | 'full';
  /**
   * How long a statement waits for a lock another connection holds. better-sqlite3 waits
   * synchronously, so this is how long the event loop can stand still: kept short, it only
   * absorbs a brief overlap with another writer (a CLI command, a checkpoint); the engine retries
   * a commit that still meets the lock on timers instead (see aggregator/engine.ts).
   */
  readonly busyTimeoutMs?: number;
}

/** The default lock wait: long enough for another process's millisecond commit, no longer. */
export const BUSY_TIMEOUT_MS = 20;

export function openDb(path: string, options: OpenOptions = {}): Db {
  if (path !== ':memory:') mkdirSync(dirname(resolve(path)), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`synchronous = ${options.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
  db.pragma('foreign_keys = ON');
  db.pragma(`busy_timeout = ${Math.max(0, Math.floor(options.busyTimeoutMs ?? BUSY_TIMEOUT_MS))}`);
  return db;
}

export interface Migration {
  readonly version: string;
  readonly name: string;
  readonly sql: string;
  readonly checksum: string;
}

const MIGRATION_FILE = /^(\d+)_([a-z0-9_]+)\.sql$/;

/**
 * Checksums that migrations had before an edit to their comments only, so that a database which
 * applied the earlier text is still accepted. Any edit to the SQL itself needs a new migration.
 */
const EARLIER_CHECKSUMS: Readonly<Record<string, readonly string[]>> = {
  // Its header comment cited a document that is not part of the repository.
  '0003': ['4dbce09eee02e2c61278d79d3eb23cebf7175d8f967e8208a1b54e01ad31be49'],
};

export function readMigrations(dir: string = MIGRATIONS_DIR): Migration[] {
  return readdirSync(dir)
    .filter((f) => MIGRATION_FILE.test(f))
    .sort()
    .map((file) => {
      const [, version = '', name = ''] = MIGRATION_FILE.exec(file) ?? [];
      const sql = readFileSync(join(dir, file), 'utf8');
      return { version, name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface MigrationReport {
  readonly applied: readonly string[];
  readonly upToDate: readonly string[];
}

/** A migration as a database records it. */
export type AppliedMigration = Pick<Migration, 'version' | 'name' | 'checksum'>;

/**
 * The checksum rule, for every migration runner (SQLite here, PostgreSQL in store/pg/): checks
 * what the database recorded against the files and returns the migrations still to apply, in
 * order. Throws `MigrationError` when an applied migration's file is missing or was edited
 * (`earlier` lists the accepted checksums of comment-only edits).
 */
export function planMigrations(
  recorded: readonly AppliedMigration[],
  migrations: readonly Migration[],
  earlier: Readonly<Record<string, readonly string[]>> = EARLIER_CHECKSUMS,
): { pending: Migration[]; upToDate: string[] } {
  const byVersion = new Map(recorded.map((m) => [m.version, m]));
  const known = new Set(migrations.map((m) => m.version));
  const latest = migrations.at(-1)?.version ?? '';
  for (const m of recorded) {
    if (!known.has(m.version)) {
      // Past the last file: a newer release migrated this database, and this one must not run
      // on a schema it does not know.
      const newer =
        m.version > latest
          ? `; the database is at a newer schema than this version knows (up to ${latest || 'none'}): run the newer version`
          : '';
      throw new MigrationError(
        `migration ${m.version}_${m.name} is applied to this database but its file is missing${newer}`,
      );
    }
  }
  const pending: Migration[] = [];
  const upToDate: string[] = [];
  for (const m of migrations) {
    const label = `${m.version}_${m.name}`;
    const previous = byVersion.get(m.version);
    if (previous === undefined) {
      pending.push(m);
      continue;
    }
    if (previous.checksum !== m.checksum && !earlier[m.version]?.includes(previous.checksum)) {
      throw new MigrationError(
        `migration ${label} was edited after it was applied (checksum differs); add a new migration instead`,
      );
    }
    upToDate.push(label);
  }
  return { pending, upToDate };
}

/** Applies every pending migration, each in its own transaction, after checking the applied ones. */
export function migrate(
  db: Db,
  migrations: readonly Migration[] = readMigrations(),
  clock: Clock = systemClock,
): MigrationReport {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version TEXT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at INTEGER NOT NULL
  ) WITHOUT ROWID`);
  const recorded = db
    .prepare('SELECT version, name, checksum FROM schema_migrations')
    .all() as AppliedMigration[];
  const { pending, upToDate } = planMigrations(recorded, migrations);
  const applied: string[] = [];
  const record = db.prepare(
    'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)',
  );
  for (const m of pending) {
    db.transaction(() => {
      db.exec(m.sql);
      record.run(m.version, m.name, m.checksum, clock.now());
    })();
    applied.push(`${m.version}_${m.name}`);
  }
  return { applied, upToDate };
}

/** True when every migration on disk is applied: what `/readyz` asks. */
export function isMigrated(db: Db, migrations: readonly Migration[] = readMigrations()): boolean {
  try {
    const rows = db.prepare('SELECT version FROM schema_migrations').all() as { version: string }[];
    const have = new Set(rows.map((r) => r.version));
    return migrations.every((m) => have.has(m.version));
  } catch {
    return false;
  }
}
