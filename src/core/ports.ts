/**
 * @module core/ports
 * The storage ports: everything the service persists goes through one of these interfaces, and
 * `store/` implements them on SQLite (`store/sqlite.ts` opens them all on one database). Services
 * (the engine, API keys, OAuth connections, webhooks) depend on the ports only, hold no SQL and
 * no database handle, so another implementation (PostgreSQL) replaces `store/` and the
 * composition root, not the callers.
 *
 * Synchronous by design, for now. The one implementation is in-process SQLite (better-sqlite3),
 * where a statement is a plain function call, and the callers rely on it: the engine's group
 * commit stages the webhook outbox inside its transaction, API keys are checked on every request,
 * and the services' own methods (used by the routes, the CLI and the tests) return values, not
 * promises. What keeps the ports ready for a server-based store is the transaction rule: a write
 * that must commit with others receives the open transaction as a `StoreTx` (never found by
 * asking the connection whether one is open), and a service that needs several writes to be one
 * runs them in the port's `transaction(fn)`, passing fn's `tx` on. Making the methods return
 * promises then changes their signatures and their callers' `await`s, not what they do.
 */

import type { StoreTx } from './changes';
import type { Activity, CustomStatus, Observation, Override, Platform, Source, Status } from './presence';

/** The open transaction handed to writes that must be part of it (defined with the change pipeline). */
export type { StoreTx } from './changes';

// ================================================================== presence

export interface UserRecord {
  readonly userId: string;
  readonly displayName: string | null;
  readonly timezone: string | null;
  readonly createdAt: number;
  readonly updatedAt: number;
}

/** An account on a platform; `workspaceId` is '' where the platform has no workspaces. */
export interface AccountRef {
  readonly platform: Platform;
  readonly externalId: string;
  readonly workspaceId: string;
}

export interface AccountRecord extends AccountRef {
  readonly userId: string;
  readonly createdAt: number;
}

export interface AggregateRecord {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source | null;
  readonly version: number;
  readonly lastActiveAt: number | null;
  readonly updatedAt: number;
}

export interface TransitionRecord {
  readonly userId: string;
  readonly version: number;
  readonly at: number;
  readonly fromStatus: Status;
  readonly toStatus: Status;
  readonly fromActivity: Activity | null;
  readonly toActivity: Activity | null;
  readonly source: Source | null;
  /** The platform whose report caused it, 'override' for the API override, null for expiry. */
  readonly platform: string | null;
}

export interface LoadedUser {
  readonly user: UserRecord;
  readonly observations: Observation[];
  readonly override: Override | null;
  readonly aggregate: AggregateRecord | null;
  readonly accounts: AccountRef[];
}

export type WriteOp =
  | { readonly op: 'user'; readonly user: UserRecord }
  | { readonly op: 'observation'; readonly userId: string; readonly obs: Observation }
  | {
      readonly op: 'observation-delete';
      readonly userId: string;
      readonly platform: Platform;
      readonly device: string;
    }
  | { readonly op: 'override'; readonly userId: string; readonly override: Override | null }
  | { readonly op: 'aggregate'; readonly userId: string; readonly aggregate: AggregateRecord }
  | { readonly op: 'transition'; readonly transition: TransitionRecord }
  /** A coarse refresh: times of unchanged observations and the user's last activity. */
  | {
      readonly op: 'refresh';
      readonly userId: string;
      readonly observations: readonly Observation[];
      readonly lastActiveAt: number | null;
    };

export interface HistoryQuery {
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
}

export type LinkResult = { readonly linked: true } | { readonly linked: false; readonly ownerId: string };

export interface PresenceStore {
  loadAll(): LoadedUser[];
  /**
   * Applies the ops in order in one transaction; `stage` runs inside it, handed the transaction
   * (the change sinks write their rows there).
   */
  write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void): void;
  history(userId: string, query: HistoryQuery): TransitionRecord[];
  getUser(userId: string): UserRecord | null;
  accountsOf(userId: string): AccountRecord[];
  /** Links the account to the user, or names the user it already belongs to. */
  linkAccount(userId: string, account: AccountRef, now: number): LinkResult;
  unlinkAccount(userId: string, account: AccountRef): boolean;
  /**
   * Removes the user and everything stored about them, in one transaction; `stage` runs inside
   * it, handed the transaction (the webhook outbox forgets the user's events and writes
   * `user.deleted`).
   */
  deleteUser(userId: string, stage?: (tx: StoreTx) => void): boolean;
  /**
   * Commits a throwaway write that needs a fresh page, to learn whether a commit can succeed
   * again after a failure (readiness recovers without waiting for a client's write). Throws
   * as a write would.
   */
  probe(now: number): void;
  close(): void;
}

