/**
 * The package as a consumer gets it: `npm pack` (which builds dist/ through prepack), the tarball
 * unpacked into a temporary project's node_modules as npm installs it, then used from plain Node
 * (require and import), from TypeScript (the shipped declarations), and as the `presence`
 * command running compiled JavaScript.
 *
 * The tarball is unpacked rather than `npm install`ed because npm cannot resolve the runtime
 * dependencies offline (it wants their registry metadata) and tests never reach the network.
 * That is also the point of the first checks: the webhook verifier runs with no dependency
 * installed at all. For the command, the runtime dependencies are linked from this checkout,
 * and only those: tsx and TypeScript are not reachable from the installed package.
 */

import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { newSecret, signatureHeader, secretKey } from '../../src/webhooks/sign';

const run = promisify(execFile);
const ROOT = join(__dirname, '..', '..');
const MINUTES = 60_000;

interface PackResult {
  filename: string;
  files: { path: string }[];
}

let tmp: string;
let consumer: string;
let installed: string;
let files: string[];

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'presence-pack-'));
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', tmp], {
    cwd: ROOT,
    maxBuffer: 64 * 1024 * 1024,
    timeout: 8 * MINUTES,
  });
  // npm prints the prepack script's output before the JSON.
  const packed = (JSON.parse(stdout.slice(stdout.indexOf('['))) as PackResult[])[0]!;
  files = packed.files.map((f) => f.path);
  consumer = join(tmp, 'consumer');
  installed = join(consumer, 'node_modules', 'presence-aggregator');
  mkdirSync(installed, { recursive: true });
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  await run('tar', ['-xzf', join(tmp, packed.filename), '-C', installed, '--strip-components=1']);
}, 10 * MINUTES);

afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
});

/** A presence.changed message signed now, as the service sends it. */
function signedMessage(): { secret: string; body: string; headers: Record<string, string> } {
  const secret = newSecret();
  const body = JSON.stringify({
    type: 'presence.changed',
    timestamp: new Date().toISOString(),
    data: { user_id: 'alice', version: 3, changed: ['status'] },
  });
  const id = 'msg_test1';
  const ts = Math.floor(Date.now() / 1000);
  return {
    secret,
    body,
    headers: {
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': signatureHeader([secretKey(secret)], id, ts, body),
    },
  };
}

async function node(file: string, source: string, arg: unknown): Promise<string> {
  writeFileSync(join(consumer, file), source);
  const { stdout } = await run(process.execPath, [file, JSON.stringify(arg)], {
    cwd: consumer,
    timeout: 2 * MINUTES,
  });
  return stdout.trim();
}

