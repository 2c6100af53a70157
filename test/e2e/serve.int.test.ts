import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { tmpDir } from '../helpers/engine';

const ROOT = resolve(__dirname, '../..');
const BIN = join(ROOT, 'bin/presence.js');

describe('presence serve, as a real process', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('starts from the environment, answers over HTTP, and stops cleanly on SIGTERM', async () => {
    const env = {
      ...process.env,
      PRESENCE_DB: join(tmp.dir, 'serve.db'),
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    };
    // `presence keys create` prints the key alone on its last line.
    const out = execFileSync(process.execPath, [BIN, 'keys', 'create', '--scopes', 'read,write'], {
      env,
      encoding: 'utf8',
    });
    const key = out.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^pk_/);

    const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    const logs: string[] = [];
    const lines = createInterface({ input: child.stdout });
    const base = await new Promise<string>((done, fail) => {
      lines.on('line', (line) => {
        logs.push(line);
        const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m) done(m[1]!);
      });
      child.on('exit', (code) => fail(new Error(`serve exited early (${code}): ${logs.join('\n')}`)));
    });

    const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
    const hb = await fetch(`${base}/v1/heartbeats`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({ user_id: 'eve', device_id: 'laptop' }),
    });
    expect(hb.status).toBe(204);
    const res = await fetch(`${base}/v1/presence?user_ids=eve,nobody`, { headers: auth });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { presence: Record<string, { status: string }>; unknown: string[] };
    expect(body.presence.eve?.status).toBe('online');
    expect(body.unknown).toEqual(['nobody']);
    expect((await fetch(`${base}/v1/presence?user_ids=eve`)).status).toBe(401);
    // `presence get` asks the running server when given its URL and a key.
    const { stdout: fromServer } = await promisify(execFile)(
      process.execPath,
      [BIN, 'get', 'eve', '--url', base],
      {
        env: { ...env, PRESENCE_API_KEY: key },
      },
    );
    expect(JSON.parse(fromServer)).toMatchObject({ presence: { eve: { status: 'online' } }, unknown: [] });

    const exited = new Promise<number | null>((done) => child.on('exit', (code) => done(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Structured logs with request ids, and never the key.
    const requestLine = logs
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'request completed');
    expect(requestLine).toMatchObject({
      reqId: expect.any(String),
      method: expect.any(String),
      status: expect.any(Number),
    });
    // The secret part: everything after `pk_<16 hex id>_` (it may itself hold '_').
    const secret = key.slice('pk_0123456789abcdef_'.length);
    expect(secret).toHaveLength(32);
    expect(logs.join('\n')).not.toContain(secret);

    // What was committed is there for the next start.
    const again = execFileSync(process.execPath, [BIN, 'get', 'eve'], { env, encoding: 'utf8' });
    expect(JSON.parse(again)).toMatchObject({ presence: { eve: { user_id: 'eve', version: 1 } } });
  });

  it('refuses to start with a clear message naming each bad variable', () => {
    let message = '';
    try {
      execFileSync(process.execPath, [BIN, 'serve'], {
        env: {
          ...process.env,
          PRESENCE_DB: join(tmp.dir, 'bad.db'),
          PORT: 'eighty',
          PRESENCE_SECRET_KEY: 'short',
          PRESENCE_LADDER: 'up,down',
        },
        encoding: 'utf8',
        stdio: 'pipe',
      });
    } catch (e) {
      const err = e as { status: number; stderr: string };
      expect(err.status).toBe(2);
      message = err.stderr;
    }
    expect(message).toMatch(/PORT/);
    expect(message).toMatch(/PRESENCE_SECRET_KEY/);
    expect(message).toMatch(/PRESENCE_LADDER/);
    expect(message).not.toContain('short');
  });
});
