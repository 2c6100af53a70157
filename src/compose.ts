/**
 * @module compose
 * The parts of the composition root that `presence serve` (main.ts `createService`) and every
 * CLI command build alike: the stores (PostgreSQL at PRESENCE_DATABASE_URL, else the SQLite file
 * of PRESENCE_DB), the engine over them, API keys and the OAuth connection layer. One function per part, so a command can never configure a part differently
 * from the server (a second root that drifts).
 */

import { resolve } from 'node:path';

import type pg from 'pg';

import { CONNECTORS } from '../connectors';
import { PresenceEngine } from './aggregator/engine';
import type { Env } from './config/env';
import { systemClock, type Clock } from './core/clock';
import { silentLog, type Log } from './core/log';
import type { AsyncPresenceStore, AsyncStores, Locks } from './core/ports';
import { Ladder, REAL_PLATFORMS } from './core/presence';
import { ApiKeys } from './keys/api-keys';
import { AppGrants } from './oauth/app-token';
import { ConnectionService, type ConnectionServiceDeps } from './oauth/service';
import { TokenVault } from './oauth/vault';
import { asyncSqlite } from './store/async-sqlite';
import type { MigrationReport } from './store/db';
import { classifyStoreError, isStoreFault, type StoreFault } from './store/faults';
import { openPgStores } from './store/pg';
import { describeTarget } from './store/pg/pool';
import { openSqliteStores, type SqliteStores } from './store/sqlite';

/** PRESENCE_DB's stores, opened and migrated (`clock` stamps the migrations it applies). */
export function openStores(env: Env, clock: Clock = systemClock): SqliteStores {
  return openSqliteStores(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC, clock });
}

/** The stores of this configuration, opened and migrated, whichever the backend. */
export interface OpenedStores {
  /** Every store, behind the asynchronous face of the ports. */
  readonly stores: AsyncStores;
  /**
   * The SQLite stores behind `stores`, for what only the embedded store has (checkpoints, the
   * packed refresh slots, the `db` handle); null on PostgreSQL.
   */
  readonly sqlite: SqliteStores | null;
  /** The PostgreSQL pool behind `stores`, for what only several nodes do; null on SQLite. */
  readonly pool: pg.Pool | null;
  /** What opening applied. */
  readonly migration: MigrationReport;
  /** Where they are, for messages: the SQLite file, or PostgreSQL's host:port/database (no credentials). */
  readonly where: string;
  /**
   * For `/readyz`: true when the stores answer with their schema current, false when they are
   * closed or not migrated, or the fault that keeps them from answering (PostgreSQL down).
   */
  readiness(): Promise<boolean | StoreFault>;
}

/** Where this configuration's stores are (see `OpenedStores.where`), without opening them. */
export function storesLocation(env: Env): string {
  return env.PRESENCE_DATABASE_URL === undefined
    ? resolve(env.PRESENCE_DB)
    : `PostgreSQL ${describeTarget(env.PRESENCE_DATABASE_URL)}`;
}

/**
 * Opens and migrates PostgreSQL when PRESENCE_DATABASE_URL is set, else the SQLite file of
 * PRESENCE_DB, under the same checksum rule (a database at a newer schema, or with an applied
 * migration edited, is refused with `MigrationError`). A PostgreSQL that does not answer fails
 * within the connect timeout with `PgUnavailableError`.
 */
export async function openBackend(env: Env, clock: Clock = systemClock): Promise<OpenedStores> {
  const where = storesLocation(env);
  if (env.PRESENCE_DATABASE_URL !== undefined) {
    const stores = await openPgStores({ connectionString: env.PRESENCE_DATABASE_URL, clock });
    /** The fault of the last probe, so that `since` says when it began. */
    let down: StoreFault | null = null;
    const readiness = async (): Promise<boolean | StoreFault> => {
      try {
        const ok = await stores.probe();
        down = null;
        return ok;
      } catch (error) {
        if (!isStoreFault(error)) return false;
        const fault = classifyStoreError(error, clock.now());
        if (down?.reason !== fault.reason) down = fault;
        return down;
      }
    };
    return { stores, sqlite: null, pool: stores.pool, migration: stores.migration, where, readiness };
  }
  const sqlite = openStores(env, clock);
  return {
    stores: asyncSqlite(sqlite),
    sqlite,
    pool: null,
    migration: sqlite.migration,
    where,
    readiness: () => Promise.resolve(sqlite.ready()),
  };
}

/**
 * The engine over the presence store (its asynchronous face: `asyncSqlite(stores).presence` for
 * SQLite), configured from the environment; not loaded yet.
 */
export function createEngine(
  env: Env,
  store: AsyncPresenceStore,
  clock: Clock,
  log: Log = silentLog,
): PresenceEngine {
  return new PresenceEngine({
    clock,
    store,
    ladder: Ladder.parse(env.PRESENCE_LADDER),
    log,
    viewCacheSize: env.PRESENCE_VIEW_CACHE,
    batchMemoBytes: Math.round(env.PRESENCE_BATCH_MEMO_MB * 1024 * 1024),
    identityOnlyPlatforms: REAL_PLATFORMS.filter((p) => CONNECTORS[p].capabilities.presence === 'none'),
  });
}

export function createKeys(stores: Pick<AsyncStores, 'keys'>, clock: Clock): ApiKeys {
  return new ApiKeys(stores.keys, clock);
}

/** The vault sealing tokens and webhook secrets at rest; null without PRESENCE_SECRET_KEY. */
export function secretVault(env: Env): TokenVault | null {
  return env.PRESENCE_SECRET_KEY === undefined
    ? null
    : TokenVault.fromSecrets(env.PRESENCE_SECRET_KEY, env.PRESENCE_SECRET_KEY_PREVIOUS);
}

/**
 * The app's own grants (Zoom Server-to-Server, Microsoft client credentials): one token source per
 * grant, for every part that needs the app's token (the Teams connector, `connectApp` and the
 * refresh sweep), so a grant has one cache and one request in flight. Needs no secret key.
 */
export function createAppGrants(env: Env, clock: Clock): AppGrants {
  return new AppGrants(env, { clock });
}

/**
 * The OAuth connection layer over the stores, linking accounts through `engine`; null without
 * PRESENCE_SECRET_KEY (it encrypts the tokens). `onEvent` receives its events inside the
 * transaction that records them.
 */
export function createConnections(
  env: Env,
  stores: Pick<AsyncStores, 'connections'>,
  engine: PresenceEngine,
  parts: {
    readonly clock: Clock;
    readonly log: Log;
    readonly onEvent: ConnectionServiceDeps['onEvent'];
    /** The process's app grants (`createAppGrants`); built here when the command needs no other user of them. */
    readonly appGrants?: AppGrants;
    /** The locks the nodes share (several nodes: a token refresh runs on one node at a time). */
    readonly locks?: Locks;
  },
): ConnectionService | null {
  if (env.PRESENCE_SECRET_KEY === undefined) return null;
  return new ConnectionService({
    store: stores.connections,
    env,
    clock: parts.clock,
    log: parts.log,
    linkAccount: (userId, account) => engine.linkAccount(userId, account),
    hasUser: (userId) => engine.hasUser(userId),
    onEvent: parts.onEvent,
    appGrants: parts.appGrants ?? createAppGrants(env, parts.clock),
    previousSecretKeys: env.PRESENCE_SECRET_KEY_PREVIOUS,
    ...(parts.locks === undefined ? {} : { locks: parts.locks }),
  });
}
