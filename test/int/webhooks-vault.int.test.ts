/**
 * Webhook signing secrets at rest: sealed by the token vault under PRESENCE_SECRET_KEY, never in
 * the SQLite file or its WAL in the clear; plain-text rows from before migration 0007 are sealed
 * at the next start; `presence keys rotate-secret` re-encrypts them; without a key webhooks are
 * off.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { Webhook } from 'standardwebhooks';

import { ConfigError } from '../../src/config/env';
import { AppError } from '../../src/core/errors';
import { FakeClock } from '../../src/core/clock';
import type { Log } from '../../src/core/log';
import { TokenVault, keyIdOf } from '../../src/oauth/vault';
import { migrate, openDb, readMigrations } from '../../src/store/db';
import type { WebhookService, WebhookServiceOptions } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import type { Receiver } from '../helpers/receiver';
import { Receivers, reportTeams, webhookService } from '../helpers/webhooks';

const BIN = join(resolve(__dirname, '../..'), 'bin/presence.js');

/** The database's bytes on disk: the main file, its write-ahead log and shared memory. */
function fileBytes(path: string): Buffer {
  return Buffer.concat([path, `${path}-wal`, `${path}-shm`].filter(existsSync).map((p) => readFileSync(p)));
}

/** Every form a secret could be found in: the whole `whsec_…`, its base64 part, its raw bytes. */
const forms = (secret: string): Buffer[] => [
  Buffer.from(secret),
  Buffer.from(secret.slice(6)),
  Buffer.from(secret.slice(6), 'base64'),
];

const newKey = (): string => randomBytes(32).toString('base64');

