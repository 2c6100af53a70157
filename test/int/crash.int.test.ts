import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { PresenceEngine } from '../../src/aggregator/engine';
import { systemClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { migrate, openDb } from '../../src/store/db';
import { asyncPresenceOn, tmpDir } from '../helpers/engine';

const ROOT = resolve(__dirname, '../..');

describe('crash recovery', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('after kill -9 mid-stream, every acknowledged change is there', async () => {
    const path = join(tmp.dir, 'crash.db');
    // `--require tsx/cjs` keeps it one process: the tsx CLI would put a second one under it, which
    // a SIGKILL to the first would not reach.
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', join(ROOT, 'test/helpers/crash-child.ts'), path],
      {
        cwd: ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const acked = new Map<string, { version: number; status: string }>();
    let lines = 0;
    const exited = new Promise<NodeJS.Signals | null>((done) =>
      child.on('exit', (_code, signal) => done(signal)),
    );
    for await (const line of createInterface({ input: child.stdout })) {
      const [word, userId, version, status] = line.split(' ');
      if (word !== 'ack' || userId === undefined) continue;
      acked.set(userId, { version: Number(version), status: status! });
      lines += 1;
      // Kill at an odd moment, well into the stream, while the next batch is in flight.
      if (lines === 4013) child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    expect(acked.size).toBe(40);

    const db = openDb(path);
    migrate(db);
    const engine = new PresenceEngine({
      clock: systemClock,
      store: asyncPresenceOn(db),
      ladder: new Ladder(),
    });
    await engine.load();
    for (const [userId, ack] of acked) {
      const state = engine.state(userId);
      // Later changes may have committed without being printed; none acknowledged may be missing.
      expect(state?.version).toBeGreaterThanOrEqual(ack.version);
      const transition = db
        .prepare('SELECT to_status FROM transitions WHERE user_id = ? AND version = ?')
        .pluck()
        .get(userId, ack.version);
      expect(transition).toBe(ack.status);
    }
    const versions = db
      .prepare('SELECT user_id, count(*) AS n, max(version) AS v FROM transitions GROUP BY user_id')
      .all() as {
      n: number;
      v: number;
    }[];
    // Versions are gapless per user: every change between 1 and the last is recorded.
    for (const row of versions) expect(row.n).toBe(row.v);
    db.close();
  });
});
