/**
 * @module test/int/oauth-vault
 * Tokens at rest: the SQLite file (with its WAL) never holds a token, a PKCE verifier or a state
 * in the clear, and `rotateSecret` moves every ciphertext to a new key in one transaction.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

import { AppError } from '../../src/core/errors';
import { silentLog } from '../../src/core/log';
import { ConnectionService, rotateSecret } from '../../src/oauth/service';
import { TokenVault, VaultError, keyIdOf } from '../../src/oauth/vault';
import { oauthHarness, TEST_SECRET_KEY, type OAuthHarness } from '../helpers/fake-oauth';
import { tmpDir } from '../helpers/engine';

/** The database's bytes on disk: the main file, its write-ahead log and shared memory. */
function fileBytes(path: string): Buffer {
  return Buffer.concat([path, `${path}-wal`, `${path}-shm`].filter(existsSync).map((p) => readFileSync(p)));
}

function serviceWith(
  h: OAuthHarness,
  secretKey: string,
  previousSecretKeys: string[] = [],
): ConnectionService {
  return new ConnectionService({
    store: h.stores.connections,
    env: h.env,
    clock: h.clock,
    log: silentLog,
    linkAccount: () => ({ linked: true }),
    hasUser: () => true,
    onEvent: () => undefined,
    secretKey,
    previousSecretKeys,
  });
}

const sealedValues = (h: OAuthHarness): string[] => [
  ...h
    .rows('SELECT access_token, refresh_token FROM connections')
    .flatMap((r) => [r.access_token, r.refresh_token])
    .filter((v): v is string => typeof v === 'string'),
  ...h.rows('SELECT code_verifier FROM oauth_states').map((r) => r.code_verifier as string),
];

