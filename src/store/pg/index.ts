/**
 * @module store/pg
 * Every PostgreSQL store of one database, on one connection pool: the `AsyncStores` of
 * core/ports. `openPgStores` connects (failing fast, with where and why, when nothing answers),
 * applies the migrations of `migrations/pg/` and hands out the stores; a transaction is one
 * pooled client between BEGIN and COMMIT, and the `PgTx` it hands to `fn` carries that client.
 *
 * Not wired into `serve` or the CLI yet: the engine and the services still call the synchronous
 * ports (see ARCHITECTURE.md).
 */

import type pg from 'pg';

import { systemClock, type Clock } from '../../core/clock';
import type { AsyncStores, StoreTx } from '../../core/ports';
import type { MigrationReport } from '../db';
import { PgConnectionStore } from './connection-store';
import { PgHeldDeviceStore } from './held-devices';
import { PgApiKeyStore } from './key-store';
import { checkReachable, migrate, schemaCurrent } from './migrate';
import { inPgTx, openPool, type PoolOptions } from './pool';
import { PgPresenceStore } from './presence-store';
import { PgPrivacyStore } from './privacy-store';
import { PgWebhookStore } from './webhook-store';

export { StaleVersionError } from './presence-store';
export { PgUnavailableError, type PgTx } from './pool';
export type { ClaimedRow } from '../../core/ports';

export interface PgStores extends AsyncStores {
  readonly presence: PgPresenceStore;
  readonly webhooks: PgWebhookStore;
  /** The pool, for what only the PostgreSQL composition does. */
  readonly pool: pg.Pool;
  /** What opening applied. */
  readonly migration: MigrationReport;
  /** `ready()`, except that a database that does not answer throws the driver's error (its cause). */
  probe(): Promise<boolean>;
}

/**
 * Connects to the database at `options.connectionString` and migrates it. A database that cannot
 * be reached or migrated throws (`PgUnavailableError` when nothing answers), its pool closed.
 */
export async function openPgStores(options: PoolOptions & { readonly clock?: Clock }): Promise<PgStores> {
  const pool = openPool(options);
  let migration: MigrationReport;
  try {
    await checkReachable(pool, options.connectionString);
    migration = await migrate(pool, undefined, options.clock ?? systemClock);
  } catch (error) {
    await pool.end();
    throw error;
  }
  let ended: Promise<void> | null = null;
  const close = (): Promise<void> => (ended ??= pool.end());
  const webhooks = new PgWebhookStore(pool);
  return {
    pool,
    migration,
    presence: new PgPresenceStore(pool, close),
    keys: new PgApiKeyStore(pool),
    connections: new PgConnectionStore(pool),
    webhooks,
    privacy: new PgPrivacyStore(pool),
    heldDevices: new PgHeldDeviceStore(pool),
    transaction: <T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> => inPgTx(pool, fn),
    scrubbing: (fn) => webhooks.scrubbing(fn),
    ready: async () => ended === null && (await schemaCurrent(pool).catch(() => false)),
    probe: async () => ended === null && (await schemaCurrent(pool)),
    close,
  };
}
