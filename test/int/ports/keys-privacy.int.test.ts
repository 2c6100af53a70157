/**
 * Port conformance: `ApiKeyStore` and `PrivacyStore`, on SQLite and on PostgreSQL (backends.ts).
 */

import type { ApiKeyRecord } from '../../../src/core/ports';
import type { PrivacySettings } from '../../../src/privacy/project';
import { failure, FOREIGN_KEY, forEachStore, UNIQUE, user } from './backends';

const key = (id: string, createdAt: number): ApiKeyRecord => ({
  id,
  name: id === 'k_b' ? null : `key ${id}`,
  hash: `hash-${id}`,
  scopes: ['read', 'write'],
  createdAt,
  revokedAt: null,
});

forEachStore('ApiKeyStore', (backend) => {
  it('inserts, gets, lists oldest first (then by id) and revokes once', async () => {
    const s = await backend.open();
    await s.keys.insert(key('k_c', 2));
    await s.keys.insert(key('k_b', 1));
    await s.keys.insert({ ...key('k_a', 2), scopes: ['admin'] });
    expect(await s.keys.get('k_b')).toEqual(key('k_b', 1));
    expect(await s.keys.get('k_none')).toBeNull();
    expect((await s.keys.list()).map((k) => k.id)).toEqual(['k_b', 'k_a', 'k_c']);
    expect((await s.keys.get('k_a'))?.scopes).toEqual(['admin']);
    expect(await s.keys.revoke('k_a', 50)).toBe(true);
    expect(await s.keys.revoke('k_a', 60)).toBe(false);
    expect(await s.keys.revoke('k_none', 60)).toBe(false);
    expect((await s.keys.get('k_a'))?.revokedAt).toBe(50);
    expect(await failure(s.keys.insert(key('k_a', 3)))).toMatch(UNIQUE);
  });
});

const CONTACTS_ONLY: PrivacySettings = {
  presence: 'contacts',
  lastSeen: 'nobody',
  details: 'everyone',
  reciprocal: true,
};

const sorted = (pairs: readonly (readonly [string, string])[]) => [...pairs].map((p) => p.join('>')).sort();

forEachStore('PrivacyStore', (backend) => {
  it('keeps settings, contacts, blocks and viewer epochs', async () => {
    const s = await backend.open();
    await s.presence.write([user('ana'), user('bo'), user('cy')]);
    await s.privacy.putSettings('ana', CONTACTS_ONLY, 1);
    await s.privacy.putSettings('ana', { ...CONTACTS_ONLY, reciprocal: false }, 2);
    await s.privacy.putSettings('bo', CONTACTS_ONLY, 2);
    expect(await s.privacy.addContact('ana', 'bo', 3)).toBe(true);
    expect(await s.privacy.addContact('ana', 'bo', 4)).toBe(false);
    await s.privacy.replaceContacts('bo', ['ana', 'cy', 'ana'], 5);
    await s.privacy.replaceBlocked('cy', ['ana'], 6);
    await s.privacy.replaceBlocked('cy', ['bo'], 7);
    expect(await s.privacy.removeContact('bo', 'cy')).toBe(true);
    expect(await s.privacy.removeContact('bo', 'cy')).toBe(false);
    const rows = await s.privacy.loadAll();
    expect(rows.settings).toEqual(
      new Map([
        ['ana', { ...CONTACTS_ONLY, reciprocal: false }],
        ['bo', CONTACTS_ONLY],
      ]),
    );
    expect(sorted(rows.contacts)).toEqual(['ana>bo', 'bo>ana']);
    expect(sorted(rows.blocks)).toEqual(['cy>bo']);
    await s.privacy.replaceContacts('bo', [], 8);
    expect(sorted((await s.privacy.loadAll()).contacts)).toEqual(['ana>bo']);

    expect(await s.privacy.viewerEpoch('ana')).toBeNull();
    await s.privacy.setViewerEpoch('ana', 'e1', 9);
    await s.privacy.setViewerEpoch('ana', 'e2', 10);
    expect(await s.privacy.viewerEpoch('ana')).toBe('e2');
  });

  it("a deleted user's rows go, and so do others' rows that name them", async () => {
    const s = await backend.open();
    await s.presence.write([user('ana'), user('bo'), user('cy')]);
    await s.privacy.putSettings('ana', CONTACTS_ONLY, 1);
    await s.privacy.replaceContacts('ana', ['bo'], 1);
    await s.privacy.replaceContacts('bo', ['ana', 'cy'], 1);
    await s.privacy.replaceBlocked('cy', ['ana', 'bo'], 1);
    await s.privacy.setViewerEpoch('ana', 'e1', 1);
    expect(await s.presence.deleteUser('ana')).toBe(true);
    const rows = await s.privacy.loadAll();
    expect(rows.settings.size).toBe(0);
    expect(sorted(rows.contacts)).toEqual(['bo>cy']);
    expect(sorted(rows.blocks)).toEqual(['cy>bo']);
    expect(await s.privacy.viewerEpoch('ana')).toBeNull();
  });

  it('refuses rows for a user that does not exist', async () => {
    const s = await backend.open();
    expect(await failure(s.privacy.putSettings('ghost', CONTACTS_ONLY, 1))).toMatch(FOREIGN_KEY);
    expect(await failure(s.privacy.setViewerEpoch('ghost', 'e', 1))).toMatch(FOREIGN_KEY);
  });
});
