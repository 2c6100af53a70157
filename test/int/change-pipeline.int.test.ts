/**
 * The change pipeline on a real SQLite file: `stage` runs inside the commit's transaction with
 * that transaction in hand, `committed` after it is durable, batch by batch in commit order.
 */
import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { PresenceChange, StoreTx } from '../../src/core/changes';
import type { NormalizedState } from '../../src/core/presence';
import type { SqliteTx } from '../../src/store/tx';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';

const online: NormalizedState = {
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
};
const busy: NormalizedState = { ...online, status: 'busy', raw: 'busy', label: 'busy' };

describe('engine.changes', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  beforeEach(async () => {
    n += 1;
    t = await testEngine(join(tmp.dir, `pipeline-${n}.db`));
    t.db.exec('CREATE TABLE staged (user_id TEXT, version INTEGER)');
    t.engine.ensureUser('alice');
    t.engine.ensureUser('bob');
    await t.engine.flush();
  });
  afterEach(() => t.close());
  afterAll(() => tmp.cleanup());

  const staged = (): unknown[] => t.db.prepare('SELECT user_id, version FROM staged ORDER BY rowid').all();
  /** A sink that writes one row per change on the transaction it is handed. */
  const stagingSink = (seen: string[]) => ({
    stage(tx: StoreTx, changes: readonly PresenceChange[]) {
      const { db } = tx as SqliteTx;
      seen.push(`stage in transaction: ${db.inTransaction}`);
      for (const c of changes) db.prepare('INSERT INTO staged VALUES (?, ?)').run(c.userId, c.version);
    },
    committed(changes: readonly PresenceChange[]) {
      seen.push(
        `committed ${changes.map((c) => `${c.userId}@${c.version}`).join(' ')}, rows ${staged().length}`,
      );
    },
  });

  it('stages inside the commit, on its connection, and reports after it, batch by batch', async () => {
    const seen: string[] = [];
    t.engine.changes.add(stagingSink(seen));
    await Promise.all([
      t.engine.report('alice', { platform: 'slack', state: online, ttlMs: 60_000 }),
      t.engine.report('bob', { platform: 'slack', state: online, ttlMs: 60_000 }),
    ]);
    await t.engine.report('alice', { platform: 'slack', state: busy, ttlMs: 60_000 });
    expect(seen).toEqual([
      'stage in transaction: true',
      'committed alice@1 bob@1, rows 2',
      'stage in transaction: true',
      'committed alice@2, rows 3',
    ]);
    expect((t.engine.get('alice') as { version: number }).version).toBe(2);
  });

  it('a sink that throws in stage aborts the commit: its rows and the change roll back together', async () => {
    const seen: string[] = [];
    t.engine.changes.add(stagingSink(seen));
    const remove = t.engine.changes.add({
      stage: () => {
        throw new Database.SqliteError('disk I/O error', 'SQLITE_IOERR_WRITE');
      },
    });
    await expect(
      t.engine.report('alice', { platform: 'slack', state: online, ttlMs: 60_000 }),
    ).rejects.toMatchObject({ code: 'unavailable' });
    expect(staged()).toEqual([]);
    expect(t.db.prepare('SELECT count(*) FROM aggregates').pluck().get()).toBe(0);
    expect(seen).toEqual(['stage in transaction: true']);
    remove();
    await t.engine.report('alice', { platform: 'slack', state: online, ttlMs: 60_000 });
    expect(staged()).toEqual([{ user_id: 'alice', version: 1 }]);
    expect(seen.at(-1)).toBe('committed alice@1, rows 1');
  });

  it('a batch retried after a lock is staged again and reported once', async () => {
    const seen: string[] = [];
    t.engine.changes.add(stagingSink(seen));
    let locks = 1;
    t.engine.changes.add({
      stage: () => {
        if (locks-- > 0) throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
      },
    });
    await t.engine.report('alice', { platform: 'slack', state: online, ttlMs: 60_000 });
    expect(seen).toEqual([
      'stage in transaction: true',
      'stage in transaction: true',
      'committed alice@1, rows 1',
    ]);
  });

  it('builds the presence object of a change only while a sink is added', async () => {
    // Queued before any sink: no presence object (the event builder then falls back).
    const first = t.engine.report('alice', { platform: 'slack', state: online, ttlMs: 60_000 });
    const changes: PresenceChange[] = [];
    t.engine.changes.add({ committed: (c) => changes.push(...c) });
    await first;
    await t.engine.report('alice', { platform: 'slack', state: busy, ttlMs: 60_000 });
    expect(changes.map((c) => [c.version, c.cause, c.presence?.status ?? null])).toEqual([
      [1, 'slack', null],
      [2, 'slack', 'busy'],
    ]);
    expect(changes[1]?.presence).toMatchObject({ user_id: 'alice', version: 2 });
  });
});
