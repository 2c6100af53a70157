/**
 * @module cli/main
 * The `presence` command (CONTRACT.md §6).
 */

import { Command, InvalidArgumentError } from 'commander';

import { runDemo } from '../../demo/cli';
import { ConfigError, parseEnv } from '../config/env';
import { migrate, openDb } from '../store/db';
import { SqlitePresenceStore } from '../store/presence-store';
import { PresenceEngine } from '../aggregator/engine';
import { systemClock } from '../core/clock';
import { Ladder } from '../core/presence';

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
      const abort = new AbortController();
      process.once('SIGINT', () => abort.abort());
      process.once('SIGTERM', () => abort.abort());
      await runDemo({
        users: opts.users,
        durationMs: opts.duration,
        speed: opts.speed,
        seed: opts.seed,
        tty: process.stdout.isTTY === true,
        write: (t) => process.stdout.write(t),
        signal: abort.signal,
      });
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
    .command('get')
    .description('print presence from the store')
    .argument('<user_id...>')
    .action((ids: string[]) => {
      const env = parseEnv();
      const db = openDb(env.PRESENCE_DB, { synchronous: env.PRESENCE_DB_SYNC });
      migrate(db);
      const engine = new PresenceEngine({
        clock: systemClock,
        store: new SqlitePresenceStore(db),
        ladder: Ladder.parse(env.PRESENCE_LADDER),
      });
      engine.load();
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
    throw error;
  }
}

if (require.main === module) void main();