// ================================================================== API keys

export const SCOPES = ['read', 'write', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

/** A stored API key: never the key itself, only a SHA-256 of its secret part. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly name: string | null;
  /** Hex SHA-256 of the key's secret part. */
  readonly hash: string;
  readonly scopes: readonly Scope[];
  readonly createdAt: number;
  readonly revokedAt: number | null;
}

export interface ApiKeyStore {
  insert(key: ApiKeyRecord): void;
  get(id: string): ApiKeyRecord | null;
  /** Oldest first (then by id). */
  list(): ApiKeyRecord[];
  /** Marks an active key revoked at `at`; false when there is no active key with that id. */
  revoke(id: string, at: number): boolean;
}

// ================================================================== OAuth connections and states

/** Stored health. `refreshing` is not stored: it is overlaid while a refresh is in flight. */
export type StoredHealth = 'ok' | 'reauth_required' | 'revoked' | 'error';
export type ConnectionKind = 'user' | 'app';

/** A connection as stored; its token columns sealed by the token vault. */
export interface ConnectionRow {
  readonly connection_id: string;
  readonly platform: string;
  readonly kind: ConnectionKind;
  readonly user_id: string | null;
  readonly external_id: string;
  readonly workspace_id: string;
  /** JSON array of the granted scopes. */
  readonly scopes: string;
  readonly access_token: string;
  readonly refresh_token: string | null;
  readonly token_type: string | null;
  readonly expires_at: number | null;
  readonly refresh_expires_at: number | null;
  readonly health: StoredHealth;
  readonly last_error: string | null;
  readonly last_error_at: number | null;
  readonly retry_at: number | null;
  readonly failures: number;
  readonly refreshed_at: number | null;
  readonly expiry_warned_at: number | null;
  readonly created_at: number;
  readonly updated_at: number;
}

/** A pending authorize flow: the state is stored as a SHA-256 only, the PKCE verifier sealed. */
export interface StateRow {
  readonly state_hash: string;
  readonly platform: string;
  readonly user_id: string;
  readonly redirect_uri: string;
  readonly code_verifier: string | null;
  readonly created_at: number;
  readonly expires_at: number;
}

/** New tokens, already sealed. */
export interface SealedTokens {
  readonly accessToken: string;
  readonly refreshToken: string | null;
  readonly tokenType: string | null;
  readonly expiresAt: number | null;
  readonly refreshExpiresAt: number | null;
  readonly scopes: readonly string[] | null;
}

export interface NewConnection extends SealedTokens {
  readonly id: string;
  readonly platform: string;
  readonly kind: ConnectionKind;
  readonly userId: string | null;
  readonly externalId: string;
  readonly workspaceId: string;
}

export interface ConnectionFilter {
  readonly userId?: string;
  readonly platform?: string;
  readonly kind?: ConnectionKind;
}

/** One sealed value somewhere in the connection tables, for key rotation. */
export interface SealedCell {
  readonly table: 'connections' | 'oauth_states';
  readonly column: 'access_token' | 'refresh_token' | 'code_verifier';
  readonly key: string;
  readonly value: string;
}

/**
 * Pending authorize states: single-use, so `takeState` removes what it returns. Every method
 * takes the open transaction, when it runs inside one, as its last argument.
 */
export interface AuthorizeStateStore {
  /**
   * Runs `fn` in one transaction that takes the write lock up front (a read-then-write cannot
   * lose a race to another process); nested calls join the outer transaction.
   */
  transaction<T>(fn: (tx: StoreTx) => T): T;
  insertState(row: StateRow, tx?: StoreTx): void;
  /** Deletes and returns the state: whatever the caller decides, it cannot be used twice. */
  takeState(stateHash: string, tx?: StoreTx): StateRow | null;
  /** Deletes expired states; returns how many. */
  purgeStates(now: number, tx?: StoreTx): number;
}

/**
 * OAuth connections and their tokens. It stores what it is given: token columns arrive sealed
 * and leave sealed. Every multi-column change is one call, so a rotated refresh token is never
 * stored apart from the access token it came with.
 */
