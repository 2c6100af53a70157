/**
 * @module store/pg/presence-store
 * The presence store on PostgreSQL (`Async<PresenceStore>`): the engine's grouped writes, the
 * load at start, history, users and accounts, as store/presence-store.ts does on SQLite.
 *
 * One difference is deliberate: an aggregate write is conditional. Versions rise by one per
 * change, so writing version n lands only on a row at n - 1 (or where the user has none yet);
 * anything else means another node already made a change from the same state, and the whole
 * write is refused with `StaleVersionError` (rolled back, nothing stored). On SQLite a single
 * process owns the versions and the write is unconditional.
 */

import type pg from 'pg';

import type { StoreTx } from '../../core/changes';
import type {
  AccountRecord,
  AccountRef,
  AggregateRecord,
  AsyncPresenceStore,
  HistoryQuery,
  LinkResult,
  LoadedUser,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../../core/ports';
import type { DecayStep, Observation, Override } from '../../core/presence';
import { inPgTx, type PgTx } from './pool';

/** A conditional version write found the stored version was not the one before it. */
export class StaleVersionError extends Error {
  override name = 'StaleVersionError';
  constructor(
    readonly userId: string,
    readonly version: number,
  ) {
    super(
      `aggregate version ${version} of user ${userId} was refused: the stored version is not ${version - 1}`,
    );
  }
}

type Row = Record<string, unknown>;

const json = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);
const parse = <T>(text: unknown): T | null => (text === null ? null : (JSON.parse(text as string) as T));

const toUser = (r: Row): UserRecord => ({
  userId: r.user_id as string,
  displayName: r.display_name as string | null,
  timezone: r.timezone as string | null,
  createdAt: r.created_at as number,
  updatedAt: r.updated_at as number,
});

const toAccount = (r: Row): AccountRecord => ({
  platform: r.platform as AccountRecord['platform'],
  workspaceId: r.workspace_id as string,
  externalId: r.external_id as string,
  userId: r.user_id as string,
  createdAt: r.created_at as number,
});

const UPSERT_USER = `INSERT INTO users (user_id, display_name, timezone, created_at, updated_at)
  VALUES ($1, $2, $3, $4, $5)
  ON CONFLICT (user_id) DO UPDATE SET display_name = EXCLUDED.display_name, timezone = EXCLUDED.timezone,
    updated_at = EXCLUDED.updated_at`;
const UPSERT_OBS = `INSERT INTO observations (user_id, platform, device, status, activity, custom_status, source,
    raw, label, decay, observed_at, changed_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
  ON CONFLICT (user_id, platform, device) DO UPDATE SET status = EXCLUDED.status, activity = EXCLUDED.activity,
    custom_status = EXCLUDED.custom_status, source = EXCLUDED.source, raw = EXCLUDED.raw, label = EXCLUDED.label,
    decay = EXCLUDED.decay, observed_at = EXCLUDED.observed_at, changed_at = EXCLUDED.changed_at,
    expires_at = EXCLUDED.expires_at`;
const UPSERT_OVERRIDE = `INSERT INTO overrides (user_id, status, activity, custom_status, set_at, expires_at)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, activity = EXCLUDED.activity,
    custom_status = EXCLUDED.custom_status, set_at = EXCLUDED.set_at, expires_at = EXCLUDED.expires_at`;
// The conditional version write: the update happens only from the version before this one.
const WRITE_AGGREGATE = `INSERT INTO aggregates (user_id, status, activity, custom_status, source, version,
    last_active_at, updated_at)
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
  ON CONFLICT (user_id) DO UPDATE SET status = EXCLUDED.status, activity = EXCLUDED.activity,
    custom_status = EXCLUDED.custom_status, source = EXCLUDED.source, version = EXCLUDED.version,
    last_active_at = EXCLUDED.last_active_at, updated_at = EXCLUDED.updated_at
  WHERE aggregates.version = EXCLUDED.version - 1`;
const INSERT_TRANSITION = `INSERT INTO transitions (user_id, version, at, from_status, to_status, from_activity,
    to_activity, source, platform) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`;

