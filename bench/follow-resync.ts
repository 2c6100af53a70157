/**
 * @module bench/follow-resync
 * `node --require tsx/cjs bench/follow-resync.ts [users]`: the full re-read a node makes after its
 * listening connection came back (cluster/row-follower.ts `resumed`), on a database of its own on
 * the local PostgreSQL: `users` users (default 100,000) with one account each and a privacy record
 * for one in five, all already in memory (the comparison finds nothing to change, the common case).
 * Prints, for three runs, the re-read's duration; the longest turn of the event loop meanwhile
 * (the longest gap between two `setImmediate` callbacks that reschedule themselves: a turn that
 * blocks delays the next one by as long), which is what a WebSocket device's lease waits behind,
 * and which on a loaded machine includes time the process was not scheduled; and the longest time
 * the comparison itself (the directory's and the privacy service's calls) took within one turn,
 * wall clock and CPU (the process's: garbage collection threads included).
 */

import { PresenceEngine } from '../src/aggregator/engine';
import { RowFollower } from '../src/cluster/row-follower';
import { FakeClock } from '../src/core/clock';
import { silentLog } from '../src/core/log';
import { Ladder } from '../src/core/presence';
import { PrivacyService } from '../src/privacy/service';
import { openPgStores } from '../src/store/pg';
import { PgFollowReads } from '../src/store/pg/follow-reads';
import { createTestDatabase } from '../test/helpers/pg-database';

const EVERYONE = {
  presence: 'everyone',
  lastSeen: 'everyone',
  details: 'everyone',
  reciprocal: false,
} as const;

/** Turns of the event loop so far: a `setImmediate` that reschedules itself counts them. */
let turn = 0;

/**
 * A target whose calls are timed, summed per turn into `spent` (the comparison's own share of a
 * turn, whatever else the loaded machine does meanwhile).
 */
function timed<T extends object>(target: T, spent: Map<number, number>, cpu: Map<number, number>): T {
  return new Proxy(target, {
    get(t, key) {
      const value: unknown = Reflect.get(t, key, t);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        const start = performance.now();
        const used = process.cpuUsage();
        const out: unknown = Reflect.apply(value, t, args);
        spent.set(turn, (spent.get(turn) ?? 0) + performance.now() - start);
        const { user, system } = process.cpuUsage(used);
        cpu.set(turn, (cpu.get(turn) ?? 0) + (user + system) / 1000);
        return out;
      };
    },
  });
}

/** The longest gap between turns while `work` runs, and how long it took. */
async function longestTurn(work: () => Promise<void>): Promise<{ maxMs: number; totalMs: number }> {
  let maxMs = 0;
  let last = performance.now();
  let running = true;
  const tick = (): void => {
    const now = performance.now();
    maxMs = Math.max(maxMs, now - last);
    last = now;
    turn += 1;
    if (running) setImmediate(tick);
  };
  setImmediate(tick);
  const start = performance.now();
  await work();
  const totalMs = performance.now() - start;
  running = false;
  return { maxMs, totalMs };
}

async function main(): Promise<void> {
  const users = Number(process.argv[2] ?? 100_000);
  const database = await createTestDatabase();
  const clock = new FakeClock(Date.now());
  const stores = await openPgStores({ connectionString: database.url, clock, max: 4 });
  try {
    const q = (text: string): Promise<unknown> => stores.pool.query(text);
    await q(`INSERT INTO users (user_id, created_at, updated_at)
             SELECT 'u' || lpad(i::text, 8, '0'), 1, 1 FROM generate_series(1, ${users}) i`);
    await q(`INSERT INTO accounts (platform, workspace_id, external_id, user_id, created_at)
             SELECT 'slack', 'T1', 'X' || i, 'u' || lpad(i::text, 8, '0'), 1 FROM generate_series(1, ${users}) i`);
    await q(`INSERT INTO privacy_settings (user_id, presence, last_seen, details, reciprocal, updated_at)
             SELECT 'u' || lpad(i::text, 8, '0'), 'contacts', 'nobody', 'nobody', 0, 1
             FROM generate_series(1, ${users}, 5) i`);
    const engine = new PresenceEngine({ clock, store: stores.presence, ladder: new Ladder() });
    await engine.load();
    const privacy = await new PrivacyService(stores.privacy, EVERYONE, clock).load();
    const spent = new Map<number, number>();
    const cpu = new Map<number, number>();
    const rows = new RowFollower({
      reads: new PgFollowReads(stores.pool),
      directory: timed(engine, spent, cpu),
      privacy: timed(privacy, spent, cpu),
      log: silentLog,
    });
    for (let run = 1; run <= 3; run += 1) {
      spent.clear();
      cpu.clear();
      const { maxMs, totalMs } = await longestTurn(async () => {
        rows.resumed();
        await rows.idle();
      });
      console.log(
        `run ${run}: ${users} users, full re-read ${totalMs.toFixed(0)} ms, longest turn ${maxMs.toFixed(1)} ms, comparison's longest turn ${Math.max(...spent.values()).toFixed(1)} ms (CPU ${Math.max(...cpu.values()).toFixed(1)} ms), changed ${rows.stats.changed}`,
      );
    }
    await rows.stop();
    await engine.stop();
  } finally {
    await stores.close();
    await database.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
