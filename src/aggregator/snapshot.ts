/**
 * @module aggregator/snapshot
 * Snapshots of the hot state, for a fast restart (`PresenceStore.snapshots`, SQLite).
 *
 * Writing: the users (and then the linked accounts) are encoded from memory a part at a time,
 * yielding between parts, so the event loop is never held for long. Memory may move on while the
 * parts are written; that is why the snapshot covers the change sequence as it was when it
 * began, and a load reads from their rows every user with a change after it. A user is encoded
 * as last committed: from its undo record while a change of it waits for its commit, and not at
 * all when its creation has not committed yet. Its times may be later than the stored rows' (a
 * refresh moves them in memory first), which is what refresh persistence would write anyway.
 *
 * Loading: the current snapshot's users and accounts, except those changed since, whose rows are
 * read instead (a user changed and then deleted has none, and is gone); then the packed refresh
 * times of the slots written since, and of the users read from rows. A snapshot that is missing,
 * partial, of another format or schema, or whose part fails its checksum is not used: the engine
 * reads every row, as without one.
 */

import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type { PresenceSnapshots } from '../core/ports';
import type { Directory } from './directory';
import {
  ACCOUNTS_PART,
  PartDecoder,
  PartEncoder,
  SNAPSHOT_FORMAT,
  SnapshotFormatError,
  USERS_PART,
} from './snapshot-codec';
import { UserState, type UserTable } from './user-state';

const yieldTurn = (): Promise<void> => new Promise<void>((resolve) => setImmediate(resolve));

/** Change log entries dropped per transaction once a snapshot covers them. */
const TRIM_BATCH = 20_000;

export interface SnapshotParts {
  readonly snapshots: PresenceSnapshots;
  readonly table: UserTable;
  readonly directory: Directory;
  readonly clock: Clock;
  readonly log: Log;
  /** Users (or accounts) per part: a part is encoded and stored in one turn of the event loop. */
  readonly partRecords: number;
}

export class SnapshotWriter {
  private running: Promise<boolean> | null = null;
  private next: Promise<boolean> | null = null;

  constructor(private readonly o: SnapshotParts) {}

  /**
   * Writes a snapshot; resolves true once it is the current one, false when the store refused a
   * part (the partial one is ignored, and dropped by the next). One at a time: a call while one
   * is written waits for it and writes one more, for every caller meanwhile.
   */
  write(): Promise<boolean> {
    if (this.next !== null) return this.next;
    if (this.running === null) return this.start();
    const next = this.running.then(() => {
      this.next = null;
      return this.start();
    });
    this.next = next;
    return next;
  }

  private start(): Promise<boolean> {
    const run = this.run();
    this.running = run;
    void run.then(() => {
      if (this.running === run) this.running = null;
    });
    return run;
  }

  private async run(): Promise<boolean> {
    const { snapshots, table, directory, clock, log, partRecords } = this.o;
    const started = clock.now();
    try {
      const w = snapshots.begin(SNAPSHOT_FORMAT);
      const enc = new PartEncoder();
      let parts = 0;
      let users = 0;
      const flush = async (kind: number): Promise<void> => {
        w.part(enc.finish());
        parts += 1;
        enc.start(kind);
        await yieldTurn();
      };
      enc.start(USERS_PART);
      // A live iterator: users added meanwhile are visited too (and read from rows at load).
      for (const u of table.byId.values()) {
        if (u.deleted || u.undo?.created === true) continue;
        enc.user(u.undo ?? u);
        users += 1;
        if (enc.records >= partRecords) await flush(USERS_PART);
      }
      if (enc.records > 0) await flush(ACCOUNTS_PART);
      else enc.start(ACCOUNTS_PART);
      for (const [userId, account] of directory.linkedAccounts()) {
        enc.account(userId, account);
        if (enc.records >= partRecords) await flush(ACCOUNTS_PART);
      }
      if (enc.records > 0) w.part(enc.finish());
      w.finish(clock.now());
      log.info({ users, parts, seq: w.seq, ms: clock.now() - started }, 'snapshot written');
      while (snapshots.trim(TRIM_BATCH) === TRIM_BATCH) await yieldTurn();
      return true;
    } catch (error) {
      log.warn({ err: error }, 'snapshot not written; the next start reads the rows it would have covered');
      return false;
    }
  }
}

/** What a load from a snapshot gives the engine: its users, and the refresh slots to apply. */
export interface SnapshotLoad {
  readonly users: UserState[];
  /** Slots of packed refresh times to apply over it (written since, or of a user read from rows). */
  readonly slots: ReadonlySet<number>;
  /** Users read from their rows, having changed since the snapshot began. */
  readonly reread: number;
}

/** Loads the current snapshot into the table and the directory, or returns null (see the module). */
export function loadSnapshot(o: SnapshotParts, slotOf: (userId: string) => number): SnapshotLoad | null {
  const { snapshots, table, directory, log } = o;
  const header = snapshots.latest(SNAPSHOT_FORMAT);
  if (header === null) return null;
  const changes = snapshots.changedSince(header.seq);
  const changed = new Set(changes.users);
  const users: UserState[] = [];
  try {
    for (let i = 0; i < header.parts; i++) {
      const data = snapshots.readPart(header, i);
      if (data === null) throw new SnapshotFormatError(`part ${i + 1} is missing or fails its checksum`);
      const d = new PartDecoder(data);
      if (d.kind === USERS_PART) {
        while (!d.done) {
          const id = d.id();
          if (changed.has(id)) {
            d.user(null);
            continue;
          }
          // Twice only for a user deleted and created again while the snapshot was written, and so
          // changed since: anything else is not a snapshot this code wrote.
          if (table.byId.has(id)) throw new SnapshotFormatError(`user ${id} twice`);
          const u = new UserState(id);
          d.user(u);
          table.add(u);
          users.push(u);
        }
      } else {
        while (!d.done) {
          const id = d.id();
          const account = d.account();
          if (changed.has(id)) continue;
          const u = table.byId.get(id);
          if (u === undefined) throw new SnapshotFormatError('an account of a user not in the snapshot');
          directory.adoptAccount(u, account);
        }
      }
    }
  } catch (error) {
    log.warn({ err: error }, 'snapshot not used; reading every row');
    directory.clear();
    return null;
  }
  for (const loaded of snapshots.loadUsers(changes.users)) users.push(directory.adopt(loaded));
  const slots = new Set(changes.slots);
  for (const id of changes.users) slots.add(slotOf(id));
  return { users, slots, reread: changes.users.length };
}
