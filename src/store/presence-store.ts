/**
 * @module store/presence-store
 * The SQLite side of the presence engine: prepared statements for the engine's grouped writes,
 * the load at start, history, users and accounts.
 */

import type { StoreTx } from '../core/changes';
import type {
  AccountRecord,
  AccountRef,
  HistoryQuery,
  LinkResult,
  LoadedUser,
  PresenceStore,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../core/ports';
import type { Activity, CustomStatus, DecayStep, Platform, Source, Status } from '../core/presence';
import type { Db } from './db';
import { SqliteRefreshSlots } from './refresh-slots';
import { SqliteSnapshots } from './snapshot';
import {
  type AccountRow,
  aggregateValues,
  observationValues,
  overrideValues,
  toAccount,
  toTransition,
  toUser,
  transitionValues,
  type TransitionRow,
  type UserRow,
  userValues,
} from './rows/presence';
import { sqliteTx } from './tx';

// One row per user and observation (a user without any has one row, its observation columns
// null), for the page of users after the given id, in user order.
const LOAD_PAGE = `SELECT u.user_id, u.display_name, u.timezone, u.created_at, u.updated_at,
    a.status, a.activity, a.custom_status, a.source, a.version, a.last_active_at, a.updated_at, NULL,
    ov.status, ov.activity, ov.custom_status, ov.set_at, ov.expires_at,
    o.platform, o.device, o.status, o.activity, o.custom_status, o.source, o.raw, o.label, o.decay,
    o.observed_at, o.changed_at, o.expires_at
  FROM (SELECT * FROM users WHERE user_id > ? ORDER BY user_id LIMIT ?) u
  LEFT JOIN aggregates a ON a.user_id = u.user_id
  LEFT JOIN overrides ov ON ov.user_id = u.user_id
  LEFT JOIN observations o ON o.user_id = u.user_id
  ORDER BY u.user_id`;
const LOAD_ACCOUNTS = `SELECT user_id, platform, workspace_id, external_id FROM accounts
  WHERE user_id > ? AND user_id <= ?`;
// The same for the users of a JSON list of ids (the users a snapshot is brought up to date with).
const LOAD_LISTED = LOAD_PAGE.replace(
  'WHERE user_id > ? ORDER BY user_id LIMIT ?',
  'WHERE user_id IN (SELECT value FROM json_each(?))',
);
const LOAD_LISTED_ACCOUNTS = `SELECT user_id, platform, workspace_id, external_id FROM accounts
  WHERE user_id IN (SELECT value FROM json_each(?)) ORDER BY user_id, platform, workspace_id, external_id`;

type LoadRow = [
  userId: string,
  displayName: string | null,
  timezone: string | null,
  createdAt: number,
  updatedAt: number,
  aggStatus: Status | null,
  aggActivity: Activity | null,
  aggCustomStatus: string | null,
  aggSource: Source | null,
  version: number | null,
  lastActiveAt: number | null,
  aggUpdatedAt: number | null,
  unused: null,
  ovStatus: Status | null,
  ovActivity: Activity | null,
  ovCustomStatus: string | null,
  setAt: number | null,
  ovExpiresAt: number | null,
  platform: Platform | null,
  device: string | null,
  status: Status | null,
  activity: Activity | null,
  customStatus: string | null,
  source: Source | null,
  raw: string | null,
  label: string | null,
  decay: string | null,
  observedAt: number | null,
  changedAt: number | null,
  expiresAt: number | null,
];
type AccountTuple = [userId: string, platform: Platform, workspaceId: string, externalId: string];

/**
 * Shares equal values among a load's rows: SQLite hands back a new string per row, and 1,000,000
 * users whose device reported `heartbeat online` would otherwise hold it 1,000,000 times. Values
 * are never mutated by the engine (observations are replaced whole when they change). Bounded, so
 * rows of distinct values (custom status texts) do not grow it without end.
 */
class Interner<T> {
  private readonly seen = new Map<string, T>();

  get(key: string, make: () => T): T {
    const hit = this.seen.get(key);
    if (hit !== undefined) return hit;
    const value = make();
    if (this.seen.size < 10_000) this.seen.set(key, value);
    return value;
  }

  same<S extends string>(this: Interner<string>, text: S): S {
    return this.get(text, () => text) as S;
  }
}

/** Joined load rows of a page of users (in user order) and their accounts, to `LoadedUser`s. */
class LoadMapper {
  private readonly texts = new Interner<string>();
  private readonly raws = new Interner<unknown>();
  private readonly decays = new Interner<readonly DecayStep[]>();
  private readonly statuses = new Interner<CustomStatus>();

  private parse<T>(text: string | null, seen: Interner<T>): T | null {
    return text === null ? null : seen.get(text, () => JSON.parse(text) as T);
  }

  *users(rows: readonly LoadRow[], accountRows: readonly AccountTuple[]): Generator<LoadedUser> {
    const { texts, raws, decays, statuses } = this;
    const linked = new Map<string, AccountRef[]>();
    for (const [userId, platform, workspaceId, externalId] of accountRows) {
      let list = linked.get(userId);
      if (list === undefined) linked.set(userId, (list = []));
      list.push({ platform, workspaceId, externalId });
    }
    let current: LoadedUser | null = null;
    for (const r of rows) {
      if (current === null || current.user.userId !== r[0]) {
        if (current !== null) yield current;
        current = {
          user: { userId: r[0], displayName: r[1], timezone: r[2], createdAt: r[3], updatedAt: r[4] },
          observations: [],
          override:
            r[13] === null
              ? null
              : {
                  status: texts.same(r[13]),
                  activity: r[14] === null ? null : texts.same(r[14]),
                  customStatus: this.parse(r[15], statuses),
                  setAt: r[16]!,
                  expiresAt: r[17]!,
                },
          aggregate:
            r[5] === null
              ? null
              : {
                  status: texts.same(r[5]),
                  activity: r[6] === null ? null : texts.same(r[6]),
                  customStatus: this.parse(r[7], statuses),
                  source: r[8] === null ? null : texts.same(r[8]),
                  version: r[9]!,
                  lastActiveAt: r[10],
                  updatedAt: r[11]!,
                },
          accounts: linked.get(r[0]) ?? [],
        };
      }
      if (r[18] === null) continue;
      current.observations.push({
        platform: texts.same(r[18]),
        device: texts.same(r[19]!),
        status: texts.same(r[20]!),
        activity: r[21] === null ? null : texts.same(r[21]),
        customStatus: this.parse(r[22], statuses),
        source: texts.same(r[23]!),
        raw: this.parse(r[24], raws),
        label: texts.same(r[25]!),
        decay: this.parse(r[26], decays),
        observedAt: r[27]!,
        changedAt: r[28]!,
        expiresAt: r[29]!,
      });
    }
    if (current !== null) yield current;
  }
}

export class SqlitePresenceStore implements PresenceStore {
  readonly refreshSlots: SqliteRefreshSlots;
  readonly snapshots: SqliteSnapshots;
  private readonly stmt;
  private readonly runOps: (ops: readonly WriteOp[], stage?: (tx: StoreTx) => void) => void;

  constructor(private readonly db: Db) {
    this.refreshSlots = new SqliteRefreshSlots(db);
    this.snapshots = new SqliteSnapshots(db, (ids) => this.loadUsers(ids));
    this.stmt = {
      upsertUser: db.prepare(
        `INSERT INTO users (user_id, display_name, timezone, created_at, updated_at) VALUES (@user_id, @display_name, @timezone, @created_at, @updated_at)
         ON CONFLICT(user_id) DO UPDATE SET display_name = excluded.display_name, timezone = excluded.timezone,
           updated_at = excluded.updated_at`,
      ),
      upsertObs: db.prepare(
        `INSERT OR REPLACE INTO observations (user_id, platform, device, status, activity, custom_status, source, raw,
           label, decay, observed_at, changed_at, expires_at)
         VALUES (@user_id, @platform, @device, @status, @activity, @custom_status, @source, @raw, @label, @decay,
           @observed_at, @changed_at, @expires_at)`,
      ),
      refreshObs: db.prepare(
        'UPDATE observations SET observed_at = ?, expires_at = ? WHERE user_id = ? AND platform = ? AND device = ?',
      ),
      deleteObs: db.prepare('DELETE FROM observations WHERE user_id = ? AND platform = ? AND device = ?'),
      upsertOverride: db.prepare(
        `INSERT OR REPLACE INTO overrides (user_id, status, activity, custom_status, set_at, expires_at)
         VALUES (@user_id, @status, @activity, @custom_status, @set_at, @expires_at)`,
      ),
      deleteOverride: db.prepare('DELETE FROM overrides WHERE user_id = ?'),
      upsertAggregate: db.prepare(
        `INSERT OR REPLACE INTO aggregates (user_id, status, activity, custom_status, source, version, last_active_at,
           updated_at)
         VALUES (@user_id, @status, @activity, @custom_status, @source, @version, @last_active_at, @updated_at)`,
      ),
      touchAggregate: db.prepare('UPDATE aggregates SET last_active_at = ? WHERE user_id = ?'),
      insertTransition: db.prepare(
        `INSERT INTO transitions (user_id, version, at, from_status, to_status, from_activity, to_activity, source,
           platform)
         VALUES (@user_id, @version, @at, @from_status, @to_status, @from_activity, @to_activity, @source, @platform)`,
      ),
      getUser: db.prepare('SELECT * FROM users WHERE user_id = ?'),
      accountsOf: db.prepare(
        'SELECT * FROM accounts WHERE user_id = ? ORDER BY platform, workspace_id, external_id',
      ),
      findAccount: db.prepare(
        'SELECT user_id FROM accounts WHERE platform = ? AND workspace_id = ? AND external_id = ?',
      ),
      insertAccount: db.prepare(
        'INSERT INTO accounts (platform, workspace_id, external_id, user_id, created_at) VALUES (?, ?, ?, ?, ?)',
      ),
      deleteAccount: db.prepare(
        'DELETE FROM accounts WHERE user_id = ? AND platform = ? AND workspace_id = ? AND external_id = ?',
      ),
      deleteUser: db.prepare('DELETE FROM users WHERE user_id = ?'),
    };
    const tx = sqliteTx(db);
    this.runOps = db.transaction((ops: readonly WriteOp[], stage?: (tx: StoreTx) => void) => {
      for (const op of ops) this.apply(op);
      stage?.(tx);
    });
  }

  private apply(op: WriteOp): void {
    const s = this.stmt;
    switch (op.op) {
      case 'user':
        s.upsertUser.run(userValues(op.user));
        return;
      case 'observation':
        s.upsertObs.run(observationValues(op.userId, op.obs));
        return;
      case 'observation-delete':
        s.deleteObs.run(op.userId, op.platform, op.device);
        return;
      case 'override':
        if (op.override === null) s.deleteOverride.run(op.userId);
        else s.upsertOverride.run(overrideValues(op.userId, op.override));
        return;
      case 'aggregate':
        s.upsertAggregate.run(aggregateValues(op.userId, op.aggregate));
        return;
      case 'transition':
        s.insertTransition.run(transitionValues(op.transition));
        return;
      case 'refresh':
        for (const o of op.observations)
          s.refreshObs.run(o.observedAt, o.expiresAt, op.userId, o.platform, o.device);
        s.touchAggregate.run(op.lastActiveAt, op.userId);
        return;
      case 'check': // one writer: nothing is ever stale here
        return;
    }
  }

  write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void): void {
    this.runOps(ops, stage);
  }

  /**
   * Streams every user, a page of users at a time, each with its observations, override,
   * aggregate and accounts: one joined query in user order (no map of all users is built, so
   * what the load leaves behind is only what the engine keeps). Repeated small values (platform,
   * device, status, label, raw) are shared, not held once per row.
   */
  *loadAll(pageSize = 5000): Generator<LoadedUser> {
    const page = this.db.prepare(LOAD_PAGE).raw(true);
    const accounts = this.db.prepare(LOAD_ACCOUNTS).raw(true);
    const mapper = new LoadMapper();
    let after = '';
    for (;;) {
      const rows = page.all(after, pageSize) as LoadRow[];
      if (rows.length === 0) return;
      const last = rows[rows.length - 1]![0];
      yield* mapper.users(rows, accounts.all(after, last) as AccountTuple[]);
      after = last;
    }
  }

  /** The users of `ids` (those that exist) as `loadAll` gives them, in user order. */
  *loadUsers(ids: readonly string[], pageSize = 500): Generator<LoadedUser> {
    const page = this.db.prepare(LOAD_LISTED).raw(true);
    const accounts = this.db.prepare(LOAD_LISTED_ACCOUNTS).raw(true);
    const mapper = new LoadMapper();
    for (let i = 0; i < ids.length; i += pageSize) {
      const list = JSON.stringify(ids.slice(i, i + pageSize));
      yield* mapper.users(page.all(list) as LoadRow[], accounts.all(list) as AccountTuple[]);
    }
  }

  history(userId: string, q: HistoryQuery): TransitionRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM transitions WHERE user_id = ? AND at >= ? AND at <= ? ORDER BY at DESC, version DESC LIMIT ?`,
      )
      .all(userId, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit) as TransitionRow[];
    return rows.map(toTransition);
  }

  getUser(userId: string): UserRecord | null {
    const row = this.stmt.getUser.get(userId) as UserRow | undefined;
    return row === undefined ? null : toUser(row);
  }

  accountsOf(userId: string): AccountRecord[] {
    return (this.stmt.accountsOf.all(userId) as AccountRow[]).map(toAccount);
  }

  linkAccount(userId: string, a: AccountRef, now: number): LinkResult {
    return this.db.transaction((): LinkResult => {
      const owner = this.stmt.findAccount.get(a.platform, a.workspaceId, a.externalId) as
        { user_id: string } | undefined;
      if (owner !== undefined) {
        return owner.user_id === userId ? { linked: true } : { linked: false, ownerId: owner.user_id };
      }
      this.stmt.insertAccount.run(a.platform, a.workspaceId, a.externalId, userId, now);
      return { linked: true };
    })();
  }

  unlinkAccount(userId: string, a: AccountRef): boolean {
    return this.stmt.deleteAccount.run(userId, a.platform, a.workspaceId, a.externalId).changes > 0;
  }

  deleteUser(userId: string, stage?: (tx: StoreTx) => void): boolean {
    // ON DELETE CASCADE removes accounts, observations, overrides, aggregates and transitions;
    // the user's packed refresh times leave their slot in the same transaction.
    let gone = false;
    this.runOps([], (tx) => {
      gone = this.stmt.deleteUser.run(userId).changes > 0;
      this.refreshSlots.removeUser(userId);
      stage?.(tx);
    });
    return gone;
  }

  private probeTx: ((now: number) => void) | null = null;

  probe(now: number): void {
    if (this.probeTx === null) {
      const insert = this.db.prepare('INSERT INTO store_probe (checked_at, pad) VALUES (?, zeroblob(?))');
      const clear = this.db.prepare('DELETE FROM store_probe');
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      this.probeTx = this.db.transaction((at: number) => {
        insert.run(at, pageSize);
        clear.run();
      });
    }
    this.probeTx(now);
  }

  close(): void {
    this.db.close();
  }
}
