/**
 * @module store/async-sqlite
 * The SQLite stores behind the asynchronous face of the ports (`AsyncStores`, core/ports/async.ts),
 * so the services await one kind of store whichever backend the composition root opened.
 *
 * Each call runs the SQLite store's own (synchronous) method and hands its result back as a
 * promise. What needs care is a transaction whose body awaits: better-sqlite3's
 * `db.transaction` cannot span an `await`, so the adapter opens it itself (BEGIN ... COMMIT on
 * the one connection) and runs the store's transactional code inside, where better-sqlite3 turns
 * it into a savepoint. While that body is suspended, other work runs on the same connection, so:
 *
 * - transactions run one at a time, in the order they were asked for;
 * - a call made while one is open and handed its `tx` runs at once, inside it;
 * - any other call waits until it commits or rolls back, as it would on PostgreSQL (where it runs
 *   on another connection and does not see the open transaction's writes): it never joins a
 *   transaction that might roll back after the call was acknowledged. A transaction body must
 *   therefore pass its `tx` to every call it awaits (the transaction rule, ARCHITECTURE.md).
 *
 * With no transaction open, a call costs one synchronous statement and a resolved promise.
 */

import type { AsyncRefreshSlots, AsyncStores, RefreshedTimes, StoreTx, WriteOp } from '../core/ports';
import type { SqliteStores } from './sqlite';
import type { SqliteTx } from './tx';

type Stage = ((tx: StoreTx) => void | Promise<void>) | undefined;
type Body<T> = (tx: StoreTx) => T | Promise<T>;

/** The SQLite stores as `AsyncStores` (see the module comment); `sync` stays usable alongside. */
export interface AsyncSqliteStores extends AsyncStores {
  readonly sync: SqliteStores;
}

export function asyncSqlite(s: SqliteStores): AsyncSqliteStores {
  const { db } = s;
  /** What the open transaction runs once it committed (`StoreTx.afterCommit`). */
  let committed: (() => void)[] = [];
  const handle: SqliteTx = {
    store: 'sqlite',
    db,
    afterCommit: (fn) => {
      if (current === null) throw new Error('afterCommit outside a transaction');
      committed.push(fn);
    },
  };
  /** Settles when the last transaction asked for is over; each new one waits for it. */
  let tail: Promise<void> = Promise.resolve();
  /** Transactions open or waiting their turn. */
  let pending = 0;
  /** Settles when the open transaction is over; null while none is. */
  let current: Promise<void> | null = null;

  const inTx = async <T>(fn: Body<T>, begin = 'BEGIN'): Promise<T> => {
    const previous = tail;
    let release!: () => void;
    const done = new Promise<void>((resolve) => (release = resolve));
    tail = done;
    if (pending++ > 0) await previous;
    current = done;
    try {
      db.exec(begin);
      try {
        const result = await fn(handle);
        db.exec('COMMIT');
        for (const hook of committed) hook();
        return result;
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      }
    } finally {
      committed = [];
      current = null;
      pending--;
      release();
    }
  };

  /** Runs `call` now, or once the open transaction is over unless `args` hand it that transaction. */
  const outside = async <T>(args: readonly unknown[], call: () => T): Promise<T> => {
    while (current !== null && !args.includes(handle)) await current;
    return call();
  };

  /** Every method of `port` through `outside`, `overrides` first. */
  const promised = <P extends object>(port: P, overrides: Record<string, unknown> = {}): never =>
    new Proxy(port, {
      get(target, key) {
        if (typeof key === 'string' && key in overrides) return overrides[key];
        const value: unknown = Reflect.get(target, key);
        if (typeof value !== 'function') return value;
        const method = value as (...a: unknown[]) => unknown;
        return (...args: unknown[]) => outside(args, () => method.apply(target, args));
      },
    }) as never;

  // SQLite's scrubbing runs a synchronous fn: around an awaited one, the adapter keeps
  // secure_delete on itself, then lets the store's scrubbing truncate the WAL.
  const scrubbing = async <T>(fn: () => T | Promise<T>) => {
    const before = db.pragma('secure_delete', { simple: true }) as number;
    db.pragma('secure_delete = ON');
    let result: T;
    try {
      result = await fn();
    } finally {
      db.pragma(`secure_delete = ${before}`);
    }
    const { walTruncated } = s.scrubbing(() => undefined);
    return { result, walTruncated };
  };

  // The packed refresh times: their writes are store calls like the others (never inside an
  // open transaction they were not handed); the slot hash stays a plain function.
  const slots = s.presence.refreshSlots;
  const refreshSlots: AsyncRefreshSlots | undefined = slots && {
    count: slots.count,
    slotOf: (userId) => slots.slotOf(userId),
    write: (m: ReadonlyMap<number, readonly RefreshedTimes[]>) => outside([], () => slots.write(m)),
    load: (visit: (entry: RefreshedTimes) => void) => outside([], () => slots.load(visit)),
  };

  return {
    sync: s,
    presence: promised(s.presence, {
      refreshSlots,
      write: (ops: readonly WriteOp[], stage: Stage) =>
        stage === undefined
          ? outside([], () => s.presence.write(ops))
          : inTx(async (tx) => {
              s.presence.write(ops);
              await stage(tx);
            }),
      // Read whole while no transaction runs (a generator would read later, maybe inside one).
      loadUsers: (ids: readonly string[]) => outside([], () => [...s.presence.loadUsers(ids)]),
      deleteUser: (userId: string, stage: Stage) =>
        inTx(async (tx) => {
          const gone = s.presence.deleteUser(userId);
          await stage?.(tx);
          return gone;
        }),
    }),
    keys: promised(s.keys),
    connections: promised(s.connections, {
      transaction: <T>(fn: Body<T>) => inTx(fn, 'BEGIN IMMEDIATE'),
    }),
    webhooks: promised(s.webhooks, { transaction: inTx, scrubbing }),
    privacy: promised(s.privacy),
    heldDevices: promised(s.heldDevices),
    transaction: inTx,
    scrubbing,
    ready: () => Promise.resolve(s.ready()),
    close: () => Promise.resolve(s.close()),
  };
}
