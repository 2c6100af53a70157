/**
 * @module cli/main
 * The `presence` command (README, Command line).
 */

import { createServer } from 'node:http';

import { Command, InvalidArgumentError } from 'commander';

import { runDemoCommand } from '../../demo/cli';
import { PresenceEngine } from '../aggregator/engine';
import { ConfigError, parseEnv, requireSecretKey, type Env } from '../config/env';
import { AppError } from '../core/errors';
import { silentLog } from '../core/log';
import { ConnectionService, rotateSecret } from '../oauth/service';
import { TokenVault } from '../oauth/vault';
import { systemClock } from '../core/clock';
import { Ladder } from '../core/presence';
import { createLogger, createService } from '../main';
import { migrate, openDb, type Db } from '../store/db';
import { ApiKeyStore, parseScopes } from '../store/key-store';
import { SqlitePresenceStore } from '../store/presence-store';
import { rotateWebhookSecrets, scrubbing } from '../webhooks/secrets';

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

/** PRESENCE_DB, migrated, with an engine loaded from it: for commands that work on the store. */
function openStore(env: Env): { db: Db; engine: PresenceEngine } {
  const db = openDb(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC });
  migrate(db);
  const engine = new PresenceEngine({
    clock: systemClock,
    store: new SqlitePresenceStore(db),
    ladder: Ladder.parse(env.PRESENCE_LADDER),
  });
  engine.load();
  return { db, engine };
}

/** Opens PRESENCE_DB (migrating it) for a key command, and closes it after. */
function withKeyStore(run: (store: ApiKeyStore) => void): void {
  const env = parseEnv();
  const db = openDb(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC });
  try {
    migrate(db);
    run(new ApiKeyStore(db, systemClock));
  } finally {
    db.close();
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
    .description('apply pending migrations to PRESENCE_DB')
    .action(() => {
      const env = parseEnv();
      const db = openDb(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC });
      const report = migrate(db);
      db.close();
      if (report.applied.length === 0)
        console.log(`${env.PRESENCE_DB}: up to date (${report.upToDate.length} applied)`);
      else for (const m of report.applied) console.log(`applied ${m}`);
    });

  program
    .command('serve')
    .description('run the service from environment variables')
    .action(async () => {
      const env = parseEnv();
      requireSecretKey(env);
      const logger = createLogger(env);
      const svc = await createService(env, { logger });
      await svc.app.listen({ port: env.PORT, host: env.HOST });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        logger.info({ signal }, 'shutting down');
        svc.close().then(
          () => logger.info({}, 'stopped'),
          (error: unknown) => {
            logger.error({ err: error }, 'shutdown failed');
            process.exitCode = 1;
          },
        );
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
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
    .action((opts: { scopes: ReturnType<typeof parseScopes>; name?: string }) => {
      withKeyStore((store) => {
        const { key, info } = store.create(opts.scopes, opts.name ?? null);
        console.log(`created key ${info.id} with scopes ${info.scopes.join(',')}; it is shown only now:`);
        console.log(key);
      });
    });
  keys
    .command('list')
    .description('list API keys (never their secrets)')
    .action(() => {
      withKeyStore((store) => {
        for (const k of store.list()) {
          const state = k.revokedAt === null ? 'active' : `revoked ${new Date(k.revokedAt).toISOString()}`;
          console.log(`${k.id}  ${k.scopes.join(',').padEnd(16)}  ${state}  ${k.name ?? ''}`);
        }
      });
    });
  keys
    .command('revoke')
    .description('revoke an API key (a running server stops accepting it within 10 s)')
    .argument('<id>')
    .action((id: string) => {
      withKeyStore((store) => {
        if (!store.revoke(id)) {
          console.error(`no active key ${id}`);
          process.exitCode = 1;
        } else console.log(`revoked ${id}`);
      });
    });

  keys
    .command('rotate-secret')
    .description('re-encrypt every stored OAuth token and webhook signing secret under PRESENCE_SECRET_KEY')
    .option('--old <keys>', 'the previous key(s), comma-separated (or PRESENCE_SECRET_KEY_PREVIOUS)')
    .action((opts: { old?: string }) => {
      const env = parseEnv(
        opts.old === undefined ? process.env : { ...process.env, PRESENCE_SECRET_KEY_PREVIOUS: opts.old },
      );
      const newKey = requireSecretKey(env);
      const db = openDb(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC });
      try {
        migrate(db);
        // Tokens and webhook secrets in one transaction: all under the new key, or nothing
        // changed. secure_delete and a WAL truncation keep the old ciphertexts (open to the old
        // key, perhaps the reason for the rotation) from lingering in freed pages.
        const vault = TokenVault.fromSecrets(newKey, env.PRESENCE_SECRET_KEY_PREVIOUS);
        const { result: report } = scrubbing(db, () =>
          db.transaction(() => {
            const tokens = rotateSecret(db, { oldKeys: env.PRESENCE_SECRET_KEY_PREVIOUS, newKey });
            const hooks = rotateWebhookSecrets(db, vault);
            return {
              key_id: tokens.key_id,
              reencrypted: tokens.reencrypted + hooks.reencrypted,
              already_current: tokens.already_current + hooks.already_current,
            };
          })(),
        );
        console.log(
          `key ${report.key_id}: ${report.reencrypted} values re-encrypted, ${report.already_current} already under it`,
        );
      } finally {
        db.close();
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
      const { db, engine } = openStore(env);
      const service = new ConnectionService({
        db,
        env,
        clock: systemClock,
        log: silentLog,
        linkAccount: (userId, account) => engine.linkAccount(userId, account),
        hasUser: (userId) => engine.hasUser(userId),
        onEvent: () => undefined,
      });
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
            try {
              const start = service.startAuthorize(platform, opts.user, redirectUri);
              console.log(
                `Open this URL in a browser and grant access (waiting up to ${Math.round(opts.timeout / 1000)} s):\n${start.url}`,
              );
            } catch (error) {
              server.close();
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          });
          setTimeout(() => {
            server.close();
            reject(new Error('no callback arrived in time'));
          }, opts.timeout).unref();
        });
        console.log(result);
      } finally {
        await service.stop();
        engine.flushSync();
        db.close();
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
        const res = await fetch(
          new URL(`/v1/presence?user_ids=${ids.map(encodeURIComponent).join(',')}`, url),
          {
            headers: { authorization: `Bearer ${key}` },
          },
        );
        const body: unknown = await res.json();
        console.log(JSON.stringify(body, null, 2));
        if (!res.ok) process.exitCode = 1;
        return;
      }
      const env = parseEnv();
      const { db, engine } = openStore(env);
      console.log(JSON.stringify(engine.getMany(ids), null, 2));
      engine.flushSync();
      db.close();
    });

  return program;
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
    if (error instanceof AppError) {
      console.error(`error: ${error.message}`);
      process.exitCode = 1;
      return;
    }
    throw error;
  }
}

if (require.main === module) void main();
