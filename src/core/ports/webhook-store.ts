/**
 * @module core/ports/webhook-store
 * Webhook endpoints, the outbox of events, deliveries and attempts.
 */

import type { StoreTx } from '../changes';

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

/** An event as the outbox writes it. */
export interface NewEvent {
  readonly msgId: string;
  readonly type: EventType;
  readonly userId: string | null;
  readonly version: number | null;
  readonly createdAt: number;
  /** The JSON body, as it is signed and sent. */
  readonly payload: string;
}

/** A pending delivery of one event to one endpoint. */
export interface NewDelivery {
  readonly endpointId: string;
  /** The event it delivers: its index in the `events` written with it (`insertOutbox`). */
  readonly event: number;
  /**
   * Deliveries of one endpoint with the same key go out one at a time, in order (a user's
   * presence changes: `u:<user_id>`); different keys do not wait for each other.
   */
  readonly orderingKey: string;
  /** Not sent before this (a coalescing window). */
  readonly notBefore: number;
  readonly nextAttemptAt: number;
  /** Sent again by a replay (same webhook-id). */
  readonly replay: boolean;
  readonly now: number;
}

/** A pending delivery with what sending it needs, as loaded at start or after a spill. */
export interface PendingRow {
  id: number;
  event_seq: number;
  /** The delivery's ordering key (`NewDelivery.orderingKey`). */
  ordering_key: string;
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

  /**
   * Writes events and their pending deliveries inside `tx` (the outbox writes in others'
   * commits), in one batch: a commit's worth of events costs a statement or two, not a round
   * trip each. Returns the events' seqs and the deliveries' ids, in the order given; ids grow in
   * that order (the dispatcher sends a FIFO in id order).
   */
  insertOutbox(
    tx: StoreTx,
    events: readonly NewEvent[],
    deliveries: readonly NewDelivery[],
  ): { seqs: number[]; ids: number[] };
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

/** A delivery a node claimed (`DeliveryClaims.claimDue`): what sending it needs, and whose endpoint it is. */
export interface ClaimedRow extends PendingRow {
  endpoint_id: string;
}

/**
 * Claims on deliveries, for several nodes sending from one outbox (the PostgreSQL store; SQLite
 * serves one node and has none). A node sends only the deliveries it claimed; a claim is a lease
 * held by a node id until a time, released by the delivery's outcome (`writeOutcomes`,
 * `markCoalesced`, `failPending`), by `releaseClaims`, or by its end (a node that died).
 * Asynchronous only: no synchronous store implements it.
 */
export interface DeliveryClaims {
  /**
   * Claims up to `limit` due deliveries (pending, past their coalescing window and retry time, of
   * an enabled endpoint, unclaimed or their claim ended) for `node` until `now + leaseMs`, in id
   * order, only the first pending one of each ordering key of an endpoint; only of
   * `endpointIds` when given. Two nodes never claim the same delivery.
   */
  claimDue(
    node: string,
    now: number,
    leaseMs: number,
    limit: number,
    endpointIds?: readonly string[],
  ): Promise<ClaimedRow[]>;
  /** Moves the end of `node`'s claims on `ids` to `until`; returns the ids it still held. */
  renewClaims(node: string, ids: readonly number[], until: number): Promise<number[]>;
  /** Gives up `node`'s claims on `ids` (a graceful stop hands them over). */
  releaseClaims(node: string, ids: readonly number[]): Promise<void>;
  /**
   * Pending deliveries of the endpoint's ordering key `lane` after `afterId`, in id order, at most
   * `limit`: the rest of the lane behind a claimed head, which no other node can claim while the
   * head is pending (the coalescing of a claimed head reads them).
   */
  laneAfter(endpointId: string, lane: string, afterId: number, limit: number): Promise<PendingRow[]>;
}

/** The claims of a store that has them (PostgreSQL), else null. */
export function deliveryClaimsOf(store: object): DeliveryClaims | null {
  const s = store as Partial<DeliveryClaims>;
  return typeof s.claimDue === 'function' &&
    typeof s.renewClaims === 'function' &&
    typeof s.releaseClaims === 'function' &&
    typeof s.laneAfter === 'function'
    ? (store as DeliveryClaims)
    : null;
}
