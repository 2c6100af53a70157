/**
 * @module cli/main
 * The `presence` command (README, Command line).
 */

import { createServer } from 'node:http';
import { resolve } from 'node:path';

import { Command, InvalidArgumentError } from 'commander';

import { runDemoCommand } from '../../demo/cli';
import type { PresenceEngine } from '../aggregator/engine';
import {
  createConnections,
  createEngine,
  createKeys,
  openBackend,
  secretVault,
  storesLocation,
} from '../compose';
import { ConfigError, envHelp, parseEnv, requireSecretKey, resolveHost, type Env } from '../config/env';
import type { AsyncStores } from '../core/ports';
import { cleanShutdown } from '../core/shutdown';
import { AppError } from '../core/errors';
import { silentLog } from '../core/log';
import { rotateSecret } from '../oauth/service';
import { systemClock } from '../core/clock';
import { parseScopes, type ApiKeys } from '../keys/api-keys';
import { createLogger, createService, type Service } from '../main';
import { MigrationError } from '../store/db';
import { PgUnavailableError } from '../store/pg';
import { rotateWebhookSecrets } from '../webhooks/secrets';

/** SIGTERM ends the process within 10 s: close() gives up at 8 s, this at 9.5 s whatever happens. */
const SHUTDOWN_WATCHDOG_MS = 9500;

/** A command failed for a reason the user can act on: printed as one line, exit code 1. */
class CliError extends Error {
  override name = 'CliError';
}

/** `serve` could not start: one line naming the cause, then the process ends. */
class StartError extends Error {
  override name = 'StartError';
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, '; ').trim();
}

/** The one line `serve` prints when it cannot start, naming the cause and what to change. */
export function startFailure(phase: 'start' | 'listen', error: unknown, env: Env): string {
  const e = error as NodeJS.ErrnoException;
  const message = oneLine(e instanceof Error ? e.message : String(error));
  if (phase === 'listen') {
    const where = `${env.HOST.includes(':') ? `[${env.HOST}]` : env.HOST}:${env.PORT}`;
    switch (e.code) {
      case 'EADDRINUSE':
        return `cannot listen on ${where}: the address is already in use (another process has PORT ${env.PORT}; set PORT to a free one)`;
      case 'EADDRNOTAVAIL':
        return `cannot listen on ${where}: HOST is not an address of this machine`;
      case 'EACCES':
        return `cannot listen on ${where}: permission denied (ports below 1024 need privileges; set PORT)`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `cannot listen on ${where}: HOST "${env.HOST}" does not resolve`;
      default:
        return `cannot listen on ${where}: ${message}`;
    }
  }
  if (e instanceof MigrationError) return `database ${storesLocation(env)}: ${message}`;
  if (e instanceof PgUnavailableError) return `cannot start: ${message} (PRESENCE_DATABASE_URL)`;
  if (typeof (e as { severity?: unknown }).severity === 'string')
    return `database ${storesLocation(env)} (PRESENCE_DATABASE_URL): ${message}`;
  // The database is the only file the service opens at start: a file-system error is about it.
  if (e.name === 'SqliteError' || (e.syscall !== undefined && e.path !== undefined))
    return `cannot open the database ${resolve(env.PRESENCE_DB)} (PRESENCE_DB): ${message}`;
  return `cannot start: ${message}`;
}

/** "60s", "2m", "1h", "500ms" or plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (m === null) throw new InvalidArgumentError('expected a duration such as 60s, 2m or 1h');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h']);
}

function positiveInt(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

function positiveNumber(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number above 0');
  return n;
}

/**
 * The stores (PostgreSQL at PRESENCE_DATABASE_URL, else PRESENCE_DB), migrated, with an engine
 * loaded from them, built as `serve` builds them (src/compose.ts): for commands that work on the
 * store.
 */
async function openStore(env: Env): Promise<{ stores: AsyncStores; engine: PresenceEngine }> {
  const { stores } = await openBackend(env);
  const engine = createEngine(env, stores.presence, systemClock);
  await engine.load();
  return { stores, engine };
}

/** Opens the stores (migrating them) for a key command, and closes them after. */
async function withKeyStore(run: (keys: ApiKeys) => Promise<void>): Promise<void> {
  const { stores } = await openBackend(parseEnv());
  try {
    await run(createKeys(stores, systemClock));
  } finally {
    await stores.close();
  }
}

