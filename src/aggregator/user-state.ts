/**
 * @module aggregator/user-state
 * The engine's per-user hot state, the undo record a commit may roll back to, and the table of
 * users every part of the engine shares.
 */

import type {
  Activity,
  CustomStatus,
  Observation,
  Override,
  Platform,
  Source,
  Status,
} from '../core/presence';
import type { UserSnapshot } from '../normalizer/view';
import { watchList, type Validity } from './batch-memo';

/**
 * A user as it was before the queued changes touched it: what a rollback restores and what reads
 * show while the commit waits. `created` marks a user the queued changes create.
 */
export class Undo implements UserSnapshot {
  readonly userId: string;
  readonly observations: Observation[];
  readonly override: Override | null;
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source | null;
  readonly version: number;
  readonly lastActiveAt: number | null;
  readonly aggregateAt: number;
  readonly dueAt: number;
  readonly identityOnly: Platform[] | null;
  /** Set while the commit that took this record is in flight. */
  inFlight = false;
  /**
   * Taken when the user changes again while that commit is in flight: the state it makes
   * durable, and the undo record once it has.
   */
  next: Undo | null = null;

  constructor(
    u: UserState,
    readonly created: boolean,
  ) {
    this.userId = u.userId;
    this.observations = u.observations.slice();
    this.override = u.override;
    this.status = u.status;
    this.activity = u.activity;
    this.customStatus = u.customStatus;
    this.source = u.source;
    this.version = u.version;
    this.lastActiveAt = u.lastActiveAt;
    this.aggregateAt = u.aggregateAt;
    this.dueAt = u.dueAt;
    this.identityOnly = u.identityOnly;
  }
}

/** Per-user hot state. A class, so that V8 gives every user the same compact shape. */
export class UserState {
  observations: Observation[] = [];
  override: Override | null = null;
  status: Status = 'offline';
  activity: Activity | null = null;
  customStatus: CustomStatus | null = null;
  source: Source | null = null;
  version = 0;
  lastActiveAt: number | null = null;
  /** When the aggregate was last written (0 for never): a load's first boundary starts there. */
  aggregateAt = 0;
  /** The exact time of the wheel entry that will look at this user next. */
  dueAt = Number.POSITIVE_INFINITY;
  refreshDirty = false;
  deleted = false;
  /**
   * The member `"<user_id>":<presence object>` as JSON, valid until `jsonUntil` unless something
   * about the user changes. Keeping the key in it lets a batch read be pure concatenation.
   */
  json: Buffer | null = null;
  jsonUntil = 0;
  /** Remembered batch bodies that include this user, to be marked stale when its view changes. */
  batches: Validity[] | null = null;
  /** The batch read that last included this user, to skip duplicate ids without a Set. */
  readMark = 0;
  /** Linked platforms that establish identity and report no presence (LinkedIn), or null. */
  identityOnly: Platform[] | null = null;
  /** The last committed state, while queued changes to this user wait for their commit. */
  undo: Undo | null = null;

  constructor(readonly userId: string) {}

  /** Forgets the cached view, and marks every remembered batch body that includes it stale. */
  invalidate(): void {
    this.json = null;
    if (this.batches === null) return;
    for (const batch of this.batches) batch.stale = true;
    this.batches = null;
  }

  watch(batch: Validity): void {
    this.batches = watchList(this.batches, batch);
  }

  /**
   * Takes back the committed state of the undo record (which must exist) and drops the record.
   * Returns it: the caller forgets a user it created, or files the user under its boundary.
   */
  rollBack(): Undo {
    const s = this.undo!;
    this.undo = null;
    this.invalidate();
    if (s.created) return s;
    this.observations = s.observations;
    this.override = s.override;
    this.status = s.status;
    this.activity = s.activity;
    this.customStatus = s.customStatus;
    this.source = s.source;
    this.version = s.version;
    this.lastActiveAt = s.lastActiveAt;
    this.aggregateAt = s.aggregateAt;
    return s;
  }
}

/** The users, shared by the parts of the engine. */
export class UserTable {
  readonly byId = new Map<string, UserState>();
  /** Users created so far: a remembered batch with unknown ids is stale once this moves. */
  created = 0;

  add(u: UserState): void {
    this.byId.set(u.userId, u);
    this.created += 1;
  }

  /** Forgets a user (deleted, or its creation rolled back). */
  remove(u: UserState): void {
    if (this.byId.get(u.userId) === u) this.byId.delete(u.userId);
    u.deleted = true;
    u.invalidate();
  }
}
