/**
 * A child process for the refresh crash test: creates its users with one device heartbeat each,
 * then refreshes every user and persists the refreshed times, round after round, until it is
 * killed. After each run it prints "persisted <t>": every user's device was refreshed at or after
 * t (ms), and those times are written.
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { asyncSqlite } from '../../src/store/async-sqlite';
import { openSqliteStores } from '../../src/store/sqlite';

const [path, count = '3000', ttl = '600000'] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: refresh-crash-child <db> [users] [ttl ms]');
const users = Number(count);
const ttlMs = Number(ttl);
const stores = openSqliteStores(path);
const engine = new PresenceEngine({
  clock: systemClock,
  store: asyncSqlite(stores).presence,
  ladder: new Ladder(),
});

async function run(): Promise<never> {
  await engine.load();
  const created: Promise<void>[] = [];
  for (let u = 0; u < users; u++) created.push(engine.heartbeat(`u${u}`, 'laptop', 'online', null, ttlMs));
  await Promise.all(created);
  for (;;) {
    const from = systemClock.now();
    for (let u = 0; u < users; u++) void engine.heartbeat(`u${u}`, 'laptop', 'online', null, ttlMs);
    await engine.persistRefreshes();
    process.stdout.write(`persisted ${from}\n`);
  }
}
void run();
