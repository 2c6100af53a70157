import { join } from 'node:path';

import type { PresenceEngine } from '../../src/aggregator/engine';
import { PartDecoder, PartEncoder, SNAPSHOT_FORMAT, USERS_PART } from '../../src/aggregator/snapshot-codec';
import { UserState } from '../../src/aggregator/user-state';
import type { NormalizedState } from '../../src/core/presence';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import { obs } from '../helpers/observations';
import { hotState, keptLog, loadFromRows, loadWithSnapshot } from '../helpers/snapshot';

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: { presence: 'active' },
  label: 'active',
  ...fields,
});

/** Users of every kind a snapshot holds: devices, platforms, decay, custom statuses, overrides, accounts. */
async function populate(e: PresenceEngine, users = 12): Promise<void> {
  for (let i = 0; i < users; i++) {
    const id = `u${i}`;
    await e.heartbeat(
      id,
      'laptop',
      i % 3 === 0 ? 'away' : 'online',
      i % 4 === 0 ? 'in_meeting' : null,
      600_000,
    );
    if (i % 2 === 0) await e.heartbeat(id, 'phone', 'online', null, 300_000);
    if (i % 3 === 1)
      await e.report(id, {
        platform: 'slack',
        state: state({ customStatus: { text: `lunch ${i}`, emoji: '🍔', expiresAt: null } }),
        ttlMs: 120_000,
      });
    if (i % 5 === 2)
      await e.report(id, {
        platform: 'teams',
        state: state({ source: 'inferred', label: 'seen' }),
        ttlMs: 0,
        decay: [
          { status: 'online', untilMs: 60_000 },
          { status: 'away', untilMs: 400_000 },
        ],
      });
    if (i % 4 === 3)
      await e.setOverride(id, {
        status: 'busy',
        activity: 'focus',
        customStatus: null,
        expiresAt: e.clock.now() + 900_000,
      });
    if (i % 3 === 2) await e.linkAccount(id, { platform: 'slack', workspaceId: 'T1', externalId: `S${i}` });
    if (i % 4 === 1) await e.linkAccount(id, { platform: 'linkedin', workspaceId: '', externalId: `L${i}` });
  }
  await e.putUser('named', { displayName: 'Named Only', timezone: 'Europe/Paris' });
}

/** The running engine's state as a load at `now` gives it: one with no boundary is filed at once. */
function asLoaded(e: PresenceEngine, now: number): Record<string, unknown> {
  const s = hotState(e) as { users: Record<string, { dueAt: number }> };
  for (const u of Object.values(s.users)) if (u.dueAt === Number.POSITIVE_INFINITY) u.dueAt = now;
  return s;
}

