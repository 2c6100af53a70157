/**
 * A child process for the snapshot crash test: loads the file (from its snapshot when it has one),
 * creates its users on first run, then writes snapshots one after the other, a few users per part,
 * while changing users' states, deleting users, creating them and linking accounts, until it is
 * killed. It prints what the parent checks:
 *
 * - `part` after each snapshot part is stored (and `snapshot` once one is the current one);
 * - `v <user> <version>` once a change of the user is acknowledged (committed);
 * - `del <user>` once a deletion committed, `new <user>` once a creation did.
 */
import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import type { SnapshotWriter } from '../../src/core/ports';
import { Ladder, type Status } from '../../src/core/presence';
import { migrate, openDb } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { asyncPresenceOn } from './engine';

const [path, count = '2000'] = process.argv.slice(2);
if (path === undefined) throw new Error('usage: snapshot-crash-child <db> [users]');
const users = Number(count);
const db = openDb(path);
migrate(db);
const store = new SqlitePresenceStore(db);
const out = (line: string): void => void process.stdout.write(`${line}\n`);

// Tell the parent about every stored part; a moment's pause after each widens the window in
// which the kill lands inside a snapshot's write.
const begin = store.snapshots.begin.bind(store.snapshots);
store.snapshots.begin = (format: string): SnapshotWriter => {
  const w = begin(format);
  return {
    seq: w.seq,
    part(data) {
      w.part(data);
      out('part');
      const until = Date.now() + 2;
      while (Date.now() < until);
    },
    finish(createdAt) {
      w.finish(createdAt);
      out('snapshot');
    },
  };
};

const engine = new PresenceEngine({
  clock: systemClock,
  store: asyncPresenceOn(db, store),
  ladder: new Ladder(),
  identityOnlyPlatforms: ['linkedin'],
  snapshotPartUsers: 20,
  snapshotIntervalMs: 0,
});
const STATUSES: Status[] = ['online', 'away', 'busy', 'idle'];
const TTL_MS = 3600_000;
let next = 0;
const pick = (n: number): number => Math.floor(Math.random() * n);

async function change(id: string): Promise<void> {
  // Always another status: a change, committed before it is acknowledged (a refresh would only
  // move times in memory, which a snapshot may hold later than the rows do).
  const others = STATUSES.filter((s) => s !== engine.state(id)?.status);
  const status = others[pick(others.length)]!;
  await engine.heartbeat(id, 'laptop', status, null, TTL_MS);
  out(`v ${id} ${engine.state(id)!.version}`);
}

async function run(): Promise<never> {
  await engine.load();
  if (engine.userCount === 0) {
    const created: Promise<void>[] = [];
    for (let u = 0; u < users; u++) created.push(change(`u${u}`));
    await Promise.all(created);
    for (let u = 0; u < users; u += 10)
      await engine.linkAccount(`u${u}`, { platform: 'slack', workspaceId: 'T1', externalId: `S${u}` });
  }
  for (;;) {
    let writing = true;
    void engine.writeSnapshot().then(() => (writing = false));
    while (writing) {
      const acks: Promise<void>[] = [];
      for (let k = 0; k < 20; k++) acks.push(change(`u${pick(users)}`));
      await Promise.all(acks);
      const victim = `u${pick(users)}`;
      if (engine.hasUser(victim) && pick(4) === 0 && (await engine.deleteUser(victim))) out(`del ${victim}`);
      if (pick(3) === 0) {
        const id = `n${process.pid}-${next++}`;
        await change(id);
        out(`new ${id}`);
        if (pick(2) === 0)
          await engine.linkAccount(id, { platform: 'zoom', workspaceId: '', externalId: `Z-${id}` });
      }
    }
  }
}
void run();
