/**
 * @module store/presence-store
 * The SQLite side of the presence engine: prepared statements for the engine's grouped writes,
 * the load at start, history, users and accounts.
 */

import type { StoreTx } from '../core/changes';
import type {
  AccountRecord,
  AccountRef,
  AggregateRecord,
  HistoryQuery,
  LinkResult,
  LoadedUser,
  PresenceStore,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../core/ports';
import type { Activity, CustomStatus, DecayStep, Override, Platform, Source, Status } from '../core/presence';
import type { Db } from './db';
import { sqliteTx } from './tx';

interface ObservationRow {
  user_id: string;
  platform: Platform;
  device: string;
  status: Status;
  activity: Activity | null;
  custom_status: string | null;
  source: Source;
  raw: string;
  label: string;
  decay: string | null;
  observed_at: number;
  changed_at: number;
  expires_at: number;
}

interface OverrideRow {
  user_id: string;
  status: Status;
  activity: Activity | null;
  custom_status: string | null;
  set_at: number;
  expires_at: number;
}

interface AggregateRow {
  user_id: string;
  status: Status;
  activity: Activity | null;
  custom_status: string | null;
  source: Source | null;
  version: number;
  last_active_at: number | null;
  updated_at: number;
}

interface UserRow {
  user_id: string;
  display_name: string | null;
  timezone: string | null;
  created_at: number;
  updated_at: number;
}

interface AccountRow {
  platform: Platform;
  workspace_id: string;
  external_id: string;
  user_id: string;
  created_at: number;
}

interface TransitionRow {
  user_id: string;
  version: number;
  at: number;
  from_status: Status;
  to_status: Status;
  from_activity: Activity | null;
  to_activity: Activity | null;
  source: Source | null;
  platform: string | null;
}

const json = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);
const parseCustomStatus = (text: string | null): CustomStatus | null =>
  text === null ? null : (JSON.parse(text) as CustomStatus);

