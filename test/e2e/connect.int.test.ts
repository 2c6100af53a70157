import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { tmpDir } from '../helpers/engine';
import { FakeOAuthServer } from '../helpers/fake-oauth';
import { freePort } from '../helpers/free-port';

const BIN = join(resolve(__dirname, '../..'), 'bin/presence.js');

describe('presence connect and keys rotate-secret, as real processes', () => {
  const tmp = tmpDir();
  let fake: FakeOAuthServer;
  beforeAll(async () => {
    fake = await FakeOAuthServer.start({ flavor: 'discord', user: { id: '80351110224678912' } });
  });
  afterAll(async () => {
    await fake.close();
    tmp.cleanup();
  });

  it('prints the authorize URL, takes the callback on loopback, stores and links; the key can then rotate', async () => {
    const oldKey = randomBytes(32).toString('base64');
    const env = {
      ...process.env,
      ...fake.env,
      PRESENCE_DB: join(tmp.dir, 'cli.db'),
      PRESENCE_SECRET_KEY: oldKey,
    };
    execFileSync(process.execPath, [BIN, 'migrate'], { env });
    const db = (await import('../../src/store/db')).openDb(env.PRESENCE_DB);
    db.prepare("INSERT INTO users (user_id, created_at, updated_at) VALUES ('dora', 0, 0)").run();
    db.close();

    const port = await freePort();
    const child = spawn(
      process.execPath,
      [BIN, 'connect', 'discord', '--user', 'dora', '--port', String(port)],
      { env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const lines = createInterface({ input: child.stdout });
    const url = await new Promise<string>((done) =>
      lines.on('line', (line) => {
        out += `${line}\n`;
        if (line.startsWith(fake.url)) done(line);
      }),
    );
    const query = await fake.authorize(url);
    expect(query.code).toBeDefined();
    const page = await fetch(`http://127.0.0.1:${port}/callback?${new URLSearchParams(query).toString()}`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/Connected discord account 80351110224678912 to dora/);
    const code = await new Promise<number | null>((done) => child.on('exit', done));
    expect(err).toBe('');
    expect(code).toBe(0);
    expect(out).toMatch(/"health": "ok"/);
    expect(out).not.toContain(fake.issued.access[0]);

    const newKey = randomBytes(32).toString('base64');
    const rotated = execFileSync(process.execPath, [BIN, 'keys', 'rotate-secret', '--old', oldKey], {
      env: { ...env, PRESENCE_SECRET_KEY: newKey },
      encoding: 'utf8',
    });
    expect(rotated).toMatch(/\d+ values re-encrypted/);
    expect(rotated).not.toMatch(/ 0 values re-encrypted/);
  });

  it('refuses an unknown user with a clear message', async () => {
    const env = {
      ...process.env,
      ...fake.env,
      PRESENCE_DB: join(tmp.dir, 'cli2.db'),
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    };
    const port = await freePort();
    try {
      execFileSync(process.execPath, [BIN, 'connect', 'discord', '--user', 'ghost', '--port', String(port)], {
        env,
        stdio: 'pipe',
      });
      throw new Error('should have failed');
    } catch (e) {
      const x = e as { status: number; stderr: Buffer };
      expect(x.status).toBe(1);
      expect(x.stderr.toString()).toMatch(/error: .*ghost/);
    }
  });
});
