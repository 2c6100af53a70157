/**
 * @module core/changes
 * The change pipeline: how committed presence changes leave the engine. Every consumer (the
 * webhook outbox now; a real-time stream and a shared change log next) is a `ChangeSink` added to
 * `engine.changes`, and the engine knows none of them.
 *
 * The contract has two phases, and the transaction is passed explicitly:
 * 1. `stage(tx, changes)` runs inside the transaction that commits the changes. A sink writes its
 *    own rows on `tx` (the outbox writes events and deliveries there, so an event exists if and
 *    only if the change it reports does), and may return a promise the commit waits for.
 *    Throwing aborts the commit, as a store failure would.
 * 2. `committed(changes)` runs once that transaction is durable, batch after batch in commit
 *    order, with the same array `stage` was given. A batch whose transaction failed is never
 *    reported; its changes come back in a later batch (the engine retries or rolls them back).
 *
 * Pure types and one pure builder, no I/O.
 */

import { toIso } from './time';
import type { Activity, CustomStatus, Observation, Override, Status } from './presence';
import { customStatusView, type CustomStatusView, type PresenceView } from '../normalizer/view';
import type { Reduction } from '../normalizer/reduce';

/**
 * The open transaction of a store, handed explicitly to whoever writes inside it. Opaque here:
 * each store implementation hands out its own kind and its ports take only that kind (SQLite:
 * `SqliteTx`, store/tx.ts). A transaction never outlives the call that opened it.
 */
export interface StoreTx {
  /** Which store implementation opened it ('sqlite'). */
  readonly store: string;
  /**
   * Runs `fn` once this transaction has committed, never if it rolls back: for what a module
   * wrote in someone else's transaction and may act on only once it is durable (the webhook
   * outbox's rows). The asynchronous stores offer it; a synchronous SQLite transaction is over
   * before any callback could run and does not.
   */
  readonly afterCommit?: (fn: () => void) => void;
}

export interface PresenceState {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
}

/** The fields of the aggregate a change can change, as the API names them. */
export type ChangedField = 'status' | 'activity' | 'custom_status';

/** One change of a user's aggregate, as committed. */
export interface PresenceChange {
  readonly userId: string;
  readonly version: number;
  readonly at: number;
  readonly previous: PresenceState;
  readonly current: Reduction;
  readonly changed: readonly ChangedField[];
  /** The platform whose report caused it, 'override', or null when time did (an expiry). */
  readonly cause: string | null;
  /** The `explain` sentence as of the change. */
  readonly explain: string;
  /**
   * The whole presence object as of the change, built only while a sink is added (building it
   * for every change would halve the change throughput of an engine nobody listens to).
   */
  readonly presence: PresenceView | null;
  /**
   * What the change was reduced from, taken when it was made: enough for another node to
   * replace its copy of the user with this state (the shared change log). Taken only while a
   * sink asks for it (`ChangeSink.wantsState`); absent otherwise.
   */
  readonly reducedFrom?: ReducedFrom;
}

/** A user's inputs as of a change: its observations, its override and its last activity. */
export interface ReducedFrom {
  readonly observations: readonly Observation[];
  readonly override: Override | null;
  readonly lastActiveAt: number | null;
}

/** A consumer of committed presence changes. Two phases, the transaction passed explicitly. */
export interface ChangeSink {
  /**
   * Inside the commit's transaction: stage rows on `tx` (the outbox does). Must not do I/O other
   * than on `tx`; throwing (or a rejected promise) aborts the commit. An asynchronous store's
   * writes return promises: the engine awaits the one returned here before it commits.
   */
  stage?(tx: StoreTx, changes: readonly PresenceChange[]): void | Promise<void>;
  /** After the commit is durable, in commit order. Must not throw (errors are logged). */
  committed?(changes: readonly PresenceChange[]): void;
  /** The sink needs each change's `reducedFrom` (the engine then takes it). */
  readonly wantsState?: boolean;
  /**
   * Why `stage` would refuse any commit carrying changes right now (the change log down), or
   * null. Asked before a commit that carries some, so that the users of the batch without a
   * change (refreshes only) are committed on their own instead of being refused with the others.
   */
  refusal?(): Error | null;
}

export interface ChangePipeline {
  /** Adds a sink after those already added; returns what removes it again. */
  add(sink: ChangeSink): () => void;
}

/** The `presence.changed` event body (docs/api.md, Change webhooks), as the API sends it. */
export interface PresenceChangedEvent {
  readonly type: 'presence.changed';
  readonly timestamp: string;
  readonly data: {
    readonly user_id: string;
    readonly version: number;
    readonly previous: {
      readonly status: Status;
      readonly activity: Activity | null;
      readonly custom_status: CustomStatusView | null;
    };
    /** The presence object as of the change (a merged event may carry any stored one). */
    readonly current: PresenceView | PresenceChangedCurrent;
    readonly changed: readonly ChangedField[];
  };
}

/** The part of the presence object a change always carries (see `presenceChangedEvent`). */
export interface PresenceChangedCurrent {
  readonly user_id: string;
  readonly status: Status;
  readonly activity: Activity | null;
  readonly custom_status: CustomStatusView | null;
  readonly source: string | null;
  readonly version: number;
  readonly explain: string;
}

/** The one builder of the `presence.changed` body: the outbox, coalescing and streams use it. */
export function presenceChangedEvent(c: PresenceChange): PresenceChangedEvent {
  return {
    type: 'presence.changed',
    timestamp: toIso(c.at),
    data: {
      user_id: c.userId,
      version: c.version,
      previous: {
        status: c.previous.status,
        activity: c.previous.activity,
        custom_status: customStatusView(c.previous.customStatus),
      },
      // The engine builds the presence object whenever a sink is added; the fallback only covers
      // a sink added after the change was already queued.
      current: c.presence ?? {
        user_id: c.userId,
        status: c.current.status,
        activity: c.current.activity,
        custom_status: customStatusView(c.current.customStatus),
        source: c.current.source,
        version: c.version,
        explain: c.explain,
      },
      changed: c.changed,
    },
  };
}
