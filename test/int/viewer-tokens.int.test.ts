import { randomBytes } from 'node:crypto';

import { FakeClock } from '../../src/core/clock';
import { migrate, openDb, type Db } from '../../src/store/db';
import { SqlitePrivacyStore } from '../../src/store/privacy-store';
import { ViewerTokens } from '../../src/privacy/viewer-tokens';

describe('viewer tokens and PRESENCE_SECRET_KEY rotation', () => {
  const oldKey = randomBytes(32).toString('base64');
  const newKey = randomBytes(32).toString('base64');
  const clock = new FakeClock();
  let db: Db;
  let store: SqlitePrivacyStore;

  beforeEach(() => {
    db = openDb(':memory:');
    migrate(db);
    db.prepare("INSERT INTO users (user_id, created_at, updated_at) VALUES ('bob', 0, 0)").run();
    store = new SqlitePrivacyStore(db);
  });
  afterEach(() => db.close());

  const tokens = (current: string, previous: string[] = []) =>
    new ViewerTokens(store, clock, (id) => id === 'bob', current, previous);

  it('a token signed before a rotation stays valid while its key is among the previous keys', async () => {
    const { token } = await tokens(oldKey).issue('bob', 3600);
    expect(await tokens(newKey, [oldKey]).verify(token)).toEqual({ userId: 'bob' });
  });

  it('and fails cleanly (null, no throw) once the old key leaves the configuration', async () => {
    const { token } = await tokens(oldKey).issue('bob', 3600);
    expect(await tokens(newKey).verify(token)).toBeNull();
  });

  it('new tokens are signed with the new key: a service that only knows the old one refuses them', async () => {
    const { token } = await tokens(newKey, [oldKey]).issue('bob', 3600);
    expect(await tokens(newKey).verify(token)).toEqual({ userId: 'bob' });
    expect(await tokens(oldKey).verify(token)).toBeNull();
  });

  it('the signing key is derived (HKDF), never the secret itself', async () => {
    const { token } = await tokens(oldKey).issue('bob', 3600);
    const { createHmac } = await import('node:crypto');
    const [h, p, s] = token.split('.');
    const raw = createHmac('sha256', Buffer.from(oldKey, 'base64')).update(`${h}.${p}`).digest('base64url');
    expect(s).not.toBe(raw);
  });

  it('revocation is durable: a new ViewerTokens on the same store still refuses the old token', async () => {
    const t = tokens(oldKey);
    const { token } = await t.issue('bob', 3600);
    t.revoke('bob');
    expect(await tokens(oldKey).verify(token)).toBeNull();
  });
});
