import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

import { PresenceEngine } from '../../src/aggregator/engine';
import { FakeClock } from '../../src/core/clock';
import { Ladder } from '../../src/core/presence';
import { migrate, openDb } from '../../src/store/db';
import { asyncPresenceOn, storedRefreshes, tmpDir } from '../helpers/engine';

const ROOT = resolve(__dirname, '../..');
const USERS = 3000;
const TTL_MS = 600_000;

describe('refresh persistence and kill -9', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('keeps every persisted refresh, and the refreshed entries expire on time after restart', async () => {
    const path = join(tmp.dir, 'refresh-crash.db');
    const child = spawn(
      process.execPath,
      [
        '--require',
        'tsx/cjs',
        join(ROOT, 'test/helpers/refresh-crash-child.ts'),
        path,
        String(USERS),
        String(TTL_MS),
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<NodeJS.Signals | null>((done) =>
      child.on('exit', (_code, signal) => done(signal)),
    );
    let persisted = 0;
    let runs = 0;
    for await (const line of createInterface({ input: child.stdout })) {
      const [word, at] = line.split(' ');
      if (word !== 'persisted') continue;
      persisted = Number(at);
      runs += 1;
      // The next run is under way: its refreshes are queued, maybe half its slots written.
      if (runs === 5) child.kill('SIGKILL');
    }
    expect(await exited).toBe('SIGKILL');
    expect(persisted).toBeGreaterThan(0);

    const db = openDb(path);
    migrate(db);
    // Every slot row decodes whole, and every user is in one.
    const stored = storedRefreshes(db);
    expect(stored.size).toBe(USERS);

    const reload = async (now: number): Promise<PresenceEngine> => {
      const engine = new PresenceEngine({
        clock: new FakeClock(now),
        store: asyncPresenceOn(db),
        ladder: new Ladder(),
      });
      await engine.load();
      return engine;
    };
    // Just before the earliest expiry a persisted run guarantees, everyone is online.
    const engine = await reload(persisted + TTL_MS - 1);
    let latest = 0;
    for (let u = 0; u < USERS; u++) {
      const device = engine.get(`u${u}`)?.platforms.device;
      expect(Date.parse(device!.expires_at)).toBeGreaterThanOrEqual(persisted + TTL_MS);
      latest = Math.max(latest, Date.parse(device!.expires_at));
    }
    await engine.sweep();
    for (let u = 0; u < USERS; u++)
      expect(engine.state(`u${u}`)).toMatchObject({ status: 'online', version: 1 });

    // Past the latest refreshed expiry, the sweep takes everyone offline, once.
    const later = await reload(latest + 1000);
    await later.sweep();
    for (let u = 0; u < USERS; u++)
      expect(later.state(`u${u}`)).toMatchObject({ status: 'offline', version: 2 });
    db.close();
  });
});
