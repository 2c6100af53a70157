/**
 * What the snapshot tests compare: an engine's whole hot state, as plain data, and loads of one
 * file with its snapshot and without it.
 */
import type { Directory } from '../../src/aggregator/directory';
import { PresenceEngine } from '../../src/aggregator/engine';
import type { UserTable } from '../../src/aggregator/user-state';
import { FakeClock } from '../../src/core/clock';
import type { Log } from '../../src/core/log';
import { Ladder } from '../../src/core/presence';
import type { Db } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { asyncPresenceOn } from './engine';

/** Every user's hot state (what a load sets, the first boundary included) and the linked accounts. */
export function hotState(engine: PresenceEngine): Record<string, unknown> {
  const inner = engine as unknown as { table: UserTable; directory: Directory };
  const users: Record<string, unknown> = {};
  for (const u of inner.table.byId.values()) {
    users[u.userId] = {
      observations: u.observations,
      override: u.override,
      status: u.status,
      activity: u.activity,
      customStatus: u.customStatus,
      source: u.source,
      version: u.version,
      lastActiveAt: u.lastActiveAt,
      aggregateAt: u.aggregateAt,
      dueAt: u.dueAt,
      identityOnly: u.identityOnly,
    };
  }
  const accounts = [...inner.directory.linkedAccounts()]
    .map(([userId, a]) => `${userId} ${a.platform} ${a.workspaceId} ${a.externalId}`)
    .sort();
  return { users, accounts };
}

export interface Logged {
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}

/** A log that keeps what it is told. */
export function keptLog(): Log & { lines: Logged[] } {
  const lines: Logged[] = [];
  const keep = (obj: object, msg = ''): void => void lines.push({ msg, obj: obj as Record<string, unknown> });
  return { lines, debug: keep, info: keep, warn: keep, error: keep };
}

/** Loads the file as a start would (its snapshot, if usable), at `now`. */
export async function loadWithSnapshot(db: Db, now: number, log?: Log): Promise<PresenceEngine> {
  const engine = new PresenceEngine({
    clock: new FakeClock(now),
    store: asyncPresenceOn(db),
    ladder: new Ladder(),
    identityOnlyPlatforms: ['linkedin'],
    ...(log === undefined ? {} : { log }),
  });
  await engine.load();
  return engine;
}

/** Loads the file from its rows only, as a store without snapshots does, at `now`. */
export async function loadFromRows(db: Db, now: number): Promise<PresenceEngine> {
  const store = new SqlitePresenceStore(db);
  // The store as one without snapshots: the engine then reads every row.
  Object.defineProperty(store, 'snapshots', { value: undefined });
  const engine = new PresenceEngine({
    clock: new FakeClock(now),
    store: asyncPresenceOn(db, store),
    ladder: new Ladder(),
    identityOnlyPlatforms: ['linkedin'],
  });
  await engine.load();
  return engine;
}
