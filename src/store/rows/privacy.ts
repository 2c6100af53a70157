/**
 * @module store/rows/privacy
 * The `privacy_settings` row as both databases return it (`reciprocal` as 0/1), and its mapping
 * to `PrivacySettings`; the SQLite and PostgreSQL privacy stores share them.
 */

import type { PrivacySettings, Visibility } from '../../privacy/project';

export interface SettingsRow {
  user_id: string;
  presence: Visibility;
  last_seen: Visibility;
  details: Visibility;
  reciprocal: number;
}

export const toSettings = (r: SettingsRow): PrivacySettings => ({
  presence: r.presence,
  lastSeen: r.last_seen,
  details: r.details,
  reciprocal: r.reciprocal === 1,
});
