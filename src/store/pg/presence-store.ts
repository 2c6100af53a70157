/**
 * @module store/pg/presence-store
 * The presence store on PostgreSQL (`Async<PresenceStore>`): the engine's grouped writes, the
 * load at start, history, users and accounts, as store/presence-store.ts does on SQLite.
 *
 * A write's ops go to the database in one statement, `presence_apply` (migrations/pg/0006),
 * which applies them in order. One difference is deliberate: an aggregate write is conditional.
 * Versions rise by one per change, so writing version n lands only on a row at n - 1 (or where
 * the user has none yet); anything else means another node already made a change from the same
 * state, and the whole write is refused with `StaleVersionError` (rolled back, nothing stored).
 * On SQLite a single process owns the versions and the write is unconditional.
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
} from '../rows/presence';
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

const parse = <T>(text: unknown): T | null => (text === null ? null : (JSON.parse(text as string) as T));

/** A write op as `presence_apply` (migrations/pg/0006) takes it: keyed by column name. */
function encode(op: WriteOp): Record<string, unknown> {
  switch (op.op) {
    case 'user':
      return { op: 'user', ...userValues(op.user) };
    case 'observation':
      return { op: 'observation', ...observationValues(op.userId, op.obs) };
    case 'observation-delete':
      return { op: 'observation-delete', user_id: op.userId, platform: op.platform, device: op.device };
    case 'override':
      if (op.override === null) return { op: 'override-delete', user_id: op.userId };
      return { op: 'override', ...overrideValues(op.userId, op.override) };
    case 'aggregate':
      return { op: 'aggregate', ...aggregateValues(op.userId, op.aggregate) };
    case 'transition':
      return { op: 'transition', ...transitionValues(op.transition) };
    case 'refresh':
      return {
        op: 'refresh',
        user_id: op.userId,
        last_active_at: op.lastActiveAt,
        observations: op.observations.map((o) => ({
          platform: o.platform,
          device: o.device,
          observed_at: o.observedAt,
          expires_at: o.expiresAt,
        })),
      };
  }
}

/** presence_apply's refusal of a stale version (its SQLSTATE and DETAIL). */
function staleVersion(error: unknown): StaleVersionError | null {
  const e = error as { code?: string; detail?: string };
  if (e.code !== 'PS001' || e.detail === undefined) return null;
  const { userId, version } = JSON.parse(e.detail) as { userId: string; version: number };
  return new StaleVersionError(userId, version);
}

export class PgPresenceStore implements AsyncPresenceStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly end: () => Promise<void>,
  ) {}

  /** One round trip for the ops (`presence_apply`), then `stage`, in one transaction. */
  async write(ops: readonly WriteOp[], stage?: (tx: StoreTx) => void | Promise<void>): Promise<void> {
    await inPgTx(this.pool, async (tx: PgTx) => {
      if (ops.length > 0) {
        try {
          await tx.client.query('SELECT presence_apply($1::jsonb)', [JSON.stringify(ops.map(encode))]);
        } catch (error) {
          throw staleVersion(error) ?? error;
        }
      }
      await stage?.(tx);
    });
  }

  async loadAll(): Promise<LoadedUser[]> {
    const all = async <R extends object = Row>(table: string): Promise<R[]> =>
      (await this.pool.query<R>(`SELECT * FROM ${table}`)).rows;
    const [users, observations, overrides, aggregates, accounts] = await Promise.all([
      all<UserRow>('users'),
      all('observations'),
      all('overrides'),
      all('aggregates'),
      all<AccountRow>('accounts'),
    ]);
    const byUser = new Map<string, LoadedUser>();
    for (const r of users ?? []) {
      byUser.set(r.user_id, {
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
    const { rows } = await this.pool.query<TransitionRow>(
      `SELECT * FROM transitions WHERE user_id = $1 AND at >= $2 AND at <= $3
       ORDER BY at DESC, version DESC LIMIT $4`,
      [userId, q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER, q.limit],
    );
    return rows.map(toTransition);
  }

  async getUser(userId: string): Promise<UserRecord | null> {
    const { rows } = await this.pool.query<UserRow>('SELECT * FROM users WHERE user_id = $1', [userId]);
    return rows[0] === undefined ? null : toUser(rows[0]);
  }

  async accountsOf(userId: string): Promise<AccountRecord[]> {
    const { rows } = await this.pool.query<AccountRow>(
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
