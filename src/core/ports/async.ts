/**
 * @module core/ports/async
 * The asynchronous form of the store ports, for a store behind a network connection
 * (PostgreSQL, `store/pg/`). It is derived from the synchronous ports by one mapped type, so the
 * ports in this folder stay the single definition of what a store does: the same methods and
 * arguments, each result a promise, and a callback the store runs inside its transaction (a
 * `stage`, a `transaction` body) may return a promise that the store awaits before it commits.
 *
 * Generic methods (`transaction<T>`, `scrubbing<T>`) are declared by hand below: TypeScript's
 * `infer` cannot carry a method's own type parameter through a mapped type (it would become
 * `unknown`).
 */

import type { StoreTx } from '../changes';
import type { AuthorizeStateStore, ConnectionStore } from './connection-store';
import type { HeldDeviceStore } from './held-device-store';
import type { ApiKeyStore } from './key-store';
import type { PresenceStore, RefreshSlots } from './presence-store';
import type { PrivacyStore } from './privacy-store';
import type { WebhookStore } from './webhook-store';

/** A callback argument may be async; any other argument is unchanged (unions distribute). */
type MaybeAsyncCallback<F> = F extends (...args: infer A) => infer R ? (...args: A) => R | Promise<R> : F;
type AsyncArgs<A extends readonly unknown[]> = { [I in keyof A]: MaybeAsyncCallback<A[I]> };

/** Every method of port `P` with a promise result (and callbacks that may be async). */
export type Async<P> = {
  [K in keyof P]: P[K] extends (...args: infer A) => infer R
    ? (...args: AsyncArgs<A>) => Promise<Awaited<R>>
    : P[K];
};

/** `transaction(fn)` of an async store: fn may await the store; the commit waits for it. */
export interface AsyncTransactional {
  transaction<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T>;
}

/** `scrubbing(fn)` of an async store (see `WebhookStore.scrubbing`). */
export interface AsyncScrubbing {
  scrubbing<T>(fn: () => T | Promise<T>): Promise<{ result: T; walTruncated: boolean }>;
}

/**
 * `RefreshSlots` of an async store: `write` and `load` are store calls and return promises (so
 * the SQLite adapter orders them after an open transaction like any other call); `count` and
 * `slotOf` stay synchronous, being a pure hash the engine runs for every user of a run.
 */
export type AsyncRefreshSlots = Pick<RefreshSlots, 'count' | 'slotOf'> &
  Async<Omit<RefreshSlots, 'count' | 'slotOf'>>;

/**
 * The presence store, asynchronous. `refreshSlots` stays an optional feature: an embedded store
 * (SQLite) packs refresh times by slot, a server-based one (PostgreSQL) has none and gets
 * `refresh` ops instead.
 */
export type AsyncPresenceStore = Async<Omit<PresenceStore, 'refreshSlots'>> & {
  readonly refreshSlots?: AsyncRefreshSlots;
};
export type AsyncApiKeyStore = Async<ApiKeyStore>;
export type AsyncPrivacyStore = Async<PrivacyStore>;
export type AsyncHeldDeviceStore = Async<HeldDeviceStore>;
export type AsyncAuthorizeStateStore = Async<Omit<AuthorizeStateStore, 'transaction'>> & AsyncTransactional;
export type AsyncConnectionStore = Async<Omit<ConnectionStore, 'transaction'>> & AsyncTransactional;
export type AsyncWebhookStore = Async<Omit<WebhookStore, 'transaction' | 'scrubbing'>> &
  AsyncTransactional &
  AsyncScrubbing;

/** `Stores` (index.ts), asynchronous. */
export interface AsyncStores extends AsyncTransactional, AsyncScrubbing {
  readonly presence: AsyncPresenceStore;
  readonly keys: AsyncApiKeyStore;
  readonly connections: AsyncConnectionStore;
  readonly webhooks: AsyncWebhookStore;
  readonly privacy: AsyncPrivacyStore;
  /** Read once at start, by the stream. */
  readonly heldDevices: AsyncHeldDeviceStore;
  /** True while the store answers and its schema is current (`/readyz`). */
  ready(): Promise<boolean>;
  close(): Promise<void>;
}