describe('the npm package', () => {
  it('ships compiled JavaScript with declarations, and no tests, fixtures, benchmarks, CI or sources', () => {
    for (const needed of [
      'package.json',
      'README.md',
      'bin/presence.js',
      'dist/src/index.js',
      'dist/src/index.d.ts',
      'dist/src/client/index.js',
      'dist/src/client/index.d.ts',
      'dist/src/cli/main.js',
      'dist/migrations/0001_init.sql',
      'dist/dashboard/index.html',
      'dist/dashboard/app.js',
      'dist/dashboard/app.css',
    ]) {
      expect(files).toContain(needed);
    }
    const unwanted = files.filter(
      (f) =>
        /^(test|bench|\.ci|src|demo|migrations|scripts)\//.test(f) ||
        /(^|\/)fixtures\//.test(f) ||
        /\.test\.js$/.test(f) ||
        (f.endsWith('.ts') && !f.endsWith('.d.ts')),
    );
    expect(unwanted).toEqual([]);
  });

  it('declares its entry points, and keeps test-only and development tools out of its dependencies', () => {
    const pkg = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8'));
    expect(pkg.exports['.']).toEqual({ types: './dist/src/index.d.ts', default: './dist/src/index.js' });
    expect(pkg.exports['./client']).toEqual({
      types: './dist/src/client/index.d.ts',
      default: './dist/src/client/index.js',
    });
    expect(pkg.types).toBe('./dist/src/index.d.ts');
    for (const devOnly of ['tsx', 'typescript', 'standardwebhooks', 'jest']) {
      expect(Object.keys(pkg.dependencies)).not.toContain(devOnly);
    }
  });

  it('verifyWebhook works from require() with no dependency installed, loading nothing but its own files', async () => {
    const out = await node(
      'verify.cjs',
      `const { verifyWebhook, WebhookVerificationError } = require('presence-aggregator');
       const m = JSON.parse(process.argv[2]);
       const event = verifyWebhook(m.secret, m.body, m.headers);
       let refused = null;
       try { verifyWebhook(m.secret, m.body.replace('alice', 'mallory'), m.headers); }
       catch (e) { refused = e instanceof WebhookVerificationError ? e.message : 'wrong error: ' + e; }
       const loaded = Object.keys(require.cache).filter((f) => !f.endsWith('verify.cjs'));
       console.log(JSON.stringify({ type: event.type, user: event.data.user_id, refused, loaded }));`,
      signedMessage(),
    );
    const result = JSON.parse(out);
    expect(result.type).toBe('presence.changed');
    expect(result.user).toBe('alice');
    expect(result.refused).toMatch(/no webhook-signature matches/);
    expect(result.loaded.length).toBeGreaterThan(0);
    for (const f of result.loaded as string[]) expect(f).toContain(join(installed, 'dist', 'src'));
  });

  it('verifyWebhook and the client entry work from import (ESM)', async () => {
    const out = await node(
      'verify.mjs',
      `import { verifyWebhook } from 'presence-aggregator';
       import { CLIENT_AVAILABLE, PresenceClient } from 'presence-aggregator/client';
       const m = JSON.parse(process.argv[2]);
       const event = verifyWebhook(m.secret, Buffer.from(m.body), m.headers);
       const c = new PresenceClient({ url: 'http://127.0.0.1:1', token: 'k', userIds: ['a'] });
       console.log(JSON.stringify({ version: event.data.version, client: CLIENT_AVAILABLE, map: c.presence.size }));`,
      signedMessage(),
    );
    expect(JSON.parse(out)).toEqual({ version: 3, client: true, map: 0 });
  });

  it(
    'its declarations type a consumer: events narrow by type, the client entry has the presence object',
    async () => {
      writeFileSync(
        join(consumer, 'consumer.ts'),
        `import { verifyWebhook, type WebhookEvent } from 'presence-aggregator';
       import type { Presence, Status } from 'presence-aggregator/client';
       export function handle(secret: string, raw: string, headers: Record<string, string>): Status | null {
         const event: WebhookEvent = verifyWebhook(secret, raw, headers);
         if (event.type !== 'presence.changed') return null;
         const current: Presence = event.data.current;
         return current.status;
       }
       // @ts-expect-error: a status outside the ladder is not a Status
       export const wrong: Status = 'sleeping';
      `,
      );
      const tsc = [require.resolve('typescript/bin/tsc'), '--noEmit', '--strict'];
      const common = ['--types', 'node', '--typeRoots', join(ROOT, 'node_modules', '@types'), 'consumer.ts'];
      // Both resolutions: exports maps (node16) and the older one that reads typesVersions (node10).
      for (const mode of [
        ['--module', 'node16', '--moduleResolution', 'node16'],
        ['--module', 'commonjs', '--moduleResolution', 'node10'],
      ]) {
        await expect(
          run(process.execPath, [...tsc, ...mode, ...common], { cwd: consumer, timeout: 4 * MINUTES }),
        ).resolves.toBeDefined();
      }
    },
    10 * MINUTES,
  );

  it(
    'the installed `presence` command runs the compiled JavaScript, without tsx (its stream worker too)',
    async () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
      // The runtime dependencies, and nothing else, as an install with --omit=dev would have them.
      for (const dep of Object.keys(pkg.dependencies)) {
        const at = join(consumer, 'node_modules', dep);
        mkdirSync(join(at, '..'), { recursive: true });
        symlinkSync(join(ROOT, 'node_modules', dep), at);
      }
      const resolve = (name: string): Promise<unknown> =>
        run(process.execPath, ['-e', `require.resolve(${JSON.stringify(name)})`], { cwd: installed });
      await expect(resolve('tsx')).rejects.toThrow(/Cannot find module/);
      await expect(resolve('typescript')).rejects.toThrow(/Cannot find module/);

      const { stdout } = await run(process.execPath, [join(installed, 'bin', 'presence.js'), 'migrate'], {
        cwd: consumer,
        env: { ...process.env, PRESENCE_DB: join(tmp, 'installed.db'), NODE_OPTIONS: '' },
        timeout: 2 * MINUTES,
      });
      expect(stdout).toMatch(/applied 0001_init/);

      // `presence serve` from the package serves the dashboard as built into dist/dashboard.
      const serve = spawn(process.execPath, [join(installed, 'bin', 'presence.js'), 'serve'], {
        cwd: consumer,
        env: {
          ...process.env,
          PRESENCE_DB: join(tmp, 'installed.db'),
          PRESENCE_SECRET_KEY: Buffer.alloc(32, 7).toString('base64'),
          PORT: '0',
          HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          NODE_OPTIONS: '',
          // A stream worker is forked from the compiled code too (dist/src/stream/workers/worker.js).
          PRESENCE_STREAM_WORKERS: '1',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      try {
        const base = await new Promise<string>((done, fail) => {
          serve.once('exit', (code) => fail(new Error(`serve exited (${code})`)));
          createInterface({ input: serve.stdout }).on('line', (line) => {
            const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
            if (m) done(m[1]!);
          });
        });
        const page = await fetch(`${base}/dashboard`);
        expect(page.status).toBe(200);
        expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
        expect(await page.text()).toContain('/dashboard/app.js');
        const js = await fetch(`${base}/dashboard/app.js`);
        expect(await js.text()).toBe(readFileSync(join(installed, 'dist', 'dashboard', 'app.js'), 'utf8'));
        // The service waits for its workers before it listens: the compiled worker is running.
        const metrics = await (await fetch(`${base}/metrics`)).text();
        expect(metrics).toMatch(/^stream_workers 1$/m);
      } finally {
        serve.kill('SIGTERM');
        await new Promise((done) => (serve.exitCode === null ? serve.once('exit', done) : done(null)));
      }
    },
    5 * MINUTES,
  );
});
