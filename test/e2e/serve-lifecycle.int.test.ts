/**
 * How `presence serve` starts and stops, as a real process: a start that cannot listen or cannot
 * open its database prints one line naming the cause and exits non-zero; SIGTERM ends the
 * process whatever state the store is in (here: locked by another connection, and a webhook
 * receiver that never answers).
 */

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';

import Database from 'better-sqlite3';

import { tmpDir } from '../helpers/engine';
import { Receiver } from '../helpers/receiver';
import { BIN, cleanEnv, linkUser, startServe, until, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

/** Runs `presence serve` until it exits by itself: exit code, stderr, stdout. */
function serveUntilExit(
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string; stdout: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, 'serve'], {
      env: cleanEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    // A start that hangs instead of exiting (the failure this file guards against) is ended here,
    // so it fails the test rather than outliving it.
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stderr, stdout });
    });
  });
}

describe('presence serve start-up failures', () => {
  const tmp = tmpDir();
  let holder: Server;
  afterAll(async () => {
    await new Promise((r) => holder?.close(r));
    tmp.cleanup();
  });
  const base = () => ({
    PRESENCE_DB: join(tmp.dir, `${randomBytes(4).toString('hex')}.db`),
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    HOST: '127.0.0.1',
  });

  it('a port in use: one line naming the address, exit 1', async () => {
    holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    const { code, stderr } = await serveUntilExit({ ...base(), PORT: String(port) });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([
      expect.stringMatching(
        new RegExp(
          `^presence serve: cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`,
        ),
      ),
    ]);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('a HOST that is not an address or a host name: named with the other bad variables, exit 2', async () => {
    const { code, stderr } = await serveUntilExit({ ...base(), HOST: 'http://0.0.0.0', PORT: 'abc' });
    expect(code).toBe(2);
    expect(stderr).toMatch(/HOST must be an IP address or a host name/);
    expect(stderr).toMatch(/PORT must be a port number \(1–65535\)/);
  });

  it('a database that cannot be opened: one line naming it, exit 1', async () => {
    const file = join(tmp.dir, 'not-a-dir');
    writeFileSync(file, 'x');
    const { code, stderr } = await serveUntilExit({ ...base(), PORT: '0', PRESENCE_DB: join(file, 'p.db') });
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^presence serve: cannot open the database .*not-a-dir\/p\.db \(PRESENCE_DB\)/);
  });
});

describe('presence serve on SIGTERM', () => {
  let svc: ServeProcess | undefined;
  let receiver: Receiver | undefined;
  afterEach(async () => {
    if (svc !== undefined && svc.child.exitCode === null) svc.child.kill('SIGKILL');
    await receiver?.close();
  });

  it('ends even while another connection holds the database locked and a webhook receiver hangs', async () => {
    const tmp = tmpDir();
    try {
      svc = await startServe({
        db: join(tmp.dir, 'locked.db'),
        env: { WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true' },
      });
      const s = svc;
      receiver = await Receiver.start(() => ({ hang: true }));
      expect((await s.api('POST', '/v1/webhooks', { url: receiver.url })).status).toBe(201);
      await linkUser(s, 'ann', { platform: 'slack', external_id: 'U0ANN', workspace_id: 'T0' });
      expect((await s.api('POST', '/v1/heartbeats', { user_id: 'ann', device_id: 'laptop' })).status).toBe(
        204,
      );
      const r = receiver;
      await until(() => r.received.length > 0, 'the webhook delivery to hang at the receiver');

      // Another connection takes the write lock and keeps it.
      const other = new Database(join(tmp.dir, 'locked.db'));
      other.pragma('busy_timeout = 0');
      other.exec('BEGIN IMMEDIATE');
      try {
        // A write now cannot commit. Its answer is not awaited: the stuck store is the point.
        const stuck = s
          .api('POST', '/v1/heartbeats', { user_id: 'ann', device_id: 'phone', status: 'idle' })
          .catch(() => null);
        s.child.kill('SIGTERM');
        let ended = false;
        void s.exited.then(() => (ended = true));
        await until(() => ended, 'serve to exit after SIGTERM', 60_000);
        expect(typeof (await s.exited)).toBe('number');
        expect(s.logs.some((l) => /shutting down/.test(l))).toBe(true);
        // It ended through its shutdown (what could not finish is named in the log, not waited
        // for), not by a crash.
        expect(s.logs.some((l) => /"msg":"stopped/.test(l))).toBe(true);
        await stuck;
      } finally {
        other.exec('ROLLBACK');
        other.close();
      }
    } finally {
      tmp.cleanup();
    }
  });
});
