/**
 * @module store/pg/follow-reads
 * The reads a node makes when another node announced a write (migrations/pg/0009, LISTEN
 * presence_follow): which of some users exist, who owns some accounts, some users' privacy rows;
 * or all of them a page at a time, after a gap in the announcements. One statement per kind of
 * row, by primary key or its index; PostgreSQL only, as several nodes are.
 */

import type pg from 'pg';

import type { AccountRef, PrivacyRows } from '../../core/ports';
import type { Platform } from '../../core/presence';
import { readPrivacyRows, readPrivacyRowsWhere } from './privacy-store';

/** An account and the user it is linked to now. */
export interface AccountOwner {
  readonly account: AccountRef;
  readonly userId: string;
}

/**
 * One page of everything: the users whose id follows `after` (at most `limit`, in id order) and
 * every account and privacy row owned by an id in the range they span.
 */
export interface FollowPage {
  readonly users: readonly string[];
  readonly accounts: readonly AccountOwner[];
  readonly privacy: PrivacyRows;
  /** Where the next page starts (its `after`); null: this page ran to the end. */
  readonly next: string | null;
}

const ACCOUNTS = 'SELECT a.platform, a.workspace_id, a.external_id, a.user_id FROM accounts a';

export class PgFollowReads {
  constructor(private readonly pool: pg.Pool) {}

  /** Which of `ids` are stored users. */
  async users(ids: readonly string[]): Promise<Set<string>> {
    const { rows } = await this.pool.query<[string]>({
      text: 'SELECT user_id FROM users WHERE user_id = ANY($1::text[])',
      values: [ids],
      rowMode: 'array',
    });
    return new Set(rows.map((r) => r[0]));
  }

  /** The owners of those of `refs` still linked. */
  async accounts(refs: readonly AccountRef[]): Promise<AccountOwner[]> {
    const { rows } = await this.pool.query<[string, string, string, string]>({
      text: `${ACCOUNTS} JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(p, w, e)
               ON a.platform = k.p AND a.workspace_id = k.w AND a.external_id = k.e`,
      values: [refs.map((r) => r.platform), refs.map((r) => r.workspaceId), refs.map((r) => r.externalId)],
      rowMode: 'array',
    });
    return owners(rows);
  }

  /** The settings, contacts and blocks owned by `ids`. */
  privacy(ids: readonly string[]): Promise<PrivacyRows> {
    return readPrivacyRows(this.pool, ids);
  }

  /**
   * A page of everything (keyset pagination on the users' primary key, so each page costs the
   * same wherever it starts). The range is (after, last user of the page], or to the end once a
   * page is not full; accounts and privacy rows are read by their owner's id in that range (every
   * such column is COLLATE "C", as users.user_id is, so all compare alike).
   */
  async page(after: string | null, limit: number): Promise<FollowPage> {
    const { rows } = await this.pool.query<[string]>({
      text: `SELECT user_id FROM users${after === null ? '' : ' WHERE user_id > $2'} ORDER BY user_id LIMIT $1`,
      values: after === null ? [limit] : [limit, after],
      rowMode: 'array',
    });
    const users = rows.map((r) => r[0]);
    const next = users.length < limit ? null : (users.at(-1) ?? null);
    // The conditions as literals of the plan, not `$1 IS NULL OR …`, so each is an index range.
    const bounds: string[] = [];
    const values: string[] = [];
    if (after !== null) bounds.push(`user_id > $${values.push(after)}`);
    if (next !== null) bounds.push(`user_id <= $${values.push(next)}`);
    const where = bounds.length === 0 ? '' : ` WHERE ${bounds.join(' AND ')}`;
    const [accounts, privacy] = await Promise.all([
      this.pool.query<[string, string, string, string]>({
        text: `${ACCOUNTS}${where.replaceAll('user_id', 'a.user_id')}`,
        values,
        rowMode: 'array',
      }),
      readPrivacyRowsWhere(this.pool, where, values),
    ]);
    return { users, accounts: owners(accounts.rows), privacy, next };
  }
}

function owners(rows: readonly (readonly [string, string, string, string])[]): AccountOwner[] {
  return rows.map(([platform, workspaceId, externalId, userId]) => ({
    account: { platform: platform as Platform, workspaceId, externalId },
    userId,
  }));
}
