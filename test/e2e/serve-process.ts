/**
 * @module test/e2e/serve-process
 * The shipped `bin/presence.js serve` as a child process, for end-to-end tests: a fresh database
 * and secret key, an API key made with `presence keys create`, the base URL read from the
 * "listening at" log line, JSON calls to the HTTP API, a loopback webhook receiver whose
 * deliveries are verified with the `standardwebhooks` package, and waits that poll a condition
 * (never a fixed sleep), so they hold on a loaded machine.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';

import { Webhook } from 'standardwebhooks';

import { PresenceClient } from '../../src/client';
import { tmpDir } from '../helpers/engine';
import { fetchApi } from '../helpers/fetch-api';
import { Receiver } from '../helpers/receiver';

export const ROOT = resolve(__dirname, '../..');
export const BIN = join(ROOT, 'bin/presence.js');

/** Generous: the child starts tsx and discord.js on a machine shared with many other processes. */
export const START_TIMEOUT_MS = 60_000;

/** Every variable the service reads, removed from the inherited environment so tests start clean. */
const INHERITED_DENY =
  /^(PORT|HOST|PUBLIC_URL|LOG_LEVEL|PRESENCE_|WEBHOOK_|SLACK_|MS_|GRAPH_|DISCORD_|ZOOM_|WHATSAPP_|LINKEDIN_)/;

export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!INHERITED_DENY.test(k)) env[k] = v;
  return { ...env, ...extra };
}

/** Runs the bin to completion: exit code, stdout and stderr (never throws on a non-zero exit). */
export async function runBin(
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], {
      env,
      encoding: 'utf8',
      timeout: START_TIMEOUT_MS,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    return {
      code: typeof err.code === 'number' ? err.code : -1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    };
  }
}

