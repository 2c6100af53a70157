/**
 * The command line's messages, through the shipped bin as child processes: each names the thing
 * the user has to change, in one line, without a stack trace.
 */

import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { ENV_VARIABLES } from '../../src/config/env';
import { tmpDir } from '../helpers/engine';
import { cleanEnv, runBin, startServe } from './serve-process';

describe('presence command line', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());
  const env = (extra: Record<string, string> = {}) =>
    cleanEnv({
      PRESENCE_DB: join(tmp.dir, `${randomBytes(4).toString('hex')}.db`),
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      ...extra,
    });

  it('get against a server that is not there: one line naming the URL', async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const url = `http://127.0.0.1:${port}`;
    const r = await runBin(['get', 'alice', '--url', url, '--key', 'pk_0000000000000000_x'], env());
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      `error: cannot reach ${url}: connection refused (is \`presence serve\` running there?)`,
    ]);
    expect(r.stderr).not.toMatch(/TypeError|fetch failed|\n\s+at /);

    const bad = await runBin(['get', 'alice', '--url', 'not a url', '--key', 'k'], env());
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toMatch(/^error: not a url is not a URL/);
  });

  it('migrate says which database it migrated, and what it applied', async () => {
    const e = env();
    const first = await runBin(['migrate'], e);
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines[0]).toBe(`${e.PRESENCE_DB}: ${lines.length - 1} pending migration(s)`);
    expect(lines.slice(1).every((l) => /^applied \d{4}_[a-z0-9_]+$/.test(l))).toBe(true);
    expect(lines[1]).toBe('applied 0001_init');
    const again = await runBin(['migrate'], e);
    expect(again.stdout.trim()).toBe(
      `${e.PRESENCE_DB}: up to date (${lines.length - 1} migrations applied before)`,
    );
  });

  it('serve --help lists every environment variable', async () => {
    const r = await runBin(['serve', '--help'], env());
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Environment variables:/);
    for (const name of ENV_VARIABLES) expect(r.stdout).toMatch(new RegExp(`^\\s+${name}\\b`, 'm'));
    expect(r.stdout).toMatch(/PORT\s+port to listen on/);
  });

  it('PORT=abc says what PORT must be', async () => {
    const r = await runBin(['serve'], env({ PORT: 'abc' }));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^ {2}- PORT must be a port number \(1–65535\)$/m);
    expect(r.stderr).not.toMatch(/Invalid input|NaN/);
  });

  it('keys list has a header row', async () => {
    const e = env();
    expect((await runBin(['keys', 'create', '--scopes', 'read', '--name', 'ops'], e)).code).toBe(0);
    const r = await runBin(['keys', 'list'], e);
    const [header, row, ...rest] = r.stdout.trim().split('\n');
    expect(header).toMatch(/^ID\s+SCOPES\s+STATE\s+NAME$/);
    expect(row).toMatch(/^[0-9a-f]{16}\s+read\s+active\s+ops$/);
    expect(rest).toEqual([]);
    // The columns line up under the header.
    expect(row!.indexOf('read')).toBe(header!.indexOf('SCOPES'));
  });

  it('a database that cannot be opened: one line naming it, for any command', async () => {
    const file = join(tmp.dir, 'a-file');
    writeFileSync(file, 'x');
    const r = await runBin(['keys', 'list'], env({ PRESENCE_DB: join(file, 'p.db') }));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^error: database .*a-file\/p\.db: /),
    ]);
  });

  it('a webhook endpoint on a loopback address is refused naming WEBHOOK_ALLOW_PRIVATE_TARGETS', async () => {
    const svc = await startServe({});
    try {
      const r = await svc.api('POST', '/v1/webhooks', { url: 'http://127.0.0.1:9/hook' });
      expect(r.status).toBe(400);
      expect(r.body.error.message).toMatch(/loopback address.*WEBHOOK_ALLOW_PRIVATE_TARGETS=true/);
    } finally {
      await svc.stop();
    }
  });
});
