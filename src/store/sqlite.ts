/**
 * @module store/sqlite
 * Every SQLite store of one database file, opened and migrated together: the `Stores` of
 * core/ports on the embedded default. They share the one connection, so a transaction of one
 * store is a transaction of all of them.
 */

import { systemClock, type Clock } from '../core/clock';
import type { Stores, StoreTx } from '../core/ports';
import { SqliteConnectionStore } from './connection-store';
import { SqliteHeldDeviceStore } from './held-devices';
import { isMigrated, migrate, openDb, type Db, type MigrationReport, type OpenOptions } from './db';
import { SqliteApiKeyStore } from './key-store';
import { SqlitePresenceStore } from './presence-store';
import { SqlitePrivacyStore } from './privacy-store';
import { inSqliteTx } from './tx';
import { scrubbing, SqliteWebhookStore } from './webhook-store';

export interface SqliteStores extends Stores {
  /** The connection, for what only the SQLite composition does (checkpoints, lock waits). */
  readonly db: Db;
  /** What opening applied. */
  readonly migration: MigrationReport;
}

/**
 * Opens (creating it if need be) and migrates the database at `path`. A database that cannot be
 * opened or migrated throws, and is closed again first.
 */
export function openSqliteStores(
  path: string,
  options: Pick<OpenOptions, 'synchronous'> & { readonly clock?: Clock } = {},
): SqliteStores {
  const db = openDb(path, { synchronous: options.synchronous });
  let migration: MigrationReport;
  try {
    migration = migrate(db, undefined, options.clock ?? systemClock);
  } catch (error) {
    db.close();
    throw error;
  }
  return sqliteStoresOn(db, migration);
}

/** Every store on `db`, an open and migrated connection (`migration` says what was applied). */
export function sqliteStoresOn(db: Db, migration: MigrationReport): SqliteStores {
  return {
    db,
    migration,
    presence: new SqlitePresenceStore(db),
    keys: new SqliteApiKeyStore(db),
    connections: new SqliteConnectionStore(db),
    webhooks: new SqliteWebhookStore(db),
    privacy: new SqlitePrivacyStore(db),
    heldDevices: new SqliteHeldDeviceStore(db),
    transaction: <T>(fn: (tx: StoreTx) => T): T => inSqliteTx(db, fn),
    scrubbing: <T>(fn: () => T) => scrubbing(db, fn),
    ready: () => db.open && isMigrated(db),
    close: () => {
      if (db.open) db.close();
    },
  };
}