export interface ConnectionStore extends AuthorizeStateStore {
  get(id: string, tx?: StoreTx): ConnectionRow | null;
  findByAccount(
    platform: string,
    kind: ConnectionKind,
    workspaceId: string,
    externalId: string,
    tx?: StoreTx,
  ): ConnectionRow | null;
  /** Oldest first. */
  list(filter?: ConnectionFilter, tx?: StoreTx): ConnectionRow[];
  /** Inserts a healthy connection refreshed `now`. */
  insert(c: NewConnection, now: number, tx?: StoreTx): void;
  /**
   * A reconnect of an account that already has a row: new owner, new tokens, and a clean bill of
   * health.
   */
  replaceGrant(id: string, userId: string | null, t: SealedTokens, now: number, tx?: StoreTx): void;
  /**
   * A successful refresh: new access token, new (or kept) refresh token, expiries, health ok.
   * Null fields of `t` other than the tokens keep what is stored. False: no such connection.
   */
  saveRefreshed(id: string, t: SealedTokens, now: number, tx?: StoreTx): boolean;
  /** `last_error_at` becomes `now` with an error, null without. */
  setHealth(
    id: string,
    fields: {
      readonly health: StoredHealth;
      readonly lastError: string | null;
      readonly retryAt: number | null;
      readonly failures: number;
    },
    now: number,
    tx?: StoreTx,
  ): void;
  markExpiryWarned(id: string, now: number, tx?: StoreTx): void;
  delete(id: string, tx?: StoreTx): boolean;
  /** Healthy (or erring) connections whose access token ends before `horizon`, soonest first. */
  expiringBefore(horizon: number, tx?: StoreTx): ConnectionRow[];
  /**
   * Healthy (or erring) user connections of these platforms whose grant ends before `horizon`
   * and that were not warned about yet. The grant ends with the refresh token where one with an
   * end date is held (or the access token, if that outlives it), else with the access token if
   * nothing refreshes it.
   */
  unwarnedEndingBefore(platforms: readonly string[], horizon: number, tx?: StoreTx): ConnectionRow[];
  /** Every sealed value (tokens, PKCE verifiers), for key rotation. */
  sealedCells(tx?: StoreTx): SealedCell[];
  writeCell(cell: SealedCell, value: string, tx?: StoreTx): void;
}

// ================================================================== webhooks

