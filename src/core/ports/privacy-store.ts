/**
 * @module core/ports/privacy-store
 * The storage port for viewers and privacy: per-user visibility settings, contacts, blocks and the
 * epoch of the user's viewer tokens. `store/privacy-store.ts` implements it on SQLite; every row
 * a user owns or that names them goes with the user's deletion, in its transaction.
 */

import type { PrivacySettings } from '../../privacy/project';

export interface PrivacyRows {
  /** Users who set their settings; everyone else has the configured defaults. */
  readonly settings: ReadonlyMap<string, PrivacySettings>;
  /** `[owner, contact]`: `owner` counts `contact` as a contact. */
  readonly contacts: readonly (readonly [string, string])[];
  /** `[owner, blocked]`. */
  readonly blocks: readonly (readonly [string, string])[];
}

export interface PrivacyStore {
  loadAll(): PrivacyRows;
  putSettings(userId: string, settings: PrivacySettings, now: number): void;
  /** Replaces the whole list, in one transaction. */
  replaceContacts(userId: string, contactIds: readonly string[], now: number): void;
  /** False when it was already there. */
  addContact(userId: string, contactId: string, now: number): boolean;
  /** False when it was not there. */
  removeContact(userId: string, contactId: string): boolean;
  replaceBlocked(userId: string, blockedIds: readonly string[], now: number): void;
  /** The epoch the user's viewer tokens must name, or null before the first token. */
  viewerEpoch(userId: string): string | null;
  setViewerEpoch(userId: string, epoch: string, now: number): void;
}