describe('tokens at rest', () => {
  const tmp = tmpDir();
  let h: OAuthHarness;
  beforeEach(async () => {
    h = await oauthHarness({ flavor: 'zoom', dir: tmp.dir });
    h.addUser('bob');
  });
  afterEach(async () => h.close());
  afterAll(() => tmp.cleanup());

  it('are unreadable in the database file without the key', async () => {
    const view = await h.connect('alice');
    h.clock.advance(3599_000);
    await h.service.getAccessToken(view.id); // a refresh: rotated tokens are written too
    const pending = await h.service.startAuthorize('zoom', 'bob');
    const verifiers = h.fake.calls
      .map((c) => c.body.code_verifier)
      .filter((v): v is string => v !== undefined);
    const secrets = [...h.fake.issued.access, ...h.fake.issued.refresh, ...verifiers, pending.state];
    expect(secrets.length).toBe(6);

    for (const bytes of [
      fileBytes(h.dbPath),
      (h.db.pragma('wal_checkpoint(TRUNCATE)'), fileBytes(h.dbPath)),
    ]) {
      // Sanity: this is the right file, and it holds the connection.
      expect(bytes.includes(Buffer.from(view.id))).toBe(true);
      expect(bytes.includes(Buffer.from(view.external_id))).toBe(true);
      for (const s of secrets) expect(bytes.includes(Buffer.from(s))).toBe(false);
    }
    // With the key they are there, and only with it.
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[1]);
    const wrongKey = serviceWith(h, randomBytes(32).toString('base64'));
    const e = (await wrongKey.getAccessToken(view.id).catch((x: unknown) => x)) as AppError;
    expect(e).toBeInstanceOf(AppError);
    expect(e).toMatchObject({ code: 'internal', message: expect.stringMatching(/PRESENCE_SECRET_KEY/) });
    for (const s of secrets) expect(e.message).not.toContain(s);
  });

  it('rotate-secret re-encrypts everything under the new key, in one go, idempotently', async () => {
    const view = await h.connect('alice');
    const { start, query } = await h.authorizeOnly('bob');
    expect(start.pkce).toBe(true);
    const before = sealedValues(h);
    expect(before).toHaveLength(3);
    const oldId = keyIdOf(Buffer.from(TEST_SECRET_KEY, 'base64'));
    expect(before.map((v) => TokenVault.keyIdOf(v))).toEqual([oldId, oldId, oldId]);

    const newKey = randomBytes(32).toString('base64');
    const report = await rotateSecret(h.stores.connections, { oldKeys: [TEST_SECRET_KEY], newKey });
    const newId = keyIdOf(Buffer.from(newKey, 'base64'));
    expect(report).toEqual({ key_id: newId, reencrypted: 3, already_current: 0 });
    const after = sealedValues(h);
    expect(after.map((v) => TokenVault.keyIdOf(v))).toEqual([newId, newId, newId]);
    for (const v of after) expect(before).not.toContain(v);

    // Readable with the new key alone: the token, and the pending flow's PKCE verifier.
    const rotated = serviceWith(h, newKey);
    await expect(rotated.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    h.fake.user = { id: 'U0BOB' };
    await expect(rotated.completeCallback('zoom', query)).resolves.toMatchObject({
      user_id: 'bob',
      health: 'ok',
    });

    // Unreadable with the old key alone; readable while the old key is kept as a previous one.
    await expect(serviceWith(h, TEST_SECRET_KEY).getAccessToken(view.id)).rejects.toMatchObject({
      code: 'internal',
    });
    await expect(serviceWith(h, TEST_SECRET_KEY, [newKey]).getAccessToken(view.id)).resolves.toBe(
      h.fake.issued.access[0],
    );

    // Running it again changes nothing.
    const again = await rotateSecret(h.stores.connections, { oldKeys: [TEST_SECRET_KEY], newKey });
    expect(again).toEqual({ key_id: newId, reencrypted: 0, already_current: 4 });

    // The old ciphertexts are gone from the file as values: none of the old ones opens any more.
    const oldOnly = TokenVault.fromSecrets(TEST_SECRET_KEY);
    for (const v of sealedValues(h)) expect(() => oldOnly.open(v, 'x')).toThrow(VaultError);
    const bytes = fileBytes(h.dbPath);
    for (const t of [...h.fake.issued.access, ...h.fake.issued.refresh])
      expect(bytes.includes(Buffer.from(t))).toBe(false);
  });

  it('refuses to rotate when a value is under a key it was not given, and changes nothing', async () => {
    await h.connect('alice');
    const before = sealedValues(h);
    const unrelated = randomBytes(32).toString('base64');
    await expect(
      rotateSecret(h.stores.connections, {
        oldKeys: [unrelated],
        newKey: randomBytes(32).toString('base64'),
      }),
    ).rejects.toThrow(/not given: k[0-9a-f]{12} \(2\); nothing was changed/);
    expect(sealedValues(h)).toEqual(before);
    expect(() => rotateSecret(h.stores.connections, { oldKeys: [TEST_SECRET_KEY], newKey: 'short' })).toThrow(
      /32 bytes/,
    );
  });

  it('a new key seals what the service writes from then on, while the old one still opens', async () => {
    const view = await h.connect('alice');
    const newKey = randomBytes(32).toString('base64');
    const service = serviceWith(h, newKey, [TEST_SECRET_KEY]);
    h.clock.advance(3599_000);
    await service.getAccessToken(view.id);
    const ids = h
      .rows('SELECT access_token, refresh_token FROM connections')
      .flatMap((r) => [
        TokenVault.keyIdOf(r.access_token as string),
        TokenVault.keyIdOf(r.refresh_token as string),
      ]);
    expect(ids).toEqual([keyIdOf(Buffer.from(newKey, 'base64')), keyIdOf(Buffer.from(newKey, 'base64'))]);
  });

  it('a flow started under a key that is gone cannot be completed, with a clear 400', async () => {
    const { query } = await h.authorizeOnly('alice');
    const other = serviceWith(h, randomBytes(32).toString('base64'));
    await expect(other.completeCallback('zoom', query)).rejects.toMatchObject({
      code: 'invalid_request',
      message: expect.stringMatching(/start the connection again/),
    });
    expect(h.rows('SELECT * FROM connections')).toEqual([]);
  });
});
