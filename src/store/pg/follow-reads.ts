/**
 * @module store/pg/follow-reads
 * The reads a node makes when another node announced a write (migrations/pg/0009, LISTEN
 * presence_follow): which of some users exist, who owns some accounts, some users' privacy rows;
 * or all of them, after a gap in the announcements. One statement per kind of row, by primary
 * key or its index; PostgreSQL only, as several nodes are.
 */

import type pg from 'pg';

import type { AccountRef, PrivacyRows } from '../../core/ports';
import type { Platform } from '../../core/presence';
import { readPrivacyRows } from './privacy-store';

/** An account and the user it is linked to now. */
export interface AccountOwner {
  readonly account: AccountRef;
  readonly userId: string;
}

export class PgFollowReads {
  constructor(private readonly pool: pg.Pool) {}

  /** Which of `ids` are stored users; null: every stored user. */
  async users(ids: readonly string[] | null): Promise<Set<string>> {
    const { rows } = await this.pool.query<[string]>(
      ids === null
        ? { text: 'SELECT user_id FROM users', rowMode: 'array' }
        : {
            text: 'SELECT user_id FROM users WHERE user_id = ANY($1::text[])',
            values: [ids],
            rowMode: 'array',
          },
    );
    return new Set(rows.map((r) => r[0]));
  }

  /** The owners of those of `refs` still linked; null: every linked account. */
  async accounts(refs: readonly AccountRef[] | null): Promise<AccountOwner[]> {
    const select = 'SELECT a.platform, a.workspace_id, a.external_id, a.user_id FROM accounts a';
    const { rows } = await this.pool.query<[string, string, string, string]>(
      refs === null
        ? { text: select, rowMode: 'array' }
        : {
            text: `${select} JOIN unnest($1::text[], $2::text[], $3::text[]) AS k(p, w, e)
                     ON a.platform = k.p AND a.workspace_id = k.w AND a.external_id = k.e`,
            values: [
              refs.map((r) => r.platform),
              refs.map((r) => r.workspaceId),
              refs.map((r) => r.externalId),
            ],
            rowMode: 'array',
          },
    );
    return rows.map(([platform, workspaceId, externalId, userId]) => ({
      account: { platform: platform as Platform, workspaceId, externalId },
      userId,
    }));
  }

  /** The settings, contacts and blocks owned by `ids`; null: everyone's. */
  privacy(ids: readonly string[] | null): Promise<PrivacyRows> {
    return readPrivacyRows(this.pool, ids);
  }
}
