/**
 * @module core/ports
 * The storage ports: everything the service persists goes through one of these interfaces (one
 * file per store in this folder, `Stores` here for all of them), and `store/` implements them on
 * SQLite (`store/sqlite.ts` opens them all on one database). Services (the engine, API keys,
 * OAuth connections, webhooks, privacy) depend on the ports only, hold no SQL and no database
 * handle, so another implementation (PostgreSQL) replaces `store/` and the composition root, not
 * the callers.
 *
 * Written once, synchronously; callers await their asynchronous form. `Async<P>` in async.ts
 * derives it (every result a promise, a `stage` or transaction body that may await), the
 * PostgreSQL stores (`store/pg/`) implement it, and `store/asyncSqlite` puts the SQLite stores
 * behind it, so a caller awaits one kind of store whichever backend the composition root opened.
 * The engine awaits `AsyncPresenceStore` (its group commit keeps one commit in flight and awaits
 * the change sinks' stages inside it), API keys and privacy theirs; the webhook, OAuth and
 * held-device callers still use these synchronous ports on SQLite. What keeps both faces
 * equivalent is the transaction rule: a write that must commit with others receives the open
 * transaction as a `StoreTx` (never found by asking the connection whether one is open), and a
 * service that needs several writes to be one runs them in the port's `transaction(fn)`, passing
 * fn's `tx` on; on the SQLite adapter a call not handed the open `tx` waits for its end.
 */

import type { StoreTx } from '../changes';
import type { ConnectionStore } from './connection-store';
import type { HeldDeviceStore } from './held-device-store';
import type { ApiKeyStore } from './key-store';
import type { PresenceStore } from './presence-store';
import type { PrivacyStore } from './privacy-store';
import type { WebhookStore } from './webhook-store';

/** The open transaction handed to writes that must be part of it (defined with the change pipeline). */
export type { StoreTx } from '../changes';
export * from './async';
export * from './connection-store';
export * from './coordination';
export * from './held-device-store';
export * from './key-store';
export * from './presence-store';
export * from './privacy-store';
export * from './webhook-store';

/** Every store of one database, and what spans them. */
export interface Stores {
  readonly presence: PresenceStore;
  readonly keys: ApiKeyStore;
  readonly connections: ConnectionStore;
  readonly webhooks: WebhookStore;
  readonly privacy: PrivacyStore;
  /** Read once at start, by the stream. */
  readonly heldDevices: HeldDeviceStore;
  /** One transaction across the stores: pass `tx` to each write inside it. */
  transaction<T>(fn: (tx: StoreTx) => T): T;
  /** As `WebhookStore.scrubbing`, for whatever `fn` writes in any store. */
  scrubbing<T>(fn: () => T): { result: T; walTruncated: boolean };
  /** True while the store answers and its schema is current (`/readyz`). */
  ready(): boolean;
  close(): void;
}