describe('webhook signing secrets at rest', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine | null = null;
  const services: WebhookService[] = [];
  const receivers = new Receivers();

  async function engineAt(path: string): Promise<TestEngine> {
    t?.close();
    t = await testEngine(path, { clock: new FakeClock(Date.now()) });
    return t;
  }

  /** The vault is always named: these tests are about which one (or none) seals the secrets. */
  async function service(
    e: TestEngine,
    options: Partial<WebhookServiceOptions> & { vault: TokenVault | null },
  ): Promise<WebhookService> {
    const s = await webhookService(e, options);
    services.push(s);
    return s;
  }

  const receiver = (): Promise<Receiver> => receivers.start();
  const change = (e: TestEngine, userId: string, status: 'online' | 'busy' | 'away'): Promise<void> =>
    reportTeams(e, userId, status);

  const path = (): string => join(tmp.dir, `vault-${(n += 1)}.db`);

  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop();
    t?.close();
    t = null;
    await receivers.closeAll();
  });
  afterAll(() => tmp.cleanup());

  it('never reach the database file or its WAL in the clear, and sign after a restart with the key', async () => {
    const key = newKey();
    const file = path();
    let e = await engineAt(file);
    let svc = await service(e, { vault: TokenVault.fromSecrets(key) });
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    const rotated = (await svc.updateEndpoint(ep.id, { rotate_secret: true })) as { secret: string };
    await change(e, 'alice', 'online');
    await svc.runDue();
    expect(r.received).toHaveLength(1);

    for (const bytes of [fileBytes(file), (e.db.pragma('wal_checkpoint(TRUNCATE)'), fileBytes(file))]) {
      // Sanity: this is the right file, and it holds the endpoint.
      expect(bytes.includes(Buffer.from(ep.id))).toBe(true);
      expect(bytes.includes(Buffer.from(new URL(r.url).host))).toBe(true);
      for (const form of [...forms(ep.secret), ...forms(rotated.secret)])
        expect(bytes.includes(form)).toBe(false);
    }
    const row = e.db
      .prepare('SELECT secret, previous_secret, secret_format FROM webhook_endpoints')
      .get() as {
      secret: string;
      previous_secret: string;
      secret_format: string;
    };
    expect(row.secret_format).toBe('sealed');
    expect([TokenVault.keyIdOf(row.secret), TokenVault.keyIdOf(row.previous_secret)]).toEqual([
      keyIdOf(Buffer.from(key, 'base64')),
      keyIdOf(Buffer.from(key, 'base64')),
    ]);

    // A restart with the key: both secrets are back and sign (the rotation window is still open).
    await svc.stop();
    e = await engineAt(file);
    svc = await service(e, { vault: TokenVault.fromSecrets(key) });
    await change(e, 'alice', 'busy');
    await svc.runDue();
    const last = r.received[1]!;
    expect(() => new Webhook(rotated.secret).verify(last.body, last.headers)).not.toThrow();
    expect(() => new Webhook(ep.secret).verify(last.body, last.headers)).not.toThrow();
    await svc.stop();

    // A restart with another key stops at once, saying which key is missing and never a secret.
    e = await engineAt(file);
    const other = newKey();
    let error: unknown;
    try {
      await service(e, { vault: TokenVault.fromSecrets(other) });
    } catch (x) {
      error = x;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toMatch(
      new RegExp(
        `PRESENCE_SECRET_KEY: webhook endpoint ${ep.id}'s signing secret is sealed under key k[0-9a-f]{12}, which is not configured`,
      ),
    );
    for (const s of [ep.secret, rotated.secret, key]) expect(message).not.toContain(s.slice(6, 30));
    // The new key with the old one as previous opens them.
    const both = await service(e, { vault: TokenVault.fromSecrets(other, [key]) });
    expect(both.listEndpoints().map((x) => x.id)).toEqual([ep.id]);
  });

  it('converts plain-text secrets from before migration 0007 at the next start, and they still sign', async () => {
    const file = path();
    const r = await receiver();
    const plain = {
      secret: `whsec_${randomBytes(32).toString('base64')}`,
      previous: `whsec_${randomBytes(32).toString('base64')}`,
    };
    // A database as the previous version left it: secrets in plain text, in the main file and the WAL.
    const old = openDb(file);
    migrate(
      old,
      readMigrations().filter((m) => m.version < '0007'),
    );
    const now = Date.now();
    old
      .prepare(
        `INSERT INTO webhook_endpoints (id, url, secret, previous_secret, previous_expires_at, created_at, updated_at)
         VALUES ('ep_old', ?, ?, ?, ?, ?, ?)`,
      )
      .run(r.url, plain.secret, plain.previous, now + 86_400_000, now, now);
    old.pragma('wal_checkpoint(TRUNCATE)');
    old.prepare("UPDATE webhook_endpoints SET updated_at = updated_at + 1 WHERE id = 'ep_old'").run();
    const before = fileBytes(file);
    expect(before.includes(Buffer.from(plain.secret))).toBe(true); // the check can see them
    migrate(old); // 0007: marks the rows, cannot encrypt
    expect(old.prepare('SELECT secret_format FROM webhook_endpoints').pluck().all()).toEqual(['plain']);
    old.close();

    const key = newKey();
    const infos: string[] = [];
    const log: Log = {
      debug: () => undefined,
      info: (o, m) => infos.push(`${m} ${JSON.stringify(o)}`),
      warn: () => undefined,
      error: () => undefined,
    };
    let e = await engineAt(file);
    let svc = await service(e, { vault: TokenVault.fromSecrets(key), log });
    expect(infos).toEqual([
      expect.stringMatching(/^sealed webhook signing secrets .*"endpoints":1,"wal_truncated":true/),
    ]);
    const bytes = fileBytes(file);
    expect(bytes.includes(Buffer.from('ep_old'))).toBe(true);
    for (const form of [...forms(plain.secret), ...forms(plain.previous)])
      expect(bytes.includes(form)).toBe(false);
    const sealed = e.db.prepare('SELECT secret, previous_secret, secret_format FROM webhook_endpoints').get();
    expect(sealed).toMatchObject({
      secret: expect.stringMatching(/^v1\./),
      previous_secret: expect.stringMatching(/^v1\./),
      secret_format: 'sealed',
    });

    // Consumers notice nothing: both signatures verify with the secrets they already hold.
    await change(e, 'alice', 'online');
    await svc.runDue();
    const [got] = r.received;
    expect(() => new Webhook(plain.secret).verify(got!.body, got!.headers)).not.toThrow();
    expect(() => new Webhook(plain.previous).verify(got!.body, got!.headers)).not.toThrow();

    // The next start finds nothing to convert and changes nothing.
    await svc.stop();
    infos.length = 0;
    e = await engineAt(file);
    svc = await service(e, { vault: TokenVault.fromSecrets(key), log });
    expect(infos).toEqual([]);
    expect(
      e.db.prepare('SELECT secret, previous_secret, secret_format FROM webhook_endpoints').get(),
    ).toEqual(sealed);
  });

  it('without a key webhooks are off: nothing loaded, written or sent, and the methods say what to set', async () => {
    const file = path();
    const e = await engineAt(file);
    const keyed = await service(e, { vault: TokenVault.fromSecrets(newKey()) });
    const r = await receiver();
    await keyed.createEndpoint({ url: r.url });
    await keyed.stop();
    services.splice(0);

    const fresh = await engineAt(file);
    const off = await service(fresh, { vault: null });
    const refusal = async (p: () => unknown): Promise<AppError> => {
      try {
        await p();
      } catch (x) {
        return x as AppError;
      }
      throw new Error('expected a refusal');
    };
    for (const call of [
      () => off.createEndpoint({ url: r.url }),
      () => off.listEndpoints(),
      () => off.getEndpoint('ep_x'),
      () => off.replay('ep_x', { since: '2020-01-01T00:00:00Z' }),
    ]) {
      const error = await refusal(call);
      expect(error).toBeInstanceOf(AppError);
      expect(error).toMatchObject({
        code: 'not_found',
        message: expect.stringMatching(/off: set PRESENCE_SECRET_KEY/),
      });
    }
    await change(fresh, 'alice', 'online');
    expect(await off.emit('connector.degraded', { platform: 'slack' })).toBeNull();
    expect(await off.runDue()).toBe(0);
    expect(r.received).toEqual([]);
    expect(fresh.db.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(0);
    expect(off.stats()).toMatchObject({ endpoints: 0, queued: 0 });
  });

  it('presence keys rotate-secret re-encrypts them (plain ones too) with the OAuth tokens, and old ciphertexts leave the file', async () => {
    const file = path();
    const oldKey = newKey();
    const e = await engineAt(file);
    const svc = await service(e, { vault: TokenVault.fromSecrets(oldKey) });
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    const rotated = (await svc.updateEndpoint(ep.id, { rotate_secret: true })) as { secret: string };
    await svc.stop();
    // One more endpoint left in plain text, as if written by an earlier version.
    const plainSecret = `whsec_${randomBytes(32).toString('base64')}`;
    e.db
      .prepare(
        `INSERT INTO webhook_endpoints (id, url, secret, created_at, updated_at, secret_format)
         VALUES ('ep_plain', ?, ?, 0, 0, 'plain')`,
      )
      .run(r.url, plainSecret);
    const oldValues = e.db
      .prepare('SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?')
      .get(ep.id) as {
      secret: string;
      previous_secret: string;
    };
    e.close();
    t = null;

    const env = { ...process.env, PRESENCE_DB: file, LOG_LEVEL: 'silent' };
    const key = newKey();
    const run = (args: string[], k: string): string =>
      execFileSync(process.execPath, [BIN, ...args], {
        env: { ...env, PRESENCE_SECRET_KEY: k },
        encoding: 'utf8',
        stdio: 'pipe',
      });

    // A key it was not given: refused, nothing changed.
    expect(() => run(['keys', 'rotate-secret', '--old', newKey()], key)).toThrow();
    const db = openDb(file);
    expect(
      db.prepare('SELECT secret, previous_secret FROM webhook_endpoints WHERE id = ?').get(ep.id),
    ).toEqual(oldValues);
    db.close();

    expect(run(['keys', 'rotate-secret', '--old', oldKey], key)).toMatch(
      new RegExp(
        `^key ${keyIdOf(Buffer.from(key, 'base64'))}: 3 values re-encrypted, 0 already under it$`,
        'm',
      ),
    );
    expect(run(['keys', 'rotate-secret', '--old', oldKey], key)).toMatch(
      /: 0 values re-encrypted, 3 already under it$/m,
    );

    const bytes = fileBytes(file);
    for (const v of [oldValues.secret, oldValues.previous_secret])
      expect(bytes.includes(Buffer.from(v))).toBe(false);
    for (const form of forms(plainSecret)) expect(bytes.includes(form)).toBe(false);

    // The new key alone opens them, and they are the same secrets.
    const after = await engineAt(file);
    const rotatedSvc = await service(after, { vault: TokenVault.fromSecrets(key) });
    expect(
      rotatedSvc
        .listEndpoints()
        .map((x) => x.id)
        .sort(),
    ).toEqual([ep.id, 'ep_plain'].sort());
    await change(after, 'alice', 'online');
    await rotatedSvc.runDue();
    const fromEp = r.received.filter((q) => {
      try {
        new Webhook(rotated.secret).verify(q.body, q.headers);
        new Webhook(ep.secret).verify(q.body, q.headers);
        return true;
      } catch {
        return false;
      }
    });
    const fromPlain = r.received.filter((q) => {
      try {
        new Webhook(plainSecret).verify(q.body, q.headers);
        return true;
      } catch {
        return false;
      }
    });
    expect([fromEp.length, fromPlain.length]).toEqual([1, 1]);
    await rotatedSvc.stop();
    after.close();
    t = null;
    const stale = await engineAt(file);
    await expect(service(stale, { vault: TokenVault.fromSecrets(oldKey) })).rejects.toThrow(ConfigError);
  }, 60_000);
});