/** How long `presence get --url` waits for the server. */
const GET_TIMEOUT_MS = 10_000;

/** Why a fetch failed, in words: undici says only "fetch failed" and keeps the reason in `cause`. */
function fetchFailure(error: unknown): string {
  const e = error as Error & { cause?: NodeJS.ErrnoException };
  if (e.name === 'TimeoutError') return `no answer within ${GET_TIMEOUT_MS / 1000} s`;
  const code = e.cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused (is `presence serve` running there?)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'the host name does not resolve';
    case 'ECONNRESET':
      return 'the connection was reset';
    default:
      return oneLine(e.cause?.message ?? e.message);
  }
}

export function buildCli(): Command {
  const program = new Command('presence').description(
    'Presence aggregator: who is reachable right now, and where',
  );

  program
    .command('demo')
    .description('run the whole system on simulated platforms with a live table')
    .option('--users <n>', 'simulated people', positiveInt, 12)
    .option('--duration <time>', 'how long to run (e.g. 60s, 5m)', parseDuration, 60_000)
    .option('--speed <x>', 'simulated time per real second', positiveNumber, 1)
    .option('--seed <n>', 'seed of the simulation', positiveInt, 1)
    .action(async (opts: { users: number; duration: number; speed: number; seed: number }) => {
      await runDemoCommand(opts);
    });

  program
    .command('migrate')
    .description('apply pending migrations to PostgreSQL (PRESENCE_DATABASE_URL) or else PRESENCE_DB')
    .action(async () => {
      const env = parseEnv();
      const { stores, migration: report, where } = await openBackend(env);
      await stores.close();
      if (report.applied.length === 0)
        console.log(`${where}: up to date (${report.upToDate.length} migrations applied before)`);
      else {
        console.log(`${where}: ${report.applied.length} pending migration(s)`);
        for (const m of report.applied) console.log(`applied ${m}`);
      }
    });

  program
    .command('serve')
    .description('run the service from environment variables')
    .addHelpText('after', `\n${envHelp()}`)
    .action(async () => {
      const env = parseEnv();
      requireSecretKey(env);
      await resolveHost(env);
      const logger = createLogger(env);
      let svc: Service;
      try {
        svc = await createService(env, { logger });
      } catch (error) {
        throw new StartError(startFailure('start', error, env));
      }
      try {
        await svc.app.listen({ port: env.PORT, host: env.HOST });
      } catch (error) {
        await svc.close();
        throw new StartError(startFailure('listen', error, env));
      }
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          // A second signal: the operator does not want to wait.
          logger.warn({ signal }, 'second signal: exiting now');
          process.exit(1);
        }
        stopping = true;
        logger.info({ signal }, 'shutting down');
        // The steps of close() are bounded; this also covers a step that blocks in between.
        const watchdog = setTimeout(() => {
          console.error('presence serve: shutdown did not finish in time; exiting');
          process.exit(1);
        }, SHUTDOWN_WATCHDOG_MS);
        svc.close().then(
          (report) => {
            clearTimeout(watchdog);
            const clean = cleanShutdown(report);
            if (clean) logger.info({}, 'stopped');
            else logger.warn({ ...report }, 'stopped, with steps left unfinished');
            process.exit(clean ? 0 : 1);
          },
          (error: unknown) => {
            clearTimeout(watchdog);
            logger.error({ err: error }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
    });

  const keys = program.command('keys').description('API keys');
  keys
    .command('create')
    .description('create an API key and print it once (alone on the last line)')
    .requiredOption('--scopes <list>', 'comma-separated: read, write, admin', (v) => {
      try {
        return parseScopes(v);
      } catch (e) {
        throw new InvalidArgumentError((e as Error).message);
      }
    })
    .option('--name <name>', 'a label to recognise it by')
    .action(async (opts: { scopes: ReturnType<typeof parseScopes>; name?: string }) => {
      await withKeyStore(async (store) => {
        const { key, info } = await store.create(opts.scopes, opts.name ?? null);
        console.log(`created key ${info.id} with scopes ${info.scopes.join(',')}; it is shown only now:`);
        console.log(key);
      });
    });
  keys
    .command('list')
    .description('list API keys (never their secrets)')
    .action(async () => {
      await withKeyStore(async (store) => {
        const rows = (await store.list()).map((k) => [
          k.id,
          k.scopes.join(','),
          k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`,
          k.name ?? '',
        ]);
        if (rows.length === 0) {
          console.log('no API keys yet: create one with `presence keys create --scopes read,write,admin`');
          return;
        }
        const table = [['ID', 'SCOPES', 'STATE', 'NAME'], ...rows];
        const widths = [0, 1, 2].map((i) => Math.max(...table.map((r) => r[i]!.length)));
        for (const r of table)
          console.log(
            r
              .map((cell, i) => (i < 3 ? cell.padEnd(widths[i]!) : cell))
              .join('  ')
              .trimEnd(),
          );
      });
    });
  keys
    .command('revoke')
    .description('revoke an API key (a running server stops accepting it within 1 s)')
    .argument('<id>')
    .action(async (id: string) => {
      await withKeyStore(async (store) => {
        if (!(await store.revoke(id))) {
          console.error(`no active key ${id}`);
          process.exitCode = 1;
        } else console.log(`revoked ${id}`);
      });
    });

  keys
    .command('rotate-secret')
    .description('re-encrypt every stored OAuth token and webhook signing secret under PRESENCE_SECRET_KEY')
    .option('--old <keys>', 'the previous key(s), comma-separated (or PRESENCE_SECRET_KEY_PREVIOUS)')
    .action(async (opts: { old?: string }) => {
      const env = parseEnv(
        opts.old === undefined ? process.env : { ...process.env, PRESENCE_SECRET_KEY_PREVIOUS: opts.old },
      );
      const newKey = requireSecretKey(env);
      const { stores } = await openBackend(env);
      try {
        // Tokens and webhook secrets in one transaction: all under the new key, or nothing
        // changed. secure_delete and a WAL truncation keep the old ciphertexts (open to the old
        // key, perhaps the reason for the rotation) from lingering in freed pages.
        const vault = secretVault(env)!;
        const { result: report } = await stores.scrubbing(() =>
          stores.transaction(async (tx) => {
            const tokens = await rotateSecret(
              stores.connections,
              { oldKeys: env.PRESENCE_SECRET_KEY_PREVIOUS, newKey },
              tx,
            );
            const hooks = await rotateWebhookSecrets(stores.webhooks, vault, tx);
            return {
              key_id: tokens.key_id,
              reencrypted: tokens.reencrypted + hooks.reencrypted,
              already_current: tokens.already_current + hooks.already_current,
            };
          }),
        );
        console.log(
          `key ${report.key_id}: ${report.reencrypted} values re-encrypted, ${report.already_current} already under it`,
        );
      } finally {
        await stores.close();
      }
    });

  program
    .command('connect')
    .description('connect a platform account for a user: prints the authorize URL and waits for the callback')
    .argument('<platform>', 'slack, teams, discord, zoom or linkedin')
    .requiredOption('--user <id>', 'the user the account belongs to')
    .option(
      '--port <n>',
      'loopback port for the callback (register http://127.0.0.1:<port>/callback with the app)',
      positiveInt,
      8765,
    )
    .option('--timeout <time>', 'how long to wait for the callback', parseDuration, 300_000)
    .action(async (platform: string, opts: { user: string; port: number; timeout: number }) => {
      const env = parseEnv();
      requireSecretKey(env);
      const { stores, engine } = await openStore(env);
      // No webhook outbox runs here: the connect flow itself emits no event.
      const service = createConnections(env, stores, engine, {
        clock: systemClock,
        log: silentLog,
        onEvent: () => undefined,
      })!;
      const redirectUri = `http://127.0.0.1:${opts.port}/callback`;
      try {
        const result = await new Promise<string>((resolve, reject) => {
          const server = createServer((req, res) => {
            const url = new URL(req.url ?? '/', redirectUri);
            if (url.pathname !== '/callback') {
              res.writeHead(404).end();
              return;
            }
            service.completeCallback(platform, Object.fromEntries(url.searchParams)).then(
              (c) => {
                res
                  .writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
                  .end(
                    `Connected ${platform} account ${c.external_id} to ${c.user_id}. You can close this window.\n`,
                  );
                server.close();
                resolve(JSON.stringify(c, null, 2));
              },
              (error: unknown) => {
                res
                  .writeHead(400, { 'content-type': 'text/plain; charset=utf-8' })
                  .end(`Not connected: ${(error as Error).message}\n`);
                server.close();
                reject(error instanceof Error ? error : new Error(String(error)));
              },
            );
          });
          server.on('error', reject);
          server.listen(opts.port, '127.0.0.1', () => {
            service.startAuthorize(platform, opts.user, redirectUri).then(
              (start) =>
                console.log(
                  `Open this URL in a browser and grant access (waiting up to ${Math.round(opts.timeout / 1000)} s):\n${start.url}`,
                ),
              (error: unknown) => {
                server.close();
                reject(error instanceof Error ? error : new Error(String(error)));
              },
            );
          });
          setTimeout(() => {
            server.close();
            reject(new Error('no callback arrived in time'));
          }, opts.timeout).unref();
        });
        console.log(result);
      } finally {
        await service.stop();
        await engine.flush();
        await stores.close();
      }
    });

  program
    .command('get')
    .description('print presence from a running server (--url, or PRESENCE_URL) or else from the store')
    .argument('<user_id...>')
    .option('--url <url>', 'base URL of a running server (or PRESENCE_URL)')
    .option('--key <key>', 'API key with the read scope (or PRESENCE_API_KEY)')
    .action(async (ids: string[], opts: { url?: string; key?: string }) => {
      const url = opts.url ?? process.env.PRESENCE_URL;
      if (url !== undefined && url !== '') {
        const key = opts.key ?? process.env.PRESENCE_API_KEY;
        if (key === undefined)
          throw new ConfigError(['PRESENCE_API_KEY: a key with the read scope is needed to ask a server']);
        let target: URL;
        try {
          target = new URL(`/v1/presence?user_ids=${ids.map(encodeURIComponent).join(',')}`, url);
        } catch {
          throw new CliError(`${url} is not a URL (--url or PRESENCE_URL, e.g. http://127.0.0.1:8080)`);
        }
        const base = target.origin;
        let res: Response;
        try {
          res = await fetch(target, {
            headers: { authorization: `Bearer ${key}` },
            signal: AbortSignal.timeout(GET_TIMEOUT_MS),
          });
        } catch (error) {
          throw new CliError(`cannot reach ${base}: ${fetchFailure(error)}`);
        }
        const text = await res.text();
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          throw new CliError(
            `${base} answered ${res.status} with something other than JSON: is it a presence server?`,
          );
        }
        console.log(JSON.stringify(body, null, 2));
        if (!res.ok) process.exitCode = 1;
        return;
      }
      const env = parseEnv();
      const { stores, engine } = await openStore(env);
      console.log(JSON.stringify(engine.getMany(ids), null, 2));
      await engine.flush();
      await stores.close();
    });

  return program;
}

/**
 * An error of opening or using the store: SQLite's, a file's, PostgreSQL's (a server error with
 * its SQLSTATE, or none answering), or the migration runner's.
 */
function isDatabaseError(e: NodeJS.ErrnoException): boolean {
  const severity = (e as { severity?: unknown }).severity;
  return (
    e instanceof MigrationError ||
    e.name === 'SqliteError' ||
    typeof severity === 'string' ||
    (e.syscall !== undefined && e.path !== undefined)
  );
}

/** The database the command was configured with, for an error about it (never credentials). */
function databaseWhere(): string {
  try {
    return storesLocation(parseEnv());
  } catch {
    return resolve(process.env.PRESENCE_DB || './data/presence.db');
  }
}

export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildCli().parseAsync([...argv]);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exitCode = 2;
      return;
    }
    if (error instanceof StartError) {
      console.error(`presence serve: ${error.message}`);
      // Whatever a failed start left behind (a timer, a socket) must not keep the process up.
      process.exit(1);
    }
    if (error instanceof AppError || error instanceof CliError) {
      console.error(`error: ${error.message}`);
      process.exitCode = 1;
      return;
    }
    const e = error as NodeJS.ErrnoException;
    if (e instanceof PgUnavailableError) {
      // Its message names the server (never the password) and why.
      console.error(`error: ${oneLine(e.message)} (PRESENCE_DATABASE_URL)`);
      process.exitCode = 1;
      return;
    }
    if (isDatabaseError(e)) {
      // The store the command opened: a locked, unreadable, unreachable or edited database.
      console.error(`error: database ${databaseWhere()}: ${oneLine(e.message)}`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

if (require.main === module) void main();
