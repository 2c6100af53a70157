import { join } from 'node:path';

import Database from 'better-sqlite3';

import type { NormalizedState } from '../../src/core/presence';
import { signalPresence } from '../../src/core/signals';
import { CountingStore, storedRefreshes, testEngine, tmpDir, type TestEngine } from '../helpers/engine';

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
  ...fields,
});

describe('PresenceEngine on a real SQLite file', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  beforeEach(async () => {
    n += 1;
    t = await testEngine(join(tmp.dir, `engine-${n}.db`));
    t.engine.ensureUser('alice');
  });
  afterEach(() => t.close());
  afterAll(() => tmp.cleanup());

  const rows = (sql: string, ...args: unknown[]) =>
    t.db.prepare(sql).all(...args) as Record<string, unknown>[];

  it('makes a change durable before acknowledging it, with version 1 and a transition', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    expect(rows('SELECT status, version FROM aggregates WHERE user_id = ?', 'alice')).toEqual([
      { status: 'online', version: 1 },
    ]);
    expect(rows('SELECT platform, status, raw FROM observations')).toEqual([
      { platform: 'slack', status: 'online', raw: '"active"' },
    ]);
    expect(rows('SELECT from_status, to_status, version, platform FROM transitions')).toEqual([
      { from_status: 'offline', to_status: 'online', version: 1, platform: 'slack' },
    ]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1, source: 'app' });
  });

  it('a refresh of an unchanged state writes nothing until the coarse persist', async () => {
    await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    const before = t.store.transactions;
    for (let i = 0; i < 1000; i++) {
      t.clock.advance(10);
      await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    }
    expect(t.store.transactions).toBe(before);
    expect(t.engine.get('alice')?.expires_at).toBe(new Date(t.clock.now() + 30_000).toISOString());
    expect(await t.engine.persistRefreshes()).toBe(1);
    // Packed in its slot's row; the observation's row keeps the time of its last change.
    expect(t.store.transactions).toBe(before);
    expect(rows('SELECT count(*) AS n FROM refresh_slots')).toEqual([{ n: 1 }]);
    expect(storedRefreshes(t.db).get('alice')).toEqual({
      userId: 'alice',
      lastActiveAt: t.clock.now(),
      observations: [
        {
          platform: 'device',
          device: 'laptop',
          observedAt: t.clock.now(),
          expiresAt: t.clock.now() + 30_000,
        },
      ],
    });
  });

  it('groups the changes of one turn of the event loop into one transaction', async () => {
    for (let i = 0; i < 50; i++) t.engine.ensureUser(`u${i}`);
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const before = t.store.transactions;
    const acks = [];
    for (let i = 0; i < 50; i++)
      acks.push(
        t.engine.report(`u${i}`, { platform: 'teams', state: state({ status: 'busy' }), ttlMs: 60_000 }),
      );
    await Promise.all(acks);
    expect(t.store.transactions).toBe(before + 1);
    expect(rows("SELECT count(*) AS n FROM aggregates WHERE status = 'busy'")).toEqual([{ n: 50 }]);
  });

  it('version rises by one on every change, never on a non-change, and survives a restart', async () => {
    const statuses = ['online', 'busy', 'busy', 'away', 'online', 'online', 'idle'] as const;
    const seen: number[] = [];
    for (const status of statuses) {
      t.clock.advance(1000);
      await t.engine.report('alice', {
        platform: 'teams',
        state: state({ status, label: status }),
        ttlMs: 600_000,
      });
      seen.push(t.engine.get('alice')!.version);
    }
    expect(seen).toEqual([1, 2, 2, 3, 4, 4, 5]);
    t.close();
    t = await t.reopen();
    expect(t.engine.get('alice')?.version).toBe(5);
    await t.engine.report('alice', {
      platform: 'teams',
      state: state({ status: 'away', label: 'away' }),
      ttlMs: 600_000,
    });
    expect(t.engine.get('alice')?.version).toBe(6);
    const versions = (await t.engine.history('alice', { limit: 100 })).map((h) => h.version);
    expect(versions).toEqual([6, 5, 4, 3, 2, 1]);
  });

  it('an override is never overwritten by automatic reports, and expires on its own', async () => {
    await t.engine.setOverride('alice', {
      status: 'busy',
      activity: 'focus',
      customStatus: null,
      expiresAt: t.clock.now() + 60_000,
    });
    const v = t.engine.get('alice')!.version;
    for (const status of ['online', 'away', 'idle'] as const) {
      t.clock.advance(1000);
      await t.engine.report('alice', {
        platform: 'slack',
        state: state({ status, label: status, source: 'manual' }),
        ttlMs: 600_000,
      });
      expect(t.engine.get('alice')).toMatchObject({
        status: 'busy',
        activity: 'focus',
        source: 'manual',
        version: v,
      });
    }
    t.clock.advance(60_000);
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'idle', version: v + 1 });
  });

  it('clearing an override falls back to the platforms at once', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 600_000 });
    await t.engine.setOverride('alice', {
      status: 'away',
      activity: null,
      customStatus: null,
      expiresAt: t.clock.now() + 60_000,
    });
    expect(t.engine.get('alice')?.status).toBe('away');
    expect(await t.engine.clearOverride('alice')).toBe(true);
    expect(await t.engine.clearOverride('alice')).toBe(false);
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', override: null });
    expect(rows('SELECT * FROM overrides')).toEqual([]);
  });

  it('expires a report at its TTL: offline, stale, and the transition is recorded at the expiry time', async () => {
    const start = t.clock.now();
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 30_000 });
    t.clock.advance(29_000);
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', stale: false });
    t.clock.advance(2000);
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', stale: true, source: null, version: 2 });
    const [last] = await t.engine.history('alice', { limit: 1 });
    expect(last).toMatchObject({
      fromStatus: 'online',
      toStatus: 'offline',
      at: start + 30_000,
      platform: null,
      version: 2,
    });
  });

  it('a refresh moves the expiry: the sweep then finds nothing to do', async () => {
    await t.engine.report('alice', { platform: 'device', device: 'phone', state: state(), ttlMs: 30_000 });
    for (let i = 0; i < 5; i++) {
      t.clock.advance(20_000);
      await t.engine.report('alice', { platform: 'device', device: 'phone', state: state(), ttlMs: 30_000 });
      await t.engine.sweep();
    }
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
    t.clock.advance(30_001);
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 2 });
  });

  it('a shorter TTL on a refresh is honoured', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 600_000 });
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 5000 });
    t.clock.advance(6000);
    await t.engine.sweep();
    expect(t.engine.get('alice')?.status).toBe('offline');
  });

  it('an inferred signal fades through the sweeper: online, idle, away, offline', async () => {
    const m = signalPresence('message', t.clock.now());
    await t.engine.reportMapped('alice', 'whatsapp', m, 0);
    const seen: string[] = [t.engine.get('alice')!.status];
    for (const minutes of [2, 8, 50]) {
      t.clock.advance(minutes * 60_000);
      await t.engine.sweep();
      seen.push(t.engine.get('alice')!.status);
    }
    expect(seen).toEqual(['online', 'idle', 'away', 'offline']);
    expect((await t.engine.history('alice', { limit: 10 })).map((h) => h.toStatus)).toEqual([
      'offline',
      'away',
      'idle',
      'online',
    ]);
  });

  it('a new signal while faded brings the person back online', async () => {
    await t.engine.reportMapped('alice', 'whatsapp', signalPresence('message', t.clock.now()), 0);
    t.clock.advance(5 * 60_000);
    await t.engine.sweep();
    expect(t.engine.get('alice')?.status).toBe('idle');
    await t.engine.reportMapped('alice', 'whatsapp', signalPresence('read', t.clock.now()), 0);
    expect(t.engine.get('alice')?.status).toBe('online');
  });

  it('a report older than the one held never moves presence backwards', async () => {
    const now = t.clock.now();
    await t.engine.reportMapped('alice', 'whatsapp', signalPresence('message', now), 0);
    await t.engine.reportMapped('alice', 'whatsapp', signalPresence('read', now - 60_000), 0);
    expect(t.engine.get('alice')?.platforms.whatsapp?.raw).toEqual({ kind: 'message' });
  });

  it('a device the platform no longer lists is ended; expired devices are forgotten after the retention', async () => {
    const mapped = (devices: Record<string, NormalizedState>) => ({
      state: state({ label: 'online' }),
      devices,
    });
    await t.engine.reportMapped('alice', 'discord', mapped({ desktop: state(), mobile: state() }), 600_000);
    await t.engine.reportMapped('alice', 'discord', mapped({ mobile: state() }), 600_000);
    const devices = t.engine.get('alice')!.platforms.discord!.devices;
    expect(devices.desktop?.expires_at).toBe(new Date(t.clock.now()).toISOString());
    expect(devices.mobile?.expires_at).toBe(new Date(t.clock.now() + 600_000).toISOString());
    t.clock.advance(25 * 3600_000);
    await t.engine.sweep();
    expect(Object.keys(t.engine.get('alice')!.platforms.discord!.devices)).toEqual([]);
    expect(rows("SELECT device FROM observations WHERE platform = 'discord'")).toEqual([{ device: '' }]);
  });

  it('restart: comes back with every committed change and resumes TTLs', async () => {
    const start = t.clock.now();
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await t.engine.setOverride('alice', {
      status: 'busy',
      activity: null,
      customStatus: null,
      expiresAt: start + 120_000,
    });
    t.close();
    t.clock.advance(30_000);
    t = await t.reopen();
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'busy', source: 'manual', version: 2 });
    t.close();
    t.clock.advance(200_000); // down past both expiries
    t = await t.reopen();
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', stale: true, version: 3 });
    expect((await t.engine.history('alice', { limit: 1 }))[0]).toMatchObject({
      toStatus: 'offline',
      at: start + 120_000,
    });
  });

  it('restart: refreshed times survive once persisted', async () => {
    await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    t.clock.advance(25_000);
    await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    await t.engine.persistRefreshes();
    t.close();
    t.clock.advance(10_000); // past the first expiry, inside the refreshed one
    t = await t.reopen();
    await t.engine.sweep();
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
  });

  it('retries a commit that meets a lock, acknowledging only once durable', async () => {
    let failures = 2;
    const write = CountingStore.prototype.write;
    jest.spyOn(t.store, 'write').mockImplementation(function (this: CountingStore, ops, also) {
      if (failures > 0) {
        failures -= 1;
        throw new Database.SqliteError('database is locked', 'SQLITE_BUSY');
      }
      write.call(this, ops, also);
    });
    let acked = false;
    const ack = t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 }).then(() => {
      acked = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(acked).toBe(false);
    expect(rows('SELECT * FROM aggregates')).toEqual([]);
    await ack;
    expect(failures).toBe(0);
    expect(rows('SELECT version FROM aggregates')).toEqual([{ version: 1 }]);
  });

  it('a commit that fails otherwise is refused at once and rolled back; the next one commits', async () => {
    await t.engine.flush(); // alice exists
    const write = CountingStore.prototype.write;
    const spy = jest.spyOn(t.store, 'write').mockImplementationOnce(() => {
      throw new Database.SqliteError('disk I/O error', 'SQLITE_IOERR_WRITE');
    });
    await expect(
      t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 }),
    ).rejects.toMatchObject({ code: 'unavailable', details: [{ code: 'io_error' }] });
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 0, platforms: {} });
    spy.mockImplementation(function (this: CountingStore, ops, also) {
      write.call(this, ops, also);
    });
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    expect(rows('SELECT version FROM aggregates')).toEqual([{ version: 1 }]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
  });

  it('sweeps many users in chunks without losing any', async () => {
    t.close();
    t = await t.reopen({ sweepBudgetMs: 0 });
    for (let i = 0; i < 2000; i++) {
      t.engine.ensureUser(`u${i}`);
      void t.engine.report(`u${i}`, { platform: 'slack', state: state(), ttlMs: 10_000 });
    }
    t.clock.advance(11_000);
    expect(await t.engine.sweep()).toBe(2000);
    expect(rows("SELECT count(*) AS n FROM aggregates WHERE status = 'offline'")).toEqual([{ n: 2000 }]);
  });

  it('users and accounts: link, conflict, resolve, unlink, delete everything', async () => {
    const slack = { platform: 'slack' as const, workspaceId: 'T1', externalId: 'U1' };
    await t.engine.putUser('bob', { displayName: 'Bob' });
    expect(await t.engine.linkAccount('alice', slack)).toEqual({ linked: true });
    expect(await t.engine.linkAccount('alice', slack)).toEqual({ linked: true });
    expect(await t.engine.linkAccount('bob', slack)).toEqual({ linked: false, ownerId: 'alice' });
    expect(t.engine.resolveAccount(slack)).toBe('alice');
    expect(t.engine.accountsFor('slack')).toEqual([slack]);
    await t.engine.reportAccount(slack, { state: state(), devices: null }, 60_000);
    expect(t.engine.get('alice')?.status).toBe('online');
    expect(await t.engine.unlinkAccount('bob', slack)).toBe(false);
    expect(await t.engine.deleteUser('alice')).toBe(true);
    expect(t.engine.resolveAccount(slack)).toBeUndefined();
    expect(t.engine.get('alice')).toBeUndefined();
    for (const table of ['users', 'accounts', 'observations', 'aggregates', 'transitions', 'overrides']) {
      expect(
        rows(`SELECT * FROM ${table} WHERE ${table === 'accounts' ? 'user_id' : 'user_id'} = ?`, 'alice'),
      ).toEqual([]);
    }
    expect(await t.engine.deleteUser('alice')).toBe(false);
    expect(await t.engine.linkAccount('bob', slack)).toEqual({ linked: true });
  });
});