describe('snapshots of the hot state', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  beforeEach(async () => {
    n += 1;
    t = await testEngine(join(tmp.dir, `snapshot-${n}.db`), {
      identityOnlyPlatforms: ['linkedin'],
      snapshotPartUsers: 3,
    });
  });
  afterEach(() => {
    if (t.db.open) t.close();
  });
  afterAll(() => tmp.cleanup());

  const snapshotParts = (): number =>
    (t.db.prepare('SELECT count(*) FROM presence_snapshot').pluck().get() as number) - 1;
  /** Both loads at `now`: the snapshot's and the rows'. */
  const both = async (now = t.clock.now()) => {
    const log = keptLog();
    const fromSnapshot = await loadWithSnapshot(t.db, now, log);
    const fromRows = await loadFromRows(t.db, now);
    const loaded = log.lines.find((l) => l.msg === 'loaded from the snapshot')?.obj ?? null;
    const ignored = log.lines.find((l) => l.msg === 'snapshot not used; reading every row') ?? null;
    return { fromSnapshot, fromRows, loaded, ignored };
  };

  it('a part holds each record as written, and the values a row load gives', () => {
    const enc = new PartEncoder();
    enc.start(USERS_PART);
    const u = new UserState('ü-1');
    u.observations = [
      obs({ platform: 'slack', raw: { a: [1, 2] }, customStatus: { text: 'x', emoji: null, expiresAt: 5 } }),
      obs({ platform: 'device', device: 'laptop', raw: undefined, decay: [{ status: 'idle', untilMs: 9 }] }),
    ];
    u.override = { status: 'busy', activity: null, customStatus: null, setAt: 1, expiresAt: 2 };
    u.version = 7;
    u.lastActiveAt = null;
    u.aggregateAt = 123;
    enc.user(u);
    const d = new PartDecoder(enc.finish());
    expect(d.id()).toBe('ü-1');
    const back = new UserState('ü-1');
    d.user(back);
    expect(d.done).toBe(true);
    // In primary key order, a missing raw as null (the column's JSON `null`).
    expect(back.observations).toEqual([{ ...u.observations[1]!, raw: null }, u.observations[0]]);
    expect(back).toMatchObject({ override: u.override, version: 7, lastActiveAt: null, aggregateAt: 123 });
  });

  it('a graceful stop writes a snapshot, and the start from it equals the start from the rows', async () => {
    await populate(t.engine);
    await t.engine.stop();
    expect(snapshotParts()).toBeGreaterThan(4);
    // The snapshot covers every change and every slot: nothing is read from rows.
    expect(t.db.prepare('SELECT count(*) FROM presence_changes').pluck().get()).toBe(0);
    const { fromSnapshot, fromRows, loaded } = await both();
    expect(loaded).toEqual({ users: 13, reread: 0, slots: 0 });
    expect(hotState(fromSnapshot)).toEqual(hotState(fromRows));
    expect(hotState(fromSnapshot)).toEqual(asLoaded(t.engine, t.clock.now()));
    for (let i = 0; i < 12; i++) expect(fromSnapshot.getJson(`u${i}`)).toBe(fromRows.getJson(`u${i}`));
  });

  it('changes, deletions, new users, accounts and refresh times after the snapshot are read from rows', async () => {
    await populate(t.engine);
    await t.engine.persistRefreshes();
    expect(await t.engine.writeSnapshot()).toBe(true);
    t.clock.advance(5_000);
    const e = t.engine;
    await e.heartbeat('u1', 'laptop', 'busy', 'in_call', 600_000); // changed
    expect(await e.deleteUser('u2')).toBe(true); // deleted, with its accounts
    expect(await e.deleteUser('u3')).toBe(true);
    await e.heartbeat('u3', 'tablet', 'online', null, 600_000); // deleted, then created again
    await e.heartbeat('fresh', 'laptop', 'online', null, 600_000); // created
    await e.linkAccount('u4', { platform: 'zoom', workspaceId: '', externalId: 'Z4' });
    expect(await e.unlinkAccount('u5', { platform: 'slack', workspaceId: 'T1', externalId: 'S5' })).toBe(
      true,
    );
    await e.clearOverride('u7');
    t.clock.advance(5_000);
    await e.heartbeat('u10', 'laptop', 'online', null, 600_000); // a refresh: memory, then its slot
    expect(await e.persistRefreshes()).toBe(1);
    // No stop: the process ends here as a crash would, after these commits.
    const { fromSnapshot, fromRows, loaded } = await both();
    expect(loaded).toMatchObject({ users: 13, reread: 7 });
    expect(hotState(fromSnapshot)).toEqual(hotState(fromRows));
    expect(hotState(fromSnapshot)).toEqual(asLoaded(e, t.clock.now()));
    expect(fromSnapshot.hasUser('u2')).toBe(false);
    const users = hotState(fromSnapshot).users as Record<
      string,
      { observations: { device: string; status: string }[] }
    >;
    expect(users.u1!.observations.find((o) => o.device === 'laptop')?.status).toBe('busy');
    expect(fromSnapshot.deviceExpiresAt('u10', 'laptop')).toBe(t.clock.now() + 600_000);
  });

  it('a snapshot being written is not used until it is finished; the previous one is', async () => {
    await populate(t.engine);
    await t.engine.stop();
    const store = new SqlitePresenceStore(t.db);
    const w = store.snapshots.begin(SNAPSHOT_FORMAT);
    w.part(Buffer.from([1, 0, 0, 0, 0]));
    await t.engine.heartbeat('u0', 'laptop', 'offline', null, 600_000);
    const { fromSnapshot, fromRows, loaded } = await both();
    expect(loaded).toMatchObject({ reread: 1 });
    expect(hotState(fromSnapshot)).toEqual(hotState(fromRows));
    // The next snapshot drops the partial one.
    expect(await t.engine.writeSnapshot()).toBe(true);
    expect(t.db.prepare('SELECT count(DISTINCT gen) FROM presence_snapshot').pluck().get()).toBe(1);
  });

  it('a corrupt part, a corrupt header, another format or another schema: every row is read', async () => {
    await populate(t.engine);
    await t.engine.stop();
    const truth = hotState(await loadFromRows(t.db, t.clock.now()));
    const gen = t.db.prepare('SELECT max(gen) FROM presence_snapshot').pluck().get() as number;
    const blob = (part: number): Buffer =>
      t.db
        .prepare('SELECT data FROM presence_snapshot WHERE gen = ? AND part = ?')
        .pluck()
        .get(gen, part) as Buffer;
    const put = (part: number, data: Buffer): void =>
      void t.db
        .prepare('UPDATE presence_snapshot SET data = ? WHERE gen = ? AND part = ?')
        .run(data, gen, part);

    // One bit of the third part.
    const good = blob(3);
    const bad = Buffer.from(good);
    bad[bad.length - 3]! ^= 0x10;
    put(3, bad);
    let r = await both();
    expect(r.loaded).toBeNull();
    expect(r.ignored).not.toBeNull();
    expect(hotState(r.fromSnapshot)).toEqual(truth);
    put(3, good);
    expect((await both()).loaded).not.toBeNull();

    // The header.
    const header = blob(0);
    const broken = Buffer.from(header);
    broken[10]! ^= 0x01;
    put(0, broken);
    r = await both();
    expect(r.loaded).toBeNull();
    expect(hotState(r.fromSnapshot)).toEqual(truth);
    put(0, header);

    // A part missing.
    const last = t.db
      .prepare('SELECT max(part) FROM presence_snapshot WHERE gen = ?')
      .pluck()
      .get(gen) as number;
    const kept = blob(last);
    t.db.prepare('DELETE FROM presence_snapshot WHERE gen = ? AND part = ?').run(gen, last);
    r = await both();
    expect(r.loaded).toBeNull();
    expect(hotState(r.fromSnapshot)).toEqual(truth);
    t.db.prepare('INSERT INTO presence_snapshot (gen, part, data) VALUES (?, ?, ?)').run(gen, last, kept);

    // Written under an older schema: a migration applied since.
    t.db
      .prepare(
        "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ('9999', 'later', 'x', 0)",
      )
      .run();
    r = await both();
    expect(r.loaded).toBeNull();
    expect(hotState(r.fromSnapshot)).toEqual(truth);
    t.db.prepare("DELETE FROM schema_migrations WHERE version = '9999'").run();

    // Another format of the engine's.
    const store = new SqlitePresenceStore(t.db);
    expect(store.snapshots.latest('presence-snapshot-0')).toBeNull();
    expect(store.snapshots.latest(SNAPSHOT_FORMAT)).not.toBeNull();
    expect((await both()).loaded).toMatchObject({ users: 13, reread: 0 });
  });

  it('a snapshot encodes a user waiting for its commit as last committed, and skips one not created yet', async () => {
    await populate(t.engine, 4);
    await t.engine.persistRefreshes();
    // One part: every user is encoded in this turn, while these wait for their commit.
    const e = (await t.reopen({ snapshotPartUsers: 1000 })).engine;
    void e.heartbeat('u1', 'laptop', 'offline', null, 600_000);
    void e.heartbeat('brand-new', 'laptop', 'online', null, 600_000);
    const written = e.writeSnapshot();
    const before = hotState(await loadFromRows(t.db, t.clock.now()));
    expect(await written).toBe(true);
    const parts = t.db
      .prepare('SELECT data FROM presence_snapshot WHERE part > 0 ORDER BY part')
      .pluck()
      .all() as Buffer[];
    const ids: string[] = [];
    let u1Status = '';
    for (const p of parts) {
      const d = new PartDecoder(p);
      if (d.kind !== USERS_PART) continue;
      while (!d.done) {
        const id = d.id();
        const u = new UserState(id);
        d.user(u);
        ids.push(id);
        if (id === 'u1') u1Status = u.status;
      }
    }
    expect(ids).not.toContain('brand-new');
    expect(u1Status).toBe((before.users as Record<string, { status: string }>).u1!.status);
    // Both committed after the snapshot began: read from rows.
    const { fromSnapshot, fromRows, loaded } = await both();
    expect(loaded).toMatchObject({ reread: 2 });
    expect(hotState(fromSnapshot)).toEqual(hotState(fromRows));
  });
});
