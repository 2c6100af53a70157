import { join } from 'node:path';

import { FakeClock } from '../../src/core/clock';
import { migrate, openDb, type Db } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { SqlitePrivacyStore } from '../../src/store/privacy-store';
import { PrivacyService } from '../../src/privacy/service';
import type { PrivacySettings } from '../../src/privacy/project';
import { tmpDir } from '../helpers/engine';
import { promised } from '../helpers/promised';

const DEFAULTS: PrivacySettings = {
  presence: 'everyone',
  lastSeen: 'everyone',
  details: 'everyone',
  reciprocal: false,
};
const clock = new FakeClock();

describe('privacy storage (SQLite)', () => {
  let tmp: ReturnType<typeof tmpDir>;
  let path: string;
  let db: Db;

  const open = async (defaults = DEFAULTS) => {
    db = openDb(path);
    migrate(db);
    const users = new SqlitePresenceStore(db);
    const store = new SqlitePrivacyStore(db);
    return { users, store, privacy: await new PrivacyService(promised(store), defaults, clock).load() };
  };
  const addUsers = (users: SqlitePresenceStore, ...ids: string[]) =>
    users.write(
      ids.map((userId) => ({
        op: 'user',
        user: { userId, displayName: null, timezone: null, createdAt: 1, updatedAt: 1 },
      })),
    );

  beforeEach(() => {
    tmp = tmpDir();
    path = join(tmp.dir, 'p.db');
  });
  afterEach(() => {
    db.close();
    tmp.cleanup();
  });

  it('a user who set nothing has the configured defaults', async () => {
    const { privacy } = await open({ ...DEFAULTS, lastSeen: 'contacts' });
    expect(privacy.of('nobody-yet').settings).toEqual({ ...DEFAULTS, lastSeen: 'contacts' });
    expect(privacy.of('nobody-yet').contacts.size).toBe(0);
  });

  it('settings, contacts, blocks and token epochs survive a restart', async () => {
    let s = await open();
    addUsers(s.users, 'alice', 'bob');
    await s.privacy.setSettings('alice', {
      presence: 'contacts',
      lastSeen: 'nobody',
      details: 'contacts',
      reciprocal: true,
    });
    await s.privacy.setContacts('alice', ['bob', 'carol', 'bob']);
    await s.privacy.addContact('alice', 'dave');
    expect(await s.privacy.removeContact('alice', 'carol')).toBe(true);
    expect(await s.privacy.removeContact('alice', 'carol')).toBe(false);
    await s.privacy.setBlocked('alice', ['eve']);
    s.store.setViewerEpoch('alice', 'e1', 5);
    db.close();

    s = await open();
    const alice = s.privacy.of('alice');
    expect(alice.settings).toEqual({
      presence: 'contacts',
      lastSeen: 'nobody',
      details: 'contacts',
      reciprocal: true,
    });
    expect([...alice.contacts].sort()).toEqual(['bob', 'dave']);
    expect([...alice.blocked]).toEqual(['eve']);
    expect(s.store.viewerEpoch('alice')).toBe('e1');
    expect(s.store.viewerEpoch('bob')).toBeNull();
  });

  it("deleting a user removes their rows and every row naming them, in the delete's transaction", async () => {
    const s = await open();
    addUsers(s.users, 'alice', 'bob');
    await s.privacy.setSettings('bob', { ...DEFAULTS, presence: 'nobody' });
    await s.privacy.setContacts('bob', ['alice']);
    await s.privacy.setBlocked('bob', ['carol']);
    s.store.setViewerEpoch('bob', 'e1', 5);
    await s.privacy.setContacts('alice', ['bob', 'carol']);
    await s.privacy.setBlocked('alice', ['bob']);
    const changed: string[] = [];
    s.privacy.onChange((id) => changed.push(id));

    expect(s.users.deleteUser('bob')).toBe(true);
    s.privacy.forget('bob');
    expect(changed).toEqual(['bob']);
    const count = (table: string) => db.prepare(`SELECT count(*) FROM ${table}`).pluck().get();
    expect(count('privacy_settings')).toBe(0);
    expect(db.prepare('SELECT contact_id FROM privacy_contacts').pluck().all()).toEqual(['carol']);
    expect(count('privacy_blocks')).toBe(0);
    expect(count('viewer_token_epochs')).toBe(0);
    expect(s.privacy.of('bob').settings).toEqual(DEFAULTS);
    expect([...s.privacy.of('alice').contacts]).toEqual(['carol']);
    expect(s.privacy.of('alice').blocked.size).toBe(0);

    // Reloaded from the store: the same.
    const again = await new PrivacyService(promised(s.store), DEFAULTS, clock).load();
    expect([...again.of('alice').contacts]).toEqual(['carol']);
  });

  it('rows need their user (a write for an unknown user fails and stores nothing)', async () => {
    const s = await open();
    // better-sqlite3's error class comes from another realm here: matched by its message.
    await expect(s.privacy.setSettings('ghost', DEFAULTS)).rejects.toMatchObject({
      message: expect.stringMatching(/FOREIGN KEY/),
    });
    expect(s.privacy.of('ghost').settings).toEqual(DEFAULTS);
    expect(db.prepare('SELECT count(*) FROM privacy_settings').pluck().get()).toBe(0);
  });

  it('every change is announced with the id of the user whose privacy changed', async () => {
    const s = await open();
    addUsers(s.users, 'alice');
    const changed: string[] = [];
    const stop = s.privacy.onChange((id) => changed.push(id));
    await s.privacy.setSettings('alice', DEFAULTS);
    await s.privacy.addContact('alice', 'bob');
    await s.privacy.addContact('alice', 'bob'); // already there: no change
    await s.privacy.setBlocked('alice', []);
    stop();
    await s.privacy.setContacts('alice', []);
    expect(changed).toEqual(['alice', 'alice', 'alice']);
  });
});