/** Event types of the change webhooks (docs/api.md). */
export const EVENT_TYPES = [
  'presence.changed',
  'connection.reauth_required',
  'connection.revoked',
  'connector.degraded',
  'connector.recovered',
  'webhook.endpoint_disabled',
  'user.deleted',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed', 'coalesced'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const DISABLED_REASONS = ['gone', 'failing', 'manual'] as const;
export type DisabledReason = (typeof DISABLED_REASONS)[number];

/**
 * An endpoint as held in memory, secrets in the clear (signing needs them). Never returned to a
 * client as it is, never stored as it is (see `StoredEndpoint`).
 */
export interface EndpointRecord {
  id: string;
  url: string;
  events: EventType[] | null;
  userIds: string[] | null;
  coalesceMs: number;
  secret: string;
  previousSecret: string | null;
  previousExpiresAt: number | null;
  enabled: boolean;
  disabledReason: DisabledReason | null;
  disabledAt: number | null;
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
}

/** An endpoint as stored: its signing secrets sealed by the token vault. */
export interface StoredEndpoint extends Omit<EndpointRecord, 'secret' | 'previousSecret'> {
  readonly sealedSecret: string;
  readonly sealedPreviousSecret: string | null;
}

/** A pending delivery with what sending it needs, as loaded at start or after a spill. */
export interface PendingRow {
  id: number;
  event_seq: number;
  lane: string;
  attempts: number;
  next_attempt_at: number | null;
  not_before: number;
  replay: number;
  created_at: number;
  msg_id: string;
  type: EventType;
  payload: string;
}

/**
 * The outcome of one attempt, written with the delivery's new state. A failed attempt also gets
 * its own attempt row; a success lives in the delivery's `last_*` fields only.
 */
export interface AttemptRecord {
  readonly deliveryId: number;
  readonly attempt: number;
  readonly at: number;
  readonly statusCode: number | null;
  readonly latencyMs: number;
  readonly error: string | null;
  nextAttemptAt: number | null;
  status: DeliveryStatus;
}

export interface DeliveryRow {
  id: number;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: number | null;
  replay: number;
  last_attempt_at: number | null;
  last_status_code: number | null;
  last_latency_ms: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  msg_id: string;
  type: EventType;
  user_id: string | null;
  version: number | null;
}

export interface AttemptRow {
  delivery_id: number;
  attempt: number;
  at: number;
  status_code: number | null;
  latency_ms: number;
  error: string | null;
  next_attempt_at: number | null;
}

/**
 * An endpoint's signing secrets as stored: sealed, or plain text in rows written before secrets
 * were sealed (the service seals those at its next start).
 */
export interface EndpointSecrets {
  readonly id: string;
  readonly secret: string;
  readonly previousSecret: string | null;
  readonly format: 'plain' | 'sealed';
}

/**
 * Webhook endpoints, the outbox of events, deliveries and attempts. The dispatcher keeps the hot
 * state in memory and calls here to make it durable, in batches. A method that must run inside
 * someone's transaction takes it first (the outbox's inserts: in the presence commit, or the
 * service's own); one that may, takes it last.
 */
export interface WebhookStore {
  transaction<T>(fn: (tx: StoreTx) => T): T;
  /**
   * Runs `fn` so that what its writes replace does not linger in the store's files (freed pages,
   * old journal frames): for secrets replaced by their sealed or re-sealed form. Returns fn's
   * result and whether the store could also drop its old journal (a reader may hold it).
   */
  scrubbing<T>(fn: () => T): { result: T; walTruncated: boolean };

  /** Every endpoint, oldest first. */
  endpoints(tx?: StoreTx): StoredEndpoint[];
  /** Inserts or updates; an update keeps the endpoint's deliveries. */
  saveEndpoint(e: StoredEndpoint, tx?: StoreTx): void;
  /** Deletes the endpoint with its deliveries and attempts (the events stay until pruned). */
  deleteEndpoint(id: string, tx?: StoreTx): boolean;
  endpointSecrets(tx?: StoreTx): EndpointSecrets[];
  /** Stores an endpoint's secrets sealed. */
  writeSealedSecrets(id: string, secret: string, previousSecret: string | null, tx?: StoreTx): void;

  /** Writes an event inside `tx` (the outbox writes in others' commits); returns its seq. */
  insertEvent(
    tx: StoreTx,
    msgId: string,
    type: EventType,
    userId: string | null,
    version: number | null,
    createdAt: number,
    payload: string,
  ): number;
  /** A pending delivery of an event to an endpoint, inside the `tx` that wrote the event. */
  insertDelivery(
    tx: StoreTx,
    endpointId: string,
    eventSeq: number,
    lane: string,
    notBefore: number,
    nextAttemptAt: number,
    replay: boolean,
    now: number,
  ): number;
  /** Writes attempts and endpoint failure marks in one transaction of its own, in order. */
  writeOutcomes(
    attempts: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): void;
  /** Gives up every pending delivery of an endpoint; returns how many. */
  failPending(endpointId: string, error: string, now: number, tx?: StoreTx): number;
  /** Pending deliveries of an endpoint after `afterId`, in id order, at most `limit`. */
  loadPending(endpointId: string, afterId: number, limit: number, tx?: StoreTx): PendingRow[];
  markCoalesced(deliveryId: number, note: string, now: number, tx?: StoreTx): void;
  /** Stores a merged event and points the surviving delivery at it; returns the event's seq. */
  repoint(
    deliveryId: number,
    fromSeq: number,
    msgId: string,
    payload: string,
    now: number,
    tx?: StoreTx,
  ): number;
  /** The delivery log of an endpoint, newest first, ids below `before`. */
  page(
    endpointId: string,
    status: DeliveryStatus | null,
    before: number,
    limit: number,
    tx?: StoreTx,
  ): DeliveryRow[];
  /** The failed attempts of these deliveries, in order. */
  attemptsOf(deliveryIds: readonly number[], tx?: StoreTx): AttemptRow[];
  /**
   * Queues again every event the endpoint was sent (delivered, or given up) whose event time is
   * at or after `since`, per ordering key in version order. Returns how many.
   */
  replay(endpointId: string, since: number, now: number, tx?: StoreTx): number;
  /**
   * Deletes every event about the user but `user.deleted` ones, with their deliveries and
   * attempts. Returns the pending deliveries it removed, by endpoint, and how many events went.
   */
  forgetUser(tx: StoreTx, userId: string): { pending: Map<string, Set<number>>; events: number };
  /** Deletes up to `chunk` finished deliveries last touched before `cutoff`; returns how many. */
  pruneDeliveries(cutoff: number, chunk: number, tx?: StoreTx): number;
  /** Deletes up to `chunk` events older than `cutoff` that no delivery refers to. */
  pruneEvents(cutoff: number, chunk: number, tx?: StoreTx): number;
}

// ================================================================== all of them

/** Every store of one database, and what spans them. */
export interface Stores {
  readonly presence: PresenceStore;
  readonly keys: ApiKeyStore;
  readonly connections: ConnectionStore;
  readonly webhooks: WebhookStore;
  /** One transaction across the stores: pass `tx` to each write inside it. */
  transaction<T>(fn: (tx: StoreTx) => T): T;
  /** As `WebhookStore.scrubbing`, for whatever `fn` writes in any store. */
  scrubbing<T>(fn: () => T): { result: T; walTruncated: boolean };
  /** True while the store answers and its schema is current (`/readyz`). */
  ready(): boolean;
  close(): void;
}
