/**
 * @module store/tx
 * The SQLite flavour of `StoreTx` (core/changes.ts): proof, handed explicitly, that the caller
 * runs inside a transaction on this connection. better-sqlite3 transactions are synchronous, so
 * the transaction is over (committed or rolled back) before any other callback can run.
 */

import type { StoreTx } from '../core/changes';
import type { Db } from './db';

export interface SqliteTx extends StoreTx {
  readonly store: 'sqlite';
  readonly db: Db;
}

/** One per connection: handing it out costs no allocation per commit. */
const handles = new WeakMap<Db, SqliteTx>();

/** The transaction handle of `db`; only code running inside `db.transaction` may hand it on. */
export function sqliteTx(db: Db): SqliteTx {
  let tx = handles.get(db);
  if (tx === undefined) {
    tx = { store: 'sqlite', db };
    handles.set(db, tx);
  }
  return tx;
}

/** Runs `fn` in one transaction on `db`, handing it the transaction (nested: a savepoint). */
export function inSqliteTx<T>(db: Db, fn: (tx: SqliteTx) => T): T {
  const tx = sqliteTx(db);
  return db.transaction(() => fn(tx))();
}

/** The connection of a transaction another module passed in; refuses another store's. */
export function dbOf(tx: StoreTx, expected: Db): Db {
  const db = (tx as Partial<SqliteTx>).db;
  if (tx.store !== 'sqlite' || db !== expected) {
    throw new Error('a write was handed a transaction of another store or connection');
  }
  return db;
}