export class PgPresenceStore implements AsyncPresenceStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly end: () => Promise<void>,
  ) {}

  private async apply(c: pg.PoolClient, op: WriteOp): Promise<void> {
    switch (op.op) {
      case 'user': {
        const u = op.user;
        await c.query(UPSERT_USER, [u.userId, u.displayName, u.timezone, u.createdAt, u.updatedAt]);
        return;
      }
      case 'observation': {
        const o = op.obs;
        await c.query(UPSERT_OBS, [
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
        ]);
        return;
      }
      case 'observation-delete':
        await c.query('DELETE FROM observations WHERE user_id = $1 AND platform = $2 AND device = $3', [
          op.userId,
          op.platform,
          op.device,
        ]);
        return;
      case 'override': {
        const ov = op.override;
        if (ov === null) await c.query('DELETE FROM overrides WHERE user_id = $1', [op.userId]);
        else
          await c.query(UPSERT_OVERRIDE, [
            op.userId,
            ov.status,
            ov.activity,
            json(ov.customStatus),
            ov.setAt,
            ov.expiresAt,
          ]);
        return;
      }
      case 'aggregate': {
        const a = op.aggregate;
        const r = await c.query(WRITE_AGGREGATE, [
          op.userId,
          a.status,
          a.activity,
          json(a.customStatus),
          a.source,
          a.version,
          a.lastActiveAt,
          a.updatedAt,
        ]);
        if (r.rowCount !== 1) throw new StaleVersionError(op.userId, a.version);
        return;
      }
      case 'transition': {
        const t = op.transition;
        await c.query(INSERT_TRANSITION, [
          t.userId,
          t.version,
          t.at,
          t.fromStatus,
          t.toStatus,
          t.fromActivity,
          t.toActivity,
          t.source,
          t.platform,
        ]);
        return;
      }
      case 'refresh':
        for (const o of op.observations) {
          await c.query(
            `UPDATE observations SET observed_at = $1, expires_at = $2
             WHERE user_id = $3 AND platform = $4 AND device = $5`,
            [o.observedAt, o.expiresAt, op.userId, o.platform, o.device],
          );
        }
        await c.query('UPDATE aggregates SET last_active_at = $1 WHERE user_id = $2', [
          op.lastActiveAt,
          op.userId,
        ]);
        return;
    }
  }

  async write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void | Promise<void>): Promise<void> {
    await inPgTx(this.pool, async (tx: PgTx) => {
      for (const op of ops) await this.apply(tx.client, op);
      await stage?.(tx);
    });
  }

  async loadAll(): Promise<LoadedUser[]> {
    const [users, observations, overrides, aggregates, accounts] = await Promise.all(
      ['users', 'observations', 'overrides', 'aggregates', 'accounts'].map(
        async (table) => (await this.pool.query<Row>(`SELECT * FROM ${table}`)).rows,
      ),
    );
    const byUser = new Map<string, LoadedUser>();
    for (const r of users ?? []) {
      byUser.set(r.user_id as string, {
        user: toUser(r),
        observations: [],
        override: null,
        aggregate: null,
        accounts: [],
      });
    }
    // Equal decay schedules are shared, so 100k inferred observations do not hold 100k copies.
    const decays = new Map<string, readonly DecayStep[]>();
    for (const r of observations ?? []) {
      let decay: readonly DecayStep[] | null = null;
      if (r.decay !== null) {
        const key = r.decay as string;
        decay = decays.get(key) ?? (JSON.parse(key) as DecayStep[]);
        decays.set(key, decay);
      }
      const obs: Observation = {
        platform: r.platform as Observation['platform'],
        device: r.device as string,
        status: r.status as Observation['status'],
        activity: r.activity as Observation['activity'],
        customStatus: parse(r.custom_status),
        source: r.source as Observation['source'],
        raw: JSON.parse(r.raw as string) as unknown,
        label: r.label as string,
        decay,
        observedAt: r.observed_at as number,
        changedAt: r.changed_at as number,
        expiresAt: r.expires_at as number,
      };
      byUser.get(r.user_id as string)?.observations.push(obs);
    }
    for (const r of overrides ?? []) {
      const u = byUser.get(r.user_id as string);
      if (u === undefined) continue;
      const override: Override = {
        status: r.status as Override['status'],
        activity: r.activity as Override['activity'],
        customStatus: parse(r.custom_status),
        setAt: r.set_at as number,
        expiresAt: r.expires_at as number,
      };
      byUser.set(u.user.userId, { ...u, override });
    }
    for (const r of aggregates ?? []) {
      const u = byUser.get(r.user_id as string);
      if (u === undefined) continue;
      const aggregate: AggregateRecord = {
        status: r.status as AggregateRecord['status'],
        activity: r.activity as AggregateRecord['activity'],
        customStatus: parse(r.custom_status),
        source: r.source as AggregateRecord['source'],
        version: r.version as number,
        lastActiveAt: r.last_active_at as number | null,
        updatedAt: r.updated_at as number,
      };
      byUser.set(u.user.userId, { ...u, aggregate });
    }
    for (const r of accounts ?? []) {
      const a = toAccount(r);
      byUser.get(a.userId)?.accounts.push({
        platform: a.platform,
        workspaceId: a.workspaceId,
        externalId: a.externalId,
      });
    }
    return [...byUser.values()];
  }

  async history(userId: string, q: HistoryQuery): Promise<TransitionRecord[]> {
    const { rows } = await this.pool.query<Row>(
      `SELECT * FROM transitions WHERE user_id = $1 AND at >= $2 AND at <= $3
       ORDER BY at DESC, version DESC LIMIT $4`,
      [userId, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit],
    );
    return rows.map((r) => ({
      userId: r.user_id as string,
      version: r.version as number,
      at: r.at as number,
      fromStatus: r.from_status as TransitionRecord['fromStatus'],
      toStatus: r.to_status as TransitionRecord['toStatus'],
      fromActivity: r.from_activity as TransitionRecord['fromActivity'],
      toActivity: r.to_activity as TransitionRecord['toActivity'],
      source: r.source as TransitionRecord['source'],
      platform: r.platform as string | null,
    }));
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const { rows } = await this.pool.query<Row>('SELECT * FROM users WHERE user_id = $1', [userId]);
    return rows[0] === undefined ? null : toUser(rows[0]);
  }

  async accountsOf(userId: string): Promise<AccountRecord[]> {
    const { rows } = await this.pool.query<Row>(
      'SELECT * FROM accounts WHERE user_id = $1 ORDER BY platform, workspace_id, external_id',
      [userId],
    );
    return rows.map(toAccount);
  }

  /** One statement: the insert, or (on conflict) the owner the account already has. */
  async linkAccount(userId: string, a: AccountRef, now: number): Promise<LinkResult> {
    const key = [a.platform, a.workspaceId, a.externalId];
    const { rows } = await this.pool.query<{ user_id: string }>(
      `WITH ins AS (
         INSERT INTO accounts (platform, workspace_id, external_id, user_id, created_at)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING user_id)
       SELECT user_id FROM ins
       UNION ALL SELECT user_id FROM accounts WHERE platform = $1 AND workspace_id = $2 AND external_id = $3`,
      [...key, userId, now],
    );
    let owner = rows[0]?.user_id;
    if (owner === undefined) {
      // The conflicting row was committed by another transaction after this statement began.
      const again = await this.pool.query<{ user_id: string }>(
        'SELECT user_id FROM accounts WHERE platform = $1 AND workspace_id = $2 AND external_id = $3',
        key,
      );
      owner = again.rows[0]?.user_id ?? userId;
    }
    return owner === userId ? { linked: true } : { linked: false, ownerId: owner };
  }

  async unlinkAccount(userId: string, a: AccountRef): Promise<boolean> {
    const r = await this.pool.query(
      'DELETE FROM accounts WHERE user_id = $1 AND platform = $2 AND workspace_id = $3 AND external_id = $4',
      [userId, a.platform, a.workspaceId, a.externalId],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async deleteUser(userId: string, stage?: (tx: StoreTx) => void | Promise<void>): Promise<boolean> {
    // ON DELETE CASCADE removes accounts, observations, overrides, aggregates, transitions,
    // connections and privacy rows; the trigger, others' privacy rows naming the user.
    return inPgTx(this.pool, async (tx) => {
      const r = await tx.client.query('DELETE FROM users WHERE user_id = $1', [userId]);
      await stage?.(tx);
      return (r.rowCount ?? 0) > 0;
    });
  }

  async probe(now: number): Promise<void> {
    await inPgTx(this.pool, async ({ client }) => {
      await client.query('INSERT INTO store_probe (checked_at) VALUES ($1)', [now]);
      await client.query('DELETE FROM store_probe');
    });
  }

  close(): Promise<void> {
    return this.end();
  }
}
