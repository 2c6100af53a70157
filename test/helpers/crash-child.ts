/**
 * A child process for the crash test: streams presence changes into the engine and prints one
 * line per acknowledged change, until it is killed.
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder, type Status } from '../../src/core/presence';
import { migrate, openDb } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';

const path = process.argv[2];
if (path === undefined) throw new Error('usage: crash-child <db>');
const db = openDb(path);
migrate(db);
const engine = new PresenceEngine({
  clock: systemClock,
  store: new SqlitePresenceStore(db),
  ladder: new Ladder(),
});
engine.load();
const STATUSES: Status[] = ['online', 'busy', 'away', 'idle'];
const USERS = 40;

async function main(): Promise<void> {
  for (let round = 0; ; round++) {
    const acks: Promise<string>[] = [];
    for (let u = 0; u < USERS; u++) {
      const userId = `u${u}`;
      engine.ensureUser(userId);
      const status = STATUSES[(round + u) % STATUSES.length]!;
      const ack = engine.report(userId, {
        platform: 'teams',
        ttlMs: 3600_000,
        state: { status, activity: null, customStatus: null, source: 'app', raw: status, label: status },
      });
      const version = engine.state(userId)!.version;
      acks.push(ack.then(() => `ack ${userId} ${version} ${status}`));
    }
    process.stdout.write(`${(await Promise.all(acks)).join('\n')}\n`);
  }
}

void main();
