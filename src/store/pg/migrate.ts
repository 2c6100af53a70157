/**
 * @module store/pg/migrate
 * Applies the numbered PostgreSQL migrations of `migrations/pg/`, under the same checksum rule
 * as the SQLite ones (`planMigrations` in store/db.ts: an applied migration that was edited or
 * removed is refused). Each migration runs in its own transaction (PostgreSQL DDL is
 * transactional), and the whole run holds an advisory lock, so nodes starting together apply
 * each migration once.
 */

import { resolve } from 'node:path';

import type pg from 'pg';

import { systemClock, type Clock } from '../../core/clock';
import {
  planMigrations,
  readMigrations,
  type AppliedMigration,
  type Migration,
  type MigrationReport,
} from '../db';
import { describeTarget, PgUnavailableError } from './pool';

export const PG_MIGRATIONS_DIR = resolve(__dirname, '../../../migrations/pg');

/** The advisory lock key of the migration run (any constant; 'pmig' in ASCII). */
const MIGRATION_LOCK = 0x706d6967;

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version TEXT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL
)`;

export function readPgMigrations(): Migration[] {
  return readMigrations(PG_MIGRATIONS_DIR);
}

/** Connects once, failing with `PgUnavailableError` (where, and why) when nothing answers. */
export async function checkReachable(pool: pg.Pool, connectionString: string): Promise<void> {
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new PgUnavailableError(
      `PostgreSQL at ${describeTarget(connectionString)} did not answer: ${reason}`,
    );
  }
}

/** Applies every pending migration after checking the applied ones. */
export async function migrate(
  pool: pg.Pool,
  migrations: readonly Migration[] = readPgMigrations(),
  clock: Clock = systemClock,
): Promise<MigrationReport> {
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      await client.query(CREATE_TABLE);
      const recorded = (
        await client.query<AppliedMigration>('SELECT version, name, checksum FROM schema_migrations')
      ).rows;
      const { pending, upToDate } = planMigrations(recorded, migrations);
      const applied: string[] = [];
      for (const m of pending) {
        await client.query('BEGIN');
        try {
          await client.query(m.sql);
          await client.query(
            'INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)',
            [m.version, m.name, m.checksum, clock.now()],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
        applied.push(`${m.version}_${m.name}`);
      }
      return { applied, upToDate };
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
}

/**
 * True when every migration on disk is applied; throws what the driver threw when the database
 * does not answer, so `/readyz` can name why (store/faults.ts).
 */
export async function schemaCurrent(
  pool: pg.Pool,
  migrations: readonly Migration[] = readPgMigrations(),
): Promise<boolean> {
  const { rows } = await pool.query<{ version: string }>('SELECT version FROM schema_migrations');
  const have = new Set(rows.map((r) => r.version));
  return migrations.every((m) => have.has(m.version));
}
