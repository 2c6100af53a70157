import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { migrate, openDb } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';
import { hotState, keptLog, loadFromRows, loadWithSnapshot } from '../helpers/snapshot';

const ROOT = resolve(__dirname, '../..');
const USERS = 2000;

/** What the child acknowledged about a user: its last committed version, or its deletion. */
type Acked = { readonly version: number } | 'deleted';

describe('snapshots and kill -9', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('a kill during a snapshot write restarts to exactly the committed state, every acknowledged change in it', async () => {
    const path = join(tmp.dir, 'snapshot-crash.db');
    const acked = new Map<string, Acked>();
    let partialSeen = 0;
    // Three lives of the process on one file: each after the first starts from what the last left.
    for (const killAtPart of [7, 3, 12]) {
      const child = spawn(
        process.execPath,
        ['--require', 'tsx/cjs', join(ROOT, 'test/helpers/snapshot-crash-child.ts'), path, String(USERS)],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
      );
      const exited = new Promise<NodeJS.Signals | null>((done) =>
        child.on('exit', (_code, signal) => done(signal)),
      );
      let snapshots = 0;
      let parts = 0;
      for await (const line of createInterface({ input: child.stdout })) {
        const [word, id, version] = line.split(' ');
        if (word === 'v') acked.set(id!, { version: Number(version) });
        else if (word === 'del') acked.set(id!, 'deleted');
        else if (word === 'snapshot') {
          snapshots += 1;
          parts = 0;
        } else if (word === 'part') {
          parts += 1;
          // Inside the second snapshot of this life (the first is done, this one is partial).
          if (snapshots === 1 && parts === killAtPart) child.kill('SIGKILL');
        }
      }
      expect(await exited).toBe('SIGKILL');

      const db = openDb(path);
      migrate(db);
      const done = db
        .prepare('SELECT max(gen) FROM presence_snapshot WHERE part = 0')
        .pluck()
        .get() as number;
      const partial = db
        .prepare('SELECT count(*) FROM presence_snapshot WHERE gen > ?')
        .pluck()
        .get(done) as number;
      if (partial > 0) partialSeen += 1;

      const now = Date.now();
      const log = keptLog();
      const restarted = await loadWithSnapshot(db, now, log);
      // The snapshot was used, and brought up to date from the rows changed after it.
      expect(log.lines.find((l) => l.msg === 'loaded from the snapshot')?.obj).toMatchObject({
        reread: expect.any(Number) as number,
      });
      // Exactly what the rows hold: nothing lost, nothing uncommitted, nothing deleted kept.
      expect(hotState(restarted)).toEqual(hotState(await loadFromRows(db, now)));
      for (const [id, a] of acked) {
        if (a === 'deleted') expect(restarted.hasUser(id)).toBe(false);
        else expect(restarted.state(id)?.version).toBeGreaterThanOrEqual(a.version);
      }
      expect(restarted.userCount).toBeGreaterThan(USERS / 2);
      db.close();
    }
    // The kill landed inside a write at least once (it usually does every time).
    expect(partialSeen).toBeGreaterThan(0);
  });
});
