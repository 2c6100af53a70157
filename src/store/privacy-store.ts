/**
 * @module store/privacy-store
 * The privacy port on SQLite (migration 0009). Rows need their user to exist (foreign keys); the
 * HTTP routes answer 404 for an unknown user before writing.
 */

import type { PrivacyRows, PrivacyStore } from '../core/ports';
import type { PrivacySettings } from '../privacy/project';
import type { Db } from './db';
import { type SettingsRow, toSettings } from './rows/privacy';

export class SqlitePrivacyStore implements PrivacyStore {
  private readonly stmt;
  private readonly replaceList;

  constructor(private readonly db: Db) {
    this.stmt = {
      settings: db.prepare('SELECT user_id, presence, last_seen, details, reciprocal FROM privacy_settings'),
      contacts: db.prepare('SELECT user_id, contact_id FROM privacy_contacts').raw(),
      blocks: db.prepare('SELECT user_id, blocked_id FROM privacy_blocks').raw(),
      putSettings: db.prepare(
        `INSERT INTO privacy_settings (user_id, presence, last_seen, details, reciprocal, updated_at)
         VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET presence = excluded.presence, last_seen = excluded.last_seen,
           details = excluded.details, reciprocal = excluded.reciprocal, updated_at = excluded.updated_at`,
      ),
      addContact: db.prepare(
        'INSERT OR IGNORE INTO privacy_contacts (user_id, contact_id, created_at) VALUES (?, ?, ?)',
      ),
      removeContact: db.prepare('DELETE FROM privacy_contacts WHERE user_id = ? AND contact_id = ?'),
      clearContacts: db.prepare('DELETE FROM privacy_contacts WHERE user_id = ?'),
      addBlock: db.prepare(
        'INSERT OR IGNORE INTO privacy_blocks (user_id, blocked_id, created_at) VALUES (?, ?, ?)',
      ),
      clearBlocks: db.prepare('DELETE FROM privacy_blocks WHERE user_id = ?'),
      epoch: db.prepare('SELECT epoch FROM viewer_token_epochs WHERE user_id = ?').pluck(),
      setEpoch: db.prepare(
        `INSERT INTO viewer_token_epochs (user_id, epoch, updated_at) VALUES (?, ?, ?)
         ON CONFLICT (user_id) DO UPDATE SET epoch = excluded.epoch, updated_at = excluded.updated_at`,
      ),
    };
    const s = this.stmt;
    this.replaceList = db.transaction(
      (kind: 'contacts' | 'blocks', userId: string, ids: readonly string[], now: number) => {
        (kind === 'contacts' ? s.clearContacts : s.clearBlocks).run(userId);
        for (const id of ids) (kind === 'contacts' ? s.addContact : s.addBlock).run(userId, id, now);
      },
    );
  }

  loadAll(): PrivacyRows {
    const settings = new Map<string, PrivacySettings>();
    for (const r of this.stmt.settings.all() as SettingsRow[]) {
      settings.set(r.user_id, toSettings(r));
    }
    return {
      settings,
      contacts: this.stmt.contacts.all() as [string, string][],
      blocks: this.stmt.blocks.all() as [string, string][],
    };
  }

  putSettings(userId: string, s: PrivacySettings, now: number): void {
    this.stmt.putSettings.run(userId, s.presence, s.lastSeen, s.details, s.reciprocal ? 1 : 0, now);
  }

  replaceContacts(userId: string, contactIds: readonly string[], now: number): void {
    this.replaceList('contacts', userId, contactIds, now);
  }

  addContact(userId: string, contactId: string, now: number): boolean {
    return this.stmt.addContact.run(userId, contactId, now).changes > 0;
  }

  removeContact(userId: string, contactId: string): boolean {
    return this.stmt.removeContact.run(userId, contactId).changes > 0;
  }

  replaceBlocked(userId: string, blockedIds: readonly string[], now: number): void {
    this.replaceList('blocks', userId, blockedIds, now);
  }

  viewerEpoch(userId: string): string | null {
    return (this.stmt.epoch.get(userId) as string | undefined) ?? null;
  }

  setViewerEpoch(userId: string, epoch: string, now: number): void {
    this.stmt.setEpoch.run(userId, epoch, now);
  }
}
