/**
 * @module store/pg/presence-store
 * The presence store on PostgreSQL (`Async<PresenceStore>`): the engine's grouped writes, the
 * load at start, history, users and accounts, as store/presence-store.ts does on SQLite.
 *
 * A write's ops go to the database in one statement, `presence_apply` (migrations/pg/0007, 0010),
 * which applies them in order. One difference is deliberate: versions are checked. Each user
 * whose presence the write changes comes with the version the engine holds as committed
 * (`expected`); a user whose stored version differs (another node changed it meanwhile) is stale,
 * its ops are skipped, the others' apply, and the write returns the stale users (the engine reads
 * them back and makes their change again on top: aggregator/group-commit.ts). An aggregate write
 * itself stays conditional (version n only over n - 1, or where the user has none yet): a user
 * another node inserts concurrently, which no lock can cover beforehand, fails the statement with
 * `StaleVersionError`, and the write is tried again with that user counted stale. On SQLite a
 * single process owns the versions and the write is unconditional.
 */

import type pg from 'pg';

import type { StoreTx } from '../../core/changes';
import {
  writeOpUser,
  type AccountRecord,
  type AccountRef,
  type AggregateRecord,
  type AsyncPresenceStore,
  type HistoryQuery,
  type LinkResult,
  type LoadedUser,
  type TransitionRecord,
  type UserRecord,
  type WriteOp,
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
import { inPgTx, type PgTx, type Queryable } from './pool';

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

const NO_USERS: ReadonlySet<string> = new Set();

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
    case 'check':
      throw new Error('a check op is not sent to presence_apply'); // see write
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

const staleSet = (found: readonly string[] | undefined): ReadonlySet<string> =>
  found === undefined || found.length === 0 ? NO_USERS : new Set(found);

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

  /**
   * One round trip for the ops (`presence_apply`), then `stage` (told the stale users), in one
   * transaction; resolves to the users refused as stale (see the module comment). Users named
   * only by `check` ops (nothing of them is written) are checked without a lock
   * (`presence_stale`, migrations/pg/0008); a write of checks alone is that one statement,
   * outside any transaction.
   */
  async write(
    ops: readonly WriteOp[],
    stage?: (tx: StoreTx, stale?: ReadonlySet<string>) => void | Promise<void>,
    expected?: ReadonlyMap<string, number>,
  ): Promise<ReadonlySet<string>> {
    const writes = ops.filter((op) => op.op !== 'check');
    const written = new Set<string>();
    for (const op of writes) written.add(writeOpUser(op));
    const versions: Record<string, number> = {};
    const checkedIds: string[] = [];
    const checkedVersions: number[] = [];
    for (const [userId, version] of expected ?? []) {
      if (written.has(userId)) versions[userId] = version;
      else {
        checkedIds.push(userId);
        checkedVersions.push(version);
      }
    }
    if (writes.length === 0 && stage === undefined) {
      if (checkedIds.length === 0) return NO_USERS;
      const { rows } = await this.pool.query<{ stale: string[] }>(
        'SELECT presence_stale($1::text[], $2::bigint[]) AS stale',
        [checkedIds, checkedVersions],
      );
      return staleSet(rows[0]?.stale);
    }
    const encoded = writes.length > 0 ? JSON.stringify(writes.map(encode)) : null;
    // Each round counts one more user stale (-1 matches no stored version), so this ends.
    for (;;) {
      try {
        return await inPgTx(this.pool, async (tx: PgTx) => {
          let stale: ReadonlySet<string> = NO_USERS;
          if (encoded !== null || checkedIds.length > 0) {
            const checks = checkedIds.length > 0;
            const params: unknown[] = checks ? [checkedIds, checkedVersions] : [];
            const parts: string[] = checks ? ['presence_stale($1::text[], $2::bigint[])'] : [];
            if (encoded !== null) {
              params.push(encoded, JSON.stringify(versions));
              parts.push(`presence_apply($${params.length - 1}::jsonb, $${params.length}::jsonb)`);
            }
            const { rows } = await tx.client.query<{ stale: string[] }>(
              `SELECT ${parts.join(' || ')} AS stale`,
              params,
            );
            stale = staleSet(rows[0]?.stale);
          }
          await stage?.(tx, stale);
          return stale;
        });
      } catch (error) {
        const refused = staleVersion(error);
        if (refused === null) throw error;
        // Without `expected` (or already counted stale: cannot happen) the refusal stands.
        if (!(refused.userId in versions) || versions[refused.userId] === -1) throw refused;
        versions[refused.userId] = -1;
      }
    }
  }

  loadAll(): Promise<LoadedUser[]> {
    return this.load(this.pool, null);
  }

  /**
   * One snapshot of the listed users (REPEATABLE READ: the five reads see the same commits), so
   * an aggregate's version always comes with the observations it was reduced from.
   */
  async loadUsers(ids: readonly string[]): Promise<LoadedUser[]> {
    if (ids.length === 0) return [];
    return inPgTx(this.pool, async ({ client }) => {
      await client.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
      return this.load(client, ids);
    });
  }

  /** Every user (`ids` null) or those listed, with their rows. */
  private async load(on: Queryable, ids: readonly string[] | null): Promise<LoadedUser[]> {
    const all = async <R extends object = Row>(table: string): Promise<R[]> =>
      ids === null
        ? (await on.query<R>(`SELECT * FROM ${table}`)).rows
        : (await on.query<R>(`SELECT * FROM ${table} WHERE user_id = ANY($1::text[])`, [ids])).rows;
    // On the pool (loadAll) the five reads run at once; on one client (a snapshot) one after the
    // other, as a client runs one query at a time.
    const tables = ['users', 'observations', 'overrides', 'aggregates', 'accounts'];
    const read: Row[][] = [];
    if (ids === null) read.push(...(await Promise.all(tables.map((t) => all(t)))));
    else for (const t of tables) read.push(await all(t));
    const [observations, overrides, aggregates] = [read[1]!, read[2]!, read[3]!];
    const users = read[0] as unknown as UserRow[];
    const accounts = read[4] as unknown as AccountRow[];
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