/** Resolves once `predicate` resolves truthy, polling every 50 ms; rejects after `timeoutMs` naming `what`. */
export async function until<T>(
  predicate: () => T | Promise<T>,
  what: string,
  timeoutMs = 60_000,
): Promise<NonNullable<T>> {
  const end = performance.now() + timeoutMs;
  let last: Error | undefined = undefined;
  for (;;) {
    try {
      const v = await predicate();
      if (v !== undefined && v !== null && v !== false) return v;
    } catch (e) {
      last = e instanceof Error ? e : new Error(String(e));
    }
    if (performance.now() > end)
      throw new Error(`timed out waiting for ${what}${last === undefined ? '' : `: ${last.message}`}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface ApiAnswer {
  readonly status: number;
  readonly body: any;
}

export interface ServeProcess {
  readonly child: ChildProcess;
  readonly base: string;
  /** An API key with read, write and admin scopes. */
  readonly key: string;
  readonly env: NodeJS.ProcessEnv;
  /** Every stdout line (pino JSON) so far. */
  readonly logs: string[];
  /** Everything written to stderr so far. */
  stderr(): string;
  api(method: string, path: string, body?: unknown): Promise<ApiAnswer>;
  /** GET /v1/connectors, the entry of one platform. */
  connector(platform: string): Promise<any>;
  /** Resolves with the exit code (or the signal's name) once the process ended. */
  readonly exited: Promise<number | string>;
  /** SIGTERM, then waits for the exit; cleans the temporary directory. */
  stop(): Promise<number | string>;
}

export interface StartOptions {
  /** Environment added to the defaults (fresh PRESENCE_DB, PRESENCE_SECRET_KEY, PORT=0, HOST). */
  readonly env?: Record<string, string>;
  /** An existing database file instead of a fresh one. */
  readonly db?: string;
}

/** Starts `presence serve` and resolves once it listens. */
export async function startServe(options: StartOptions = {}): Promise<ServeProcess> {
  const tmp = tmpDir();
  const env = cleanEnv({
    PRESENCE_DB: options.db ?? join(tmp.dir, 'serve.db'),
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    ...options.env,
  });
  const made = await runBin(['keys', 'create', '--scopes', 'read,write,admin'], env);
  if (made.code !== 0) throw new Error(`keys create failed (${made.code}): ${made.stderr}`);
  const key = made.stdout.trim().split('\n').at(-1)!;

  const child = spawn(process.execPath, [BIN, 'serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  // 'close', not 'exit': by then stdout and stderr have been read to their end.
  const exited = new Promise<number | string>((done) =>
    child.on('close', (code, signal) => done(code ?? signal ?? -1)),
  );
  const lines = createInterface({ input: child.stdout });
  const base = await new Promise<string>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`serve did not listen in time:\n${logs.join('\n')}\n${stderr}`));
    }, START_TIMEOUT_MS);
    lines.on('line', (line) => {
      logs.push(line);
      const m = /listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
      if (m) {
        clearTimeout(timer);
        done(m[1]!);
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`serve exited early (${code}):\n${logs.join('\n')}\n${stderr}`));
    });
  });

  const api = async (method: string, path: string, body?: unknown): Promise<ApiAnswer> => {
    const answer = await fetchApi(base, key, method, path, body);
    return { status: answer.status, body: answer.body };
  };

  return {
    child,
    base,
    key,
    env,
    logs,
    stderr: () => stderr,
    api,
    async connector(platform) {
      const res = await api('GET', '/v1/connectors');
      if (res.status !== 200) throw new Error(`GET /v1/connectors: ${res.status}`);
      return (res.body.connectors as { platform: string }[]).find((c) => c.platform === platform);
    },
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      tmp.cleanup();
      return code;
    },
  };
}

/** Creates a user and links one platform account over the API. */
export async function linkUser(
  svc: ServeProcess,
  userId: string,
  account: { platform: string; external_id: string; workspace_id?: string },
): Promise<void> {
  const put = await svc.api('PUT', `/v1/users/${userId}`, {});
  if (put.status >= 300)
    throw new Error(`PUT /v1/users/${userId}: ${put.status} ${JSON.stringify(put.body)}`);
  const link = await svc.api('POST', `/v1/users/${userId}/accounts`, account);
  if (link.status >= 300) throw new Error(`link ${userId}: ${link.status} ${JSON.stringify(link.body)}`);
}

export interface VerifiedEvent {
  readonly type: string;
  readonly data: any;
}

/**
 * A loopback receiver registered as a webhook endpoint of the running service. Every delivery
 * is verified with the `standardwebhooks` package against the secret the API returned; one that
 * does not verify fails the wait.
 */
export async function webhookReceiver(svc: ServeProcess) {
  const receiver = await Receiver.start();
  const res = await svc.api('POST', '/v1/webhooks', { url: receiver.url });
  if (res.status !== 201 && res.status !== 200)
    throw new Error(`POST /v1/webhooks: ${res.status} ${JSON.stringify(res.body)}`);
  const secret = res.body.secret as string;
  const verifier = new Webhook(secret);
  // Each request is verified once: a test polling `events()` while hundreds arrive must not
  // spend its event loop re-verifying them (the receiver shares it, and would answer late).
  const verified: VerifiedEvent[] = [];
  const events = (): VerifiedEvent[] => {
    for (let i = verified.length; i < receiver.received.length; i++) {
      const r = receiver.received[i]!;
      verified.push(verifier.verify(r.body, r.headers) as VerifiedEvent);
    }
    return verified;
  };
  return {
    receiver,
    /** The endpoint's id. */
    endpointId: res.body.id as string,
    events,
    /** Waits for a verified presence.changed event of `userId` matching `pred`. */
    presenceChanged(userId: string, pred: (current: any) => boolean, what: string) {
      return until(
        () =>
          events().find(
            (e) => e.type === 'presence.changed' && e.data.user_id === userId && pred(e.data.current),
          ),
        `a signed presence.changed webhook: ${what}`,
      );
    },
    close: () => receiver.close(),
  };
}

/** Whether a process of this id still runs. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A device's heartbeat through the API, live for an hour; fails the test unless it is taken (204). */
export async function heartbeatVia(
  serve: ServeProcess,
  user: string,
  status: string,
  device = 'laptop',
): Promise<void> {
  const res = await serve.api('POST', '/v1/heartbeats', {
    user_id: user,
    device_id: device,
    status,
    ttl_seconds: 3600,
  });
  expect(res.status).toBe(204);
}

type ClientOptions = ConstructorParameters<typeof PresenceClient>[0];

/** Stream clients (`presence-aggregator/client`) of the current `serve()`, closed together by `closeAll`. */
export function presenceClients(
  serve: () => ServeProcess,
  defaults: Partial<ClientOptions>,
): { client(options?: Partial<ClientOptions>): PresenceClient; closeAll(): void } {
  const open: PresenceClient[] = [];
  return {
    client(options = {}) {
      const c = new PresenceClient({ url: serve().base, token: serve().key, ...defaults, ...options });
      open.push(c);
      return c;
    },
    closeAll() {
      for (const c of open.splice(0)) c.close();
    },
  };
}
