/**
 * @module aggregator/remote
 * Changes another node made, taken into this node's memory. In several-node mode every node
 * keeps the whole presence state in memory and follows the shared change log (src/cluster/);
 * an entry of another node carries the user's state as of its change (the aggregate with its
 * version, and the observations and override it was reduced from), and this replaces the
 * user's state here. Nothing is committed or emitted: the node that made the change did both.
 */

import type { Observation, Override, Source } from '../core/presence';
import type { PresenceState } from '../core/changes';
import type { TimingWheel } from './wheel';
import { UserState, type UserTable } from './user-state';

/** A user's state as another node committed it. */
export interface RemoteState {
  readonly userId: string;
  readonly version: number;
  /** When the change was made (the other node's clock). */
  readonly at: number;
  readonly aggregate: PresenceState & { readonly source: Source | null };
  readonly observations: readonly Observation[];
  readonly override: Override | null;
  readonly lastActiveAt: number | null;
}

/**
 * `applied`: the user now holds that state. `held`: this node already holds that version or a
 * newer one (its own change, or a log entry read twice). `busy`: a change of this node to the
 * user waits for its commit; the caller applies it again once that settled (the version then
 * decides).
 */
export type RemoteOutcome = 'applied' | 'held' | 'busy';

export interface RemoteParts {
  readonly table: UserTable;
  readonly wheel: TimingWheel;
  /** The user's next boundary after `since` (Ingest.firstBoundary). */
  readonly firstBoundary: (u: UserState, since: number) => number;
}

export function applyRemote(parts: RemoteParts, s: RemoteState): RemoteOutcome {
  let u = parts.table.byId.get(s.userId);
  if (u !== undefined && u.undo !== null) return 'busy';
  if (u !== undefined && u.version >= s.version) return 'held';
  if (u === undefined) {
    u = new UserState(s.userId);
    parts.table.add(u);
  }
  // Copies: the entry's arrays are this node's own from now on (refreshes mutate observations).
  u.observations = s.observations.map((o) => ({ ...o }));
  u.override = s.override;
  u.status = s.aggregate.status;
  u.activity = s.aggregate.activity;
  u.customStatus = s.aggregate.customStatus;
  u.source = s.aggregate.source;
  u.version = s.version;
  u.lastActiveAt = s.lastActiveAt;
  u.invalidate();
  // Filed under its next boundary after the change, as at a load (with expiries held in Redis,
  // only decay steps and the override's end: see expiry-hold.ts).
  const due = parts.firstBoundary(u, s.at);
  parts.wheel.reschedule(u, Number.isFinite(due) ? due : Number.POSITIVE_INFINITY);
  return 'applied';
}
