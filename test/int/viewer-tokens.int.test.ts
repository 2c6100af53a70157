import { randomBytes } from 'node:crypto';

import { FakeClock } from '../../src/core/clock';
import { migrate, openDb, type Db } from '../../src/store/db';
import { SqlitePrivacyStore } from '../../src/store/privacy-store';
import { ViewerTokens } from '../../src/privacy/viewer-tokens';
import { promised } from '../helpers/promised';

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
    new ViewerTokens(promised(store), clock, (id) => id === 'bob', current, previous);

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
    await t.revoke('bob');
    expect(await tokens(oldKey).verify(token)).toBeNull();
  });

  it('the epoch a use compares with comes from memory: a revocation here fails at once, one on another node within 1 s', async () => {
    const reads = { n: 0 };
    const counted = promised(store);
    const viewerEpoch = counted.viewerEpoch.bind(counted);
    counted.viewerEpoch = (userId) => {
      reads.n += 1;
      return viewerEpoch(userId);
    };
    const here = new ViewerTokens(counted, clock, (id) => id === 'bob', oldKey);
    const other = tokens(oldKey); // a second node on the same database
    const { token } = await here.issue('bob', 3600);
    const before = reads.n;
    for (let i = 0; i < 5; i++) expect(await here.verify(token)).toEqual({ userId: 'bob' });
    expect(reads.n).toBe(before); // no store read per use

    await other.revoke('bob');
    expect(await here.verify(token)).toEqual({ userId: 'bob' }); // not seen yet
    clock.advance(1000);
    expect(await here.verify(token)).toBeNull(); // 1 s on: re-read, refused

    const { token: next } = await here.issue('bob', 3600);
    expect(await here.verify(next)).toEqual({ userId: 'bob' });
    const revoking = here.revoke('bob');
    expect(await here.verify(next)).toBeNull(); // before the store answered
    await revoking;
    expect(await other.verify(next)).toBeNull();
  });

  it("a deleted user's epoch is forgotten: the same id created again does not inherit old tokens", async () => {
    const t = tokens(oldKey);
    const { token } = await t.issue('bob', 3600);
    expect(await t.verify(token)).toEqual({ userId: 'bob' });
    db.prepare("DELETE FROM users WHERE user_id = 'bob'").run(); // takes the epoch with it
    t.forget('bob'); // what the deletion's committed hook does
    db.prepare("INSERT INTO users (user_id, created_at, updated_at) VALUES ('bob', 1, 1)").run();
    expect(await t.verify(token)).toBeNull();
  });
});