describe('PresenceEngine JSON reads', () => {
  const tmp = tmpDir();
  afterAll(() => tmp.cleanup());

  it('serves the same object as get(), from a cache that follows every change and expiry', async () => {
    const t = await testEngine(join(tmp.dir, 'json.db'), { viewCacheSize: 2 });
    t.engine.ensureUser('alice');
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 30_000 });
    const first = t.engine.getJson('alice')!;
    expect(JSON.parse(first)).toEqual(t.engine.get('alice'));
    expect(t.engine.getJson('alice')).toBe(first); // cached: the very same string
    t.clock.advance(1000);
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 30_000 }); // a refresh
    expect(JSON.parse(t.engine.getJson('alice')!)).toEqual(t.engine.get('alice'));
    expect(t.engine.getJson('alice')).not.toBe(first);
    t.clock.advance(31_000); // expiry, before any sweep ran
    expect(JSON.parse(t.engine.getJson('alice')!)).toMatchObject({
      status: 'offline',
      stale: true,
      version: 2,
    });
    t.close();
  });

  it('answers a repeated batch with the same bytes until one of its members changes', async () => {
    const t = await testEngine(join(tmp.dir, 'memo.db'), { viewCacheSize: 2 });
    for (const id of ['a', 'b', 'other']) await t.engine.heartbeat(id, 'phone', 'online', null, 30_000);
    const ids = 'a,b,ghost'; // as the API receives it
    const parse = (b: Buffer) =>
      JSON.parse(b.toString('utf8')) as {
        presence: Record<string, { status: string }>;
        unknown: string[];
      };
    const once = t.engine.getManyJson(ids); // a list is remembered from its second request on
    const first = t.engine.getManyJson(ids);
    expect(first).not.toBe(once);
    expect(first).toEqual(once);
    expect(t.engine.getManyJson(ids)).toBe(first);
    // Someone outside the list changes, and the view cache (2 users) drops a member's view.
    await t.engine.heartbeat('other', 'phone', 'busy', null, 30_000);
    t.engine.getManyJson('other');
    expect(t.engine.getManyJson(ids)).toBe(first);

    await t.engine.heartbeat('b', 'phone', 'busy', null, 30_000);
    const afterChange = t.engine.getManyJson(ids);
    expect(afterChange).not.toBe(first);
    expect(parse(afterChange).presence.b?.status).toBe('busy');

    t.clock.advance(1000); // the same state again only moves its times, which the body shows
    await t.engine.heartbeat('a', 'phone', 'online', null, 30_000);
    expect(t.engine.getManyJson(ids).toString('utf8')).toContain(new Date(t.clock.now()).toISOString());

    t.engine.ensureUser('ghost');
    const afterCreate = parse(t.engine.getManyJson(ids));
    expect(Object.keys(afterCreate.presence)).toEqual(['a', 'b', 'ghost']);
    expect(afterCreate.unknown).toEqual([]);

    await t.engine.deleteUser('a');
    expect(parse(t.engine.getManyJson(ids)).unknown).toEqual(['a']);

    t.clock.advance(31_000); // b's phone expires with no sweep run: time alone changes the answer
    expect(parse(t.engine.getManyJson(ids)).presence.b?.status).toBe('offline');
    t.close();
  });

  it('answers a list as the API received it as it answers the same ids as an array', async () => {
    const t = await testEngine(join(tmp.dir, 'memo-list.db'));
    for (const id of ['a', 'b']) await t.engine.heartbeat(id, 'phone', 'online', null, 30_000);
    for (let i = 0; i < 3; i++)
      expect(t.engine.getManyJson('a,b,x,a')).toEqual(t.engine.getManyJson(['a', 'b', 'x', 'a']));
    t.close();
  });

  it('keeps no batch bodies with a memo budget of 0', async () => {
    const t = await testEngine(join(tmp.dir, 'memo-off.db'), { batchMemoBytes: 0 });
    await t.engine.heartbeat('a', 'phone', 'online', null, 30_000);
    const first = t.engine.getManyJson('a');
    expect(t.engine.getManyJson('a')).not.toBe(first);
    expect(t.engine.getManyJson('a')).not.toBe(first);
    expect(t.engine.getManyJson('a')).toEqual(first);
    t.close();
  });

  it('assembles a batch with unknown ids, and stays right when the cache evicts', async () => {
    const t = await testEngine(join(tmp.dir, 'batch.db'), { viewCacheSize: 2 });
    for (const id of ['a', 'b', 'c']) void t.engine.heartbeat(id, 'phone', 'online', null, 30_000);
    for (let i = 0; i < 3; i++) {
      const text = t.engine.getManyJson(['a', 'nobody', 'b', 'c', 'a', 'nobody']).toString('utf8');
      expect(text.match(/"a":/g)).toHaveLength(1);
      const body = JSON.parse(text) as { presence: Record<string, unknown>; unknown: string[] };
      expect(Object.keys(body.presence)).toEqual(['a', 'b', 'c']);
      expect(body.unknown).toEqual(['nobody']);
      expect(body.presence.c).toEqual(t.engine.get('c'));
    }
    t.close();
  });
});
