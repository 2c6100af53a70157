/**
 * @module store/pg/pool
 * The PostgreSQL connection pool (node-postgres) and its flavour of `StoreTx`: a transaction is
 * one pooled client between BEGIN and COMMIT, and the `PgTx` handed to writes carries that
 * client, so every statement of the transaction runs on it. Outside a transaction a statement
 * runs on any pooled client.
 */

import pg from 'pg';

import type { StoreTx } from '../../core/changes';

/** Something a statement can run on: the pool, or a transaction's client. */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;

export interface PgTx extends StoreTx {
  readonly store: 'pg';
  readonly client: pg.PoolClient;
  /** The pool the client came from, so another pool's transaction is refused. */
  readonly pool: pg.Pool;
}

/**
 * How long connecting, or waiting for a pooled client, may take before it fails: a database that
 * does not answer makes writes answer 503 within this, not hang (a local or same-zone PostgreSQL
 * connects in milliseconds).
 */
export const CONNECT_TIMEOUT_MS = 1_500;

/**
 * How many callers may wait for a pooled client at once (per client the pool may open). More is
 * refused at once (`database_busy`, store/faults.ts) rather than queued: the wait itself is
 * bounded by the connect timeout, this bounds the queue's length.
 */
export const WAITING_PER_CLIENT = 100;

/**
 * BIGINT (int8) and NUMERIC results as numbers: every BIGINT here is a time in milliseconds, an
 * id or a count, far below 2^53. The parsers are the pool's own, not node-postgres's globals.
 */
const INT8 = 20;
const NUMERIC = 1700;
const toNumber = (v: string): number => Number(v);
const types: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: 'text' | 'binary'): unknown =>
    oid === INT8 || oid === NUMERIC ? toNumber : pg.types.getTypeParser(oid, format ?? 'text'),
};

export interface PoolOptions {
  readonly connectionString: string;
  /** Clients kept open at most (default 10). */
  readonly max?: number;
  readonly connectTimeoutMs?: number;
  /** Callers that may wait for a client (default `WAITING_PER_CLIENT` × max). */
  readonly maxWaiting?: number;
}

/** The error for a PostgreSQL that cannot be reached: says where, never the password. */
export class PgUnavailableError extends Error {
  override name = 'PgUnavailableError';
}

/** Where a connection string points, without its credentials. */
export function describeTarget(connectionString: string): string {
  try {
    const u = new URL(connectionString);
    return `${u.hostname}:${u.port || '5432'}${u.pathname}`;
  } catch {
    return 'the configured address';
  }
}

/** The message of a refusal for a full waiting queue (recognised by store/faults.ts). */
export const QUEUE_FULL_MESSAGE = 'too many statements waiting for a PostgreSQL connection';

export function openPool(options: PoolOptions): pg.Pool {
  const max = options.max ?? 10;
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max,
    connectionTimeoutMillis: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    // TCP keepalive, so a server that vanished without closing the connection is noticed.
    keepAlive: true,
    types,
  });
  // An idle client whose server went away emits 'error' on the pool; without a listener that
  // would crash the process. The next query fails (or reconnects) and reports it there.
  pool.on('error', () => {});
  // A checked-out client (a transaction's, the migration runner's) has no listener of the pool's:
  // its connection failing (reset, terminated) would emit an unhandled 'error' and end the
  // process. Its statement fails anyway, the transaction rolls back or drops the client, and the
  // caller gets the error (a store fault, store/faults.ts).
  pool.on('connect', (client) => client.on('error', () => {}));
  boundQueue(pool, options.maxWaiting ?? WAITING_PER_CLIENT * max);
  return pool;
}

/**
 * Refuses a checkout while `maxWaiting` callers already wait for a client. pg-pool's queue has no
 * length limit of its own; `pool.query` checks out through `connect`, so both are covered.
 */
function boundQueue(pool: pg.Pool, maxWaiting: number): void {
  const connect = pool.connect.bind(pool) as (cb?: (...args: unknown[]) => void) => unknown;
  const bounded = (cb?: (...args: unknown[]) => void): unknown => {
    if (pool.waitingCount < maxWaiting) return connect(cb);
    const error = new Error(`${QUEUE_FULL_MESSAGE} (${maxWaiting} already wait)`);
    if (cb === undefined) return Promise.reject(error);
    cb(error, undefined, () => undefined);
    return undefined;
  };
  pool.connect = bounded as typeof pool.connect;
}

/** The client of a transaction handed in; refuses another store's or another pool's. */
export function clientOf(tx: StoreTx, pool: pg.Pool): pg.PoolClient {
  const t = tx as Partial<PgTx>;
  if (tx.store !== 'pg' || t.pool !== pool || t.client === undefined) {
    throw new Error('a write was handed a transaction of another store or connection');
  }
  return t.client;
}

/** Where a statement with an optional `tx` runs. */
export function on(pool: pg.Pool, tx: StoreTx | undefined): Queryable {
  return tx === undefined ? pool : clientOf(tx, pool);
}

/**
 * Runs `fn` in one transaction on a pooled client: BEGIN, fn (awaited), COMMIT; ROLLBACK when fn
 * or the commit throws, and the error is rethrown. `lock` (a number) first takes that
 * transaction-scoped advisory lock, serialising the transactions that take it across every
 * node. Transactions do not nest: inside one, pass its `tx` on instead of opening another.
 */
export async function inPgTx<T>(pool: pg.Pool, fn: (tx: PgTx) => T | Promise<T>, lock?: number): Promise<T> {
  const client = await pool.connect();
  let broken = false;
  try {
    await client.query('BEGIN');
    if (lock !== undefined) await client.query('SELECT pg_advisory_xact_lock($1)', [lock]);
    const committed: (() => void)[] = [];
    const result = await fn({ store: 'pg', client, pool, afterCommit: (hook) => committed.push(hook) });
    await client.query('COMMIT');
    for (const hook of committed) hook();
    return result;
  } catch (error) {
    try {
      await client.query('ROLLBACK');
    } catch {
      // The connection itself failed: drop the client rather than return it to the pool.
      broken = true;
    }
    throw error;
  } finally {
    client.release(broken);
  }
}
