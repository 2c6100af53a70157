/**
 * @module core/ports/presence-store
 * The presence store: users, accounts, observations, overrides, aggregates and transitions, the
 * engine's write ops, history.
 */

import type { StoreTx } from '../changes';
import type { Activity, CustomStatus, Observation, Override, Platform, Source, Status } from '../presence';

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
  /**
   * Writes nothing: the user's expected version is checked though the write changes nothing of
   * it (several nodes: a report the same as this node's memory, which may lag another node's
   * change; a stale user is returned as for its other ops). A store with one writer ignores it.
   */
  | { readonly op: 'check'; readonly userId: string }
  /** A coarse refresh: times of unchanged observations and the user's last activity. */
  | {
      readonly op: 'refresh';
      readonly userId: string;
      readonly observations: readonly Observation[];
      readonly lastActiveAt: number | null;
    };

/** The user a write op is of. */
export const writeOpUser = (op: WriteOp): string =>
  op.op === 'transition' ? op.transition.userId : op.op === 'user' ? op.user.userId : op.userId;

export interface HistoryQuery {
  readonly since?: number;
  readonly until?: number;
  readonly limit: number;
}

/** A user's refreshed times: each observation's, by platform and device, and the last activity. */
export interface RefreshedTimes {
  readonly userId: string;
  readonly observations: readonly Pick<Observation, 'platform' | 'device' | 'observedAt' | 'expiresAt'>[];
  readonly lastActiveAt: number | null;
}

/**
 * Refreshed times kept packed, for a store where a row write per user is what refresh
 * persistence would cost (SQLite). Users are spread over `count` slots by `slotOf`, a hash of
 * their id that never changes. A write replaces whole slots, so it lists every user of each slot
 * it writes. At load, `load` hands over every stored entry; a time in it counts where it is later
 * than the row's. A store without it gets `refresh` ops instead.
 */
export interface RefreshSlots {
  readonly count: number;
  slotOf(userId: string): number;
  /** Replaces the stored entries of each slot given, in one transaction. */
  write(slots: ReadonlyMap<number, readonly RefreshedTimes[]>): void;
  /**
   * Hands over every stored entry (of the slots in `only`, when given); the object may be reused
   * for the next, so copy what you keep.
   */
  load(visit: (entry: RefreshedTimes) => void, only?: ReadonlySet<number>): void;
}

/** A stored snapshot's header, its parts not read yet (see PresenceSnapshots). */
export interface SnapshotHeader {
  /** The change sequence it covers: every change up to it is in the snapshot, none after. */
  readonly seq: number;
  readonly parts: number;
  readonly createdAt: number;
}

/** What changed after a snapshot's sequence. */
export interface SnapshotChanges {
  /** Users with any write to their rows since (created, changed, linked, deleted). */
  readonly users: readonly string[];
  /** Slots of packed refresh times written since. */
  readonly slots: readonly number[];
}

/** A snapshot being written, a part at a time: not the current one until `finish`. */
export interface SnapshotWriter {
  readonly seq: number;
  /** Stores the next part, in its own transaction. */
  part(data: Uint8Array): void;
  /** Makes it the current snapshot, and drops the previous one, in one transaction. */
  finish(createdAt: number): void;
}

/**
 * Snapshots of the engine's hot state, for a store where reading every row is what a restart
 * would cost (SQLite). The engine encodes the parts (their format is its own, named by `format`);
 * the store keeps them with a checksum each, and logs every write to a user's rows or to a slot of
 * refresh times with a rising sequence, so a load takes the snapshot and then reads the rows of
 * whatever changed after it. A store without it is read whole at every start.
 *
 * Synchronous, as `RefreshSlots` is, and called outside any open transaction of the store. It
 * relies on one engine writing the file: an engine that applies other nodes' changes to memory
 * after they committed (the shared change log) must not write snapshots of the same database.
 */
export interface PresenceSnapshots {
  /**
   * Starts a snapshot covering the changes up to now, and drops a partial one. Only call it while
   * no presence write is in flight, so that memory holds every change it covers.
   */
  begin(format: string): SnapshotWriter;
  /** The current snapshot of that format and of the current schema, or null (none, partial, other). */
  latest(format: string): SnapshotHeader | null;
  /** A part of it, or null when it is missing or its checksum does not match. */
  readPart(header: SnapshotHeader, index: number): Buffer | null;
  changedSince(seq: number): SnapshotChanges;
  /** These users as `loadAll` gives them; an id without a user is left out. */
  loadUsers(ids: readonly string[]): Iterable<LoadedUser>;
  /** Drops up to `max` change entries the current snapshot covers; returns how many it dropped. */
  trim(max: number): number;
}

export type LinkResult = { readonly linked: true } | { readonly linked: false; readonly ownerId: string };

export interface PresenceStore {
  /** Every stored user; an implementation may stream them (the engine only iterates once). */
  loadAll(): Iterable<LoadedUser>;
  /** Packed refresh times, where the store has them (see RefreshSlots). */
  readonly refreshSlots?: RefreshSlots;
  /** Snapshots of the hot state, where the store has them (see PresenceSnapshots). */
  readonly snapshots?: PresenceSnapshots;
  /**
   * Applies the ops in order in one transaction; `stage` runs inside it, handed the transaction
   * (the change sinks write their rows there).
   *
   * `expected`: for each user whose presence the write changes, the aggregate version the writer
   * holds as committed (0: none). A store whose versions several writers share (PostgreSQL)
   * checks it: a user whose stored version differs is stale, every op of that user is skipped
   * and the others apply; the stale users are returned, and handed to `stage` (whose rows for
   * them must not be written either). A store with one writer (SQLite) ignores it: nothing is
   * ever stale there, and it returns nothing.
   */
  write(
    ops: readonly WriteOp[],
    stage?: (tx: StoreTx, stale?: ReadonlySet<string>) => void,
    expected?: ReadonlyMap<string, number>,
  ): ReadonlySet<string> | void;
  /**
   * These users as `loadAll` gives them (an id without a user is left out): what a writer whose
   * change was refused as stale reads back to make it again on top.
   */
  loadUsers(ids: readonly string[]): Iterable<LoadedUser>;
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
