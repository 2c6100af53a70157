/**
 * @module store/pg/privacy-store
 * The privacy store on PostgreSQL (`Async<PrivacyStore>`; migrations/pg/0005): settings,
 * contacts, blocks and viewer token epochs. Rows need their user to exist (foreign keys).
 */

import type pg from 'pg';

import type { AsyncPrivacyStore, PrivacyRows } from '../../core/ports';
import type { PrivacySettings } from '../../privacy/project';
import { type SettingsRow, toSettings } from '../rows/privacy';
import { inPgTx } from './pool';

/** The two lists, by table and column (closed set: never from input). */
const LISTS = {
  contacts: { table: 'privacy_contacts', column: 'contact_id' },
  blocks: { table: 'privacy_blocks', column: 'blocked_id' },
} as const;

/**
 * The settings, contacts and blocks owned by `ids`, or everyone's (null): the load at start, and
 * what a node re-reads when another announced a privacy write (store/pg/follow-reads.ts).
 */
export function readPrivacyRows(pool: pg.Pool, ids: readonly string[] | null): Promise<PrivacyRows> {
  return ids === null
    ? readPrivacyRowsWhere(pool, '', [])
    : readPrivacyRowsWhere(pool, ' WHERE user_id = ANY($1::text[])', [ids]);
}

/**
 * The rows whose owner matches `where` (a condition on `user_id` written by the caller, never from
 * input, with its `values`): the three tables share the column, so one condition serves them all.
 */
export async function readPrivacyRowsWhere(
  pool: pg.Pool,
  where: string,
  values: readonly unknown[],
): Promise<PrivacyRows> {
  const [settingsRows, contacts, blocks] = await Promise.all([
    pool.query<SettingsRow>(
      `SELECT user_id, presence, last_seen, details, reciprocal FROM privacy_settings${where}`,
      [...values],
    ),
    pool.query<[string, string]>({
      text: `SELECT user_id, contact_id FROM privacy_contacts${where}`,
      values: [...values],
      rowMode: 'array',
    }),
    pool.query<[string, string]>({
      text: `SELECT user_id, blocked_id FROM privacy_blocks${where}`,
      values: [...values],
      rowMode: 'array',
    }),
  ]);
  const settings = new Map<string, PrivacySettings>();
  for (const r of settingsRows.rows) settings.set(r.user_id, toSettings(r));
  return { settings, contacts: contacts.rows, blocks: blocks.rows };
}

export class PgPrivacyStore implements AsyncPrivacyStore {
  constructor(private readonly pool: pg.Pool) {}

  loadAll(): Promise<PrivacyRows> {
    return readPrivacyRows(this.pool, null);
  }

  async putSettings(userId: string, s: PrivacySettings, now: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO privacy_settings (user_id, presence, last_seen, details, reciprocal, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (user_id) DO UPDATE SET presence = EXCLUDED.presence, last_seen = EXCLUDED.last_seen,
         details = EXCLUDED.details, reciprocal = EXCLUDED.reciprocal, updated_at = EXCLUDED.updated_at`,
      [userId, s.presence, s.lastSeen, s.details, s.reciprocal ? 1 : 0, now],
    );
  }

  private replaceList(
    kind: keyof typeof LISTS,
    userId: string,
    ids: readonly string[],
    now: number,
  ): Promise<void> {
    const { table, column } = LISTS[kind];
    return inPgTx(this.pool, async ({ client }) => {
      await client.query(`DELETE FROM ${table} WHERE user_id = $1`, [userId]);
      if (ids.length === 0) return;
      await client.query(
        `INSERT INTO ${table} (user_id, ${column}, created_at)
         SELECT $1, id, $3 FROM unnest($2::text[]) AS id ON CONFLICT DO NOTHING`,
        [userId, ids, now],
      );
    });
  }

  replaceContacts(userId: string, contactIds: readonly string[], now: number): Promise<void> {
    return this.replaceList('contacts', userId, contactIds, now);
  }

  async addContact(userId: string, contactId: string, now: number): Promise<boolean> {
    const r = await this.pool.query(
      'INSERT INTO privacy_contacts (user_id, contact_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING',
      [userId, contactId, now],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async removeContact(userId: string, contactId: string): Promise<boolean> {
    const r = await this.pool.query('DELETE FROM privacy_contacts WHERE user_id = $1 AND contact_id = $2', [
      userId,
      contactId,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  replaceBlocked(userId: string, blockedIds: readonly string[], now: number): Promise<void> {
    return this.replaceList('blocks', userId, blockedIds, now);
  }

  async viewerEpoch(userId: string): Promise<string | null> {
    const { rows } = await this.pool.query<{ epoch: string }>(
      'SELECT epoch FROM viewer_token_epochs WHERE user_id = $1',
      [userId],
    );
    return rows[0]?.epoch ?? null;
  }

  async setViewerEpoch(userId: string, epoch: string, now: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO viewer_token_epochs (user_id, epoch, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (user_id) DO UPDATE SET epoch = EXCLUDED.epoch, updated_at = EXCLUDED.updated_at`,
      [userId, epoch, now],
    );
  }
}