const toUser = (r: UserRow): UserRecord => ({
  userId: r.user_id,
  displayName: r.display_name,
  timezone: r.timezone,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const toAccount = (r: AccountRow): AccountRecord => ({
  platform: r.platform,
  workspaceId: r.workspace_id,
  externalId: r.external_id,
  userId: r.user_id,
  createdAt: r.created_at,
});

export class SqlitePresenceStore implements PresenceStore {
  private readonly stmt;
  private readonly runOps: (ops: readonly WriteOp[], stage?: (tx: StoreTx) => void) => void;

  constructor(private readonly db: Db) {
    this.stmt = {
      upsertUser: db.prepare(
        `INSERT INTO users (user_id, display_name, timezone, created_at, updated_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT(user_id) DO UPDATE SET display_name = excluded.display_name, timezone = excluded.timezone,
           updated_at = excluded.updated_at`,
      ),
      upsertObs: db.prepare(
        `INSERT OR REPLACE INTO observations (user_id, platform, device, status, activity, custom_status, source, raw,
           label, decay, observed_at, changed_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      refreshObs: db.prepare(
        'UPDATE observations SET observed_at = ?, expires_at = ? WHERE user_id = ? AND platform = ? AND device = ?',
      ),
      deleteObs: db.prepare('DELETE FROM observations WHERE user_id = ? AND platform = ? AND device = ?'),
      upsertOverride: db.prepare(
        `INSERT OR REPLACE INTO overrides (user_id, status, activity, custom_status, set_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      deleteOverride: db.prepare('DELETE FROM overrides WHERE user_id = ?'),
      upsertAggregate: db.prepare(
        `INSERT OR REPLACE INTO aggregates (user_id, status, activity, custom_status, source, version, last_active_at,
           updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      touchAggregate: db.prepare('UPDATE aggregates SET last_active_at = ? WHERE user_id = ?'),
      insertTransition: db.prepare(
        `INSERT INTO transitions (user_id, version, at, from_status, to_status, from_activity, to_activity, source,
           platform) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
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
      case 'user': {
        const u = op.user;
        s.upsertUser.run(u.userId, u.displayName, u.timezone, u.createdAt, u.updatedAt);
        return;
      }
      case 'observation': {
        const o = op.obs;
        s.upsertObs.run(
          op.userId,
          o.platform,
          o.device,
          o.status,
          o.activity,
          json(o.customStatus),
          o.source,
          JSON.stringify(o.raw ?? null),
          o.label,
          json(o.decay),
          o.observedAt,
          o.changedAt,
          o.expiresAt,
        );
        return;
      }
      case 'observation-delete':
        s.deleteObs.run(op.userId, op.platform, op.device);
        return;
      case 'override': {
        const ov = op.override;
        if (ov === null) s.deleteOverride.run(op.userId);
        else
          s.upsertOverride.run(
            op.userId,
            ov.status,
            ov.activity,
            json(ov.customStatus),
            ov.setAt,
            ov.expiresAt,
          );
        return;
      }
      case 'aggregate': {
        const a = op.aggregate;
        s.upsertAggregate.run(
          op.userId,
          a.status,
          a.activity,
          json(a.customStatus),
          a.source,
          a.version,
          a.lastActiveAt,
          a.updatedAt,
        );
        return;
      }
      case 'transition': {
        const t = op.transition;
        s.insertTransition.run(
          t.userId,
          t.version,
          t.at,
          t.fromStatus,
          t.toStatus,
          t.fromActivity,
          t.toActivity,
          t.source,
          t.platform,
        );
        return;
      }
      case 'refresh':
        for (const o of op.observations)
          s.refreshObs.run(o.observedAt, o.expiresAt, op.userId, o.platform, o.device);
        s.touchAggregate.run(op.lastActiveAt, op.userId);
        return;
    }
  }

  write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void): void {
    this.runOps(ops, stage);
  }

  loadAll(): LoadedUser[] {
    const byUser = new Map<string, LoadedUser>();
    for (const row of this.db.prepare('SELECT * FROM users').iterate() as IterableIterator<UserRow>) {
      byUser.set(row.user_id, {
        user: toUser(row),
        observations: [],
        override: null,
        aggregate: null,
        accounts: [],
      });
    }
    // Equal decay schedules are shared, so 100k inferred observations do not hold 100k copies.
    const decays = new Map<string, readonly DecayStep[]>();
    for (const r of this.db
      .prepare('SELECT * FROM observations')
      .iterate() as IterableIterator<ObservationRow>) {
      let decay: readonly DecayStep[] | null = null;
      if (r.decay !== null) {
        decay = decays.get(r.decay) ?? (JSON.parse(r.decay) as DecayStep[]);
        decays.set(r.decay, decay);
      }
      byUser.get(r.user_id)?.observations.push({
        platform: r.platform,
        device: r.device,
        status: r.status,
        activity: r.activity,
        customStatus: parseCustomStatus(r.custom_status),
        source: r.source,
        raw: JSON.parse(r.raw) as unknown,
        label: r.label,
        decay,
        observedAt: r.observed_at,
        changedAt: r.changed_at,
        expiresAt: r.expires_at,
      });
    }
    for (const r of this.db.prepare('SELECT * FROM overrides').iterate() as IterableIterator<OverrideRow>) {
      const u = byUser.get(r.user_id);
      if (u === undefined) continue;
      const override: Override = {
        status: r.status,
        activity: r.activity,
        customStatus: parseCustomStatus(r.custom_status),
        setAt: r.set_at,
        expiresAt: r.expires_at,
      };
      byUser.set(r.user_id, { ...u, override });
    }
    for (const r of this.db.prepare('SELECT * FROM aggregates').iterate() as IterableIterator<AggregateRow>) {
      const u = byUser.get(r.user_id);
      if (u === undefined) continue;
      const aggregate: AggregateRecord = {
        status: r.status,
        activity: r.activity,
        customStatus: parseCustomStatus(r.custom_status),
        source: r.source,
        version: r.version,
        lastActiveAt: r.last_active_at,
        updatedAt: r.updated_at,
      };
      byUser.set(r.user_id, { ...u, aggregate });
    }
    for (const r of this.db.prepare('SELECT * FROM accounts').iterate() as IterableIterator<AccountRow>) {
      byUser
        .get(r.user_id)
        ?.accounts.push({ platform: r.platform, workspaceId: r.workspace_id, externalId: r.external_id });
    }
    return [...byUser.values()];
  }

  history(userId: string, q: HistoryQuery): TransitionRecord[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM transitions WHERE user_id = ? AND at >= ? AND at <= ? ORDER BY at DESC, version DESC LIMIT ?`,
      )
      .all(userId, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit) as TransitionRow[];
    return rows.map((r) => ({
      userId: r.user_id,
      version: r.version,
      at: r.at,
      fromStatus: r.from_status,
      toStatus: r.to_status,
      fromActivity: r.from_activity,
      toActivity: r.to_activity,
      source: r.source,
      platform: r.platform,
    }));
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
    // ON DELETE CASCADE removes accounts, observations, overrides, aggregates and transitions.
    let gone = false;
    this.runOps([], (tx) => {
      gone = this.stmt.deleteUser.run(userId).changes > 0;
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
