import type { Async } from '../../src/core/ports';
import { asyncSqlite, type AsyncSqliteStores } from '../../src/store/async-sqlite';
import { SqliteConnectionStore } from '../../src/store/connection-store';
import type { Db } from '../../src/store/db';
import { SqliteHeldDeviceStore } from '../../src/store/held-devices';
import { SqliteApiKeyStore } from '../../src/store/key-store';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { SqlitePrivacyStore } from '../../src/store/privacy-store';
import { inSqliteTx } from '../../src/store/tx';
import { scrubbing, SqliteWebhookStore } from '../../src/store/webhook-store';

/**
 * One synchronous store as its asynchronous port, each result a promise: for tests of a service
 * over a single SQLite store, where no transaction spans an await (the whole-database adapter with
 * transactions is store/async-sqlite.ts).
 */
export function promised<P extends object>(port: P): Async<P> {
  return new Proxy(port, {
    get(target, key) {
      const value: unknown = Reflect.get(target, key);
      if (typeof value !== 'function') return value;
      const method = value as (...a: unknown[]) => unknown;
      return (...args: unknown[]) => Promise.resolve().then(() => method.apply(target, args));
    },
  }) as unknown as Async<P>;
}

/**
 * The SQLite stores of an open, migrated `db` behind the service's own async adapter (transactions
 * whose bodies await, as the services run them): for tests that opened the database themselves.
 */
export function asyncStoresOn(db: Db): AsyncSqliteStores {
  return asyncSqlite({
    db,
    migration: { applied: [], upToDate: [] },
    presence: new SqlitePresenceStore(db),
    keys: new SqliteApiKeyStore(db),
    connections: new SqliteConnectionStore(db),
    webhooks: new SqliteWebhookStore(db),
    privacy: new SqlitePrivacyStore(db),
    heldDevices: new SqliteHeldDeviceStore(db),
    transaction: (fn) => inSqliteTx(db, fn),
    scrubbing: (fn) => scrubbing(db, fn),
    ready: () => db.open,
    close: () => {
      if (db.open) db.close();
    },
  });
}
