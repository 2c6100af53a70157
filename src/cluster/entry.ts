/**
 * @module cluster/entry
 * What one entry of the shared change log says, and its JSON form. Pure: no I/O.
 *
 * A `change` entry carries everything another node needs: the `presence.changed` data (what
 * stream subscribers are sent, built once by the node that made it) and the user's state as of
 * the change (the aggregate with its version, and the observations and override it was reduced
 * from), so a follower replaces its copy of the user without reading the database. Chosen over
 * re-reading the user from PostgreSQL per change, which costs every node a query per change
 * (not measured); an entry costs one JSON parse. Its size, measured (2026-12-01, one device then
 * two): 1.3–1.8 KB, against 0.9 KB for that user's presence object. A `delete` entry says
 * another node deleted the user.
 */

import { presenceChangedEvent, type PresenceChange } from '../core/changes';
import type { RemoteState } from '../aggregator/remote';
import type { ChangeData } from '../stream/message';

export interface ChangeEntry {
  readonly kind: 'change';
  /** The node that committed it (a follower skips its own node's entries). */
  readonly node: string;
  readonly state: RemoteState;
  readonly data: ChangeData;
}

export interface DeleteEntry {
  readonly kind: 'delete';
  readonly node: string;
  readonly userId: string;
}

export type ClusterEntry = ChangeEntry | DeleteEntry;

/** The entry of a committed change; needs its `reducedFrom` (the appender asks the engine for it). */
export function changeEntry(node: string, c: PresenceChange): ChangeEntry {
  const from = c.reducedFrom;
  if (from === undefined) throw new Error(`change ${c.userId}@${c.version} carries no state`);
  return {
    kind: 'change',
    node,
    state: {
      userId: c.userId,
      version: c.version,
      at: c.at,
      aggregate: {
        status: c.current.status,
        activity: c.current.activity,
        customStatus: c.current.customStatus,
        source: c.current.source,
      },
      observations: from.observations,
      override: from.override,
      lastActiveAt: from.lastActiveAt,
    },
    data: presenceChangedEvent(c).data as unknown as ChangeData,
  };
}

/** Plain JSON: every value in an entry is (times are finite ms, raw states are strings). */
export function encodeEntry(e: ClusterEntry): string {
  return JSON.stringify(e);
}

/** The entry, or null for text that is not one (a follower skips it rather than stopping). */
export function decodeEntry(text: string): ClusterEntry | null {
  let e: unknown;
  try {
    e = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof e !== 'object' || e === null) return null;
  const x = e as Partial<ChangeEntry> & Partial<DeleteEntry>;
  if (typeof x.node !== 'string') return null;
  if (x.kind === 'delete') return typeof x.userId === 'string' ? (x as DeleteEntry) : null;
  if (x.kind !== 'change' || typeof x.state !== 'object' || typeof x.data !== 'object') return null;
  const s = x.state;
  if (typeof s?.userId !== 'string' || typeof s.version !== 'number' || !Array.isArray(s.observations))
    return null;
  return x as ChangeEntry;
}
