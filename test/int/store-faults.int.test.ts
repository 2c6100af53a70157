/**
 * The store cannot commit: another connection holds the write lock, the disk is full, the file is
 * read-only. Each fault is injected for real through SQLite (test/helpers/store-faults.ts), or,
 * where the real one cannot be made to hit one exact write, as the error SQLite gives. What must
 * hold: the event loop never stands still for the lock, every write is answered (503
 * `unavailable` with Retry-After while the store refuses it), memory never shows what was not
 * committed, `/readyz` names the cause, and everything recovers once the fault is gone.
 */

import { join } from 'node:path';

import Database from 'better-sqlite3';

import { CONNECTORS } from '../../connectors';
import { connectorContext } from '../../src/aggregator/connector-host';
import { silentLog } from '../../src/core/log';
import type { NormalizedState } from '../../src/core/presence';
import { BUSY_TIMEOUT_MS } from '../../src/store/db';
import { SqlitePresenceStore } from '../../src/store/presence-store';
import { CountingStore, storedRefreshes, testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import { expectError, testApi, type TestApi } from '../helpers/http';
import { fillDisk, holdWriteLock, makeReadOnly, peek } from '../helpers/store-faults';
import { waitUntil } from '../helpers/wait';

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
  ...fields,
});

/** A report too big for the pages the database has: with the disk full, it needs a new one. */
const bulky = (status: 'online' | 'busy' = 'online') => ({
  platform: 'teams' as const,
  state: state({ status, raw: { note: 'x'.repeat(20_000) } }),
  ttlMs: 60_000,
});

describe('store faults: the engine on a real SQLite file', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  /** Calls into the store's write, one per commit attempt. */
  let writes: number;
  beforeEach(async () => {
    n += 1;
    t = await testEngine(join(tmp.dir, `faults-${n}.db`));
    t.engine.ensureUser('alice');
    await t.engine.flush();
    writes = 0;
    const write = CountingStore.prototype.write;
    jest.spyOn(t.store, 'write').mockImplementation(function (this: CountingStore, ops, also) {
      writes += 1;
      write.call(this, ops, also);
    });
  });
  afterEach(() => t.close());
  afterAll(() => tmp.cleanup());

  const rows = (sql: string, ...args: unknown[]) =>
    t.db.prepare(sql).all(...args) as Record<string, unknown>[];

  it('a write waiting for a lock another connection holds is retried on timers, never holding the loop', async () => {
    // SQLite waits for a lock synchronously: its busy timeout is how long the loop stands still
    // per attempt (it was 5 s). Kept to milliseconds; the waiting happens between attempts.
    expect(t.db.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
    expect(BUSY_TIMEOUT_MS).toBeLessThanOrEqual(50);
    const lock = holdWriteLock(t.path);
    const ack = t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    // Timers keep running while the write waits: this test's own polling timer sees attempt
    // after attempt, the write still waiting (the lock is never released meanwhile).
    await waitUntil(() => writes >= 3, 'three commit attempts');
    expect(await peek(ack)).toBe('pending');
    expect(await t.engine.storeFault()).toMatchObject({ reason: 'database_locked' });
    expect(rows('SELECT * FROM aggregates')).toEqual([]);
    lock.release();
    await ack;
    expect(rows('SELECT status, version FROM aggregates')).toEqual([{ status: 'online', version: 1 }]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
    expect(await t.engine.storeFault()).toBeNull();
  });

  it('while a write waits for the lock, reads show only what is committed', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const lock = holdWriteLock(t.path);
    const changed = t.engine.report('alice', {
      platform: 'slack',
      state: state({ status: 'away' }),
      ttlMs: 60_000,
    });
    t.engine.ensureUser('bob');
    const created = t.engine.report('bob', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await waitUntil(async () => (await t.engine.storeFault()) !== null, 'the commit to meet the lock');
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
    expect(JSON.parse(t.engine.getJson('alice')!)).toMatchObject({ status: 'online', version: 1 });
    expect(t.engine.getMany(['alice', 'bob'])).toMatchObject({
      presence: { alice: { status: 'online', version: 1 } },
      unknown: ['bob'],
    });
    const batch = JSON.parse(t.engine.getManyJson('alice,bob').toString());
    expect(batch).toMatchObject({ presence: { alice: { status: 'online' } }, unknown: ['bob'] });
    expect(t.engine.getJson('bob')).toBeUndefined();
    lock.release();
    await Promise.all([changed, created]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'away', version: 2 });
    expect(JSON.parse(t.engine.getManyJson('alice,bob').toString())).toMatchObject({
      presence: { alice: { status: 'away' }, bob: { status: 'online', version: 1 } },
      unknown: [],
    });
  });

  it('a lock that outlasts the retries: 503 database_locked, nothing applied, the next write commits', async () => {
    const lock = holdWriteLock(t.path);
    const ack = t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await waitUntil(() => writes >= 1, 'the first attempt');
    t.clock.advance(5_000); // the engine's retry window, by its clock
    await expect(ack).rejects.toMatchObject({
      code: 'unavailable',
      status: 503,
      headers: { 'retry-after': '2' },
      details: [{ code: 'database_locked' }],
    });
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 0, platforms: {} });
    lock.release();
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    expect(rows('SELECT version, to_status FROM transitions')).toEqual([{ version: 1, to_status: 'online' }]);
    expect(await t.engine.storeFault()).toBeNull();
  });

  it('disk full: refused at once, rolled back (a user it created too), no version spent; recovers', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const freeDisk = fillDisk(t.db);
    writes = 0;
    t.engine.ensureUser('bob');
    const bob = t.engine.report('bob', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const alice = t.engine.report('alice', bulky('busy'));
    const refusal = {
      code: 'unavailable',
      details: [{ code: 'disk_full' }],
      headers: { 'retry-after': '30' },
    };
    await expect(alice).rejects.toMatchObject(refusal);
    // It shared alice's transaction, so it shares its fate.
    await expect(bob).rejects.toMatchObject(refusal);
    expect(writes).toBe(1); // not retried: a full disk does not empty itself in 5 s
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
    expect(Object.keys(t.engine.get('alice')!.platforms)).toEqual(['slack']);
    expect(t.engine.hasUser('bob')).toBe(false);
    expect(await t.engine.storeFault()).toMatchObject({ reason: 'disk_full' });
    // Synchronous writes get the same answer.
    await expect(t.engine.putUser('carol', { displayName: 'x'.repeat(20_000) })).rejects.toThrow(
      expect.objectContaining({
        code: 'unavailable',
        details: [{ code: 'disk_full', message: expect.any(String) }],
      }),
    );

    freeDisk();
    // Readiness finds out by itself, at the next probe.
    expect(await t.engine.storeFault()).toMatchObject({ reason: 'disk_full' });
    t.clock.advance(1_000);
    expect(await t.engine.storeFault()).toBeNull();
    await t.engine.report('alice', bulky('busy'));
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', activity: null, version: 1 });
    await t.engine.report('alice', { platform: 'slack', state: state({ status: 'away' }), ttlMs: 60_000 });
    expect(t.engine.get('alice')).toMatchObject({ status: 'busy', version: 2 });
    // Gapless versions, nothing of the refused writes, also after a restart.
    expect(rows('SELECT version, to_status FROM transitions ORDER BY version')).toEqual([
      { version: 1, to_status: 'online' },
      { version: 2, to_status: 'busy' },
    ]);
    t.close();
    t = await t.reopen();
    expect(t.engine.get('alice')).toMatchObject({ status: 'busy', version: 2 });
    expect(t.engine.hasUser('bob')).toBe(false);
  });

  it('read-only: every kind of write is refused with read_only; once writable, all of them work', async () => {
    const writable = makeReadOnly(t.db);
    const refusal = { code: 'unavailable', details: [{ code: 'read_only' }] };
    const thrown = expect.objectContaining({
      code: 'unavailable',
      details: [expect.objectContaining({ code: 'read_only' })],
    });
    await expect(
      t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 }),
    ).rejects.toMatchObject(refusal);
    await expect(
      t.engine.setOverride('alice', {
        status: 'busy',
        activity: null,
        customStatus: null,
        expiresAt: t.clock.now() + 60_000,
      }),
    ).rejects.toMatchObject(refusal);
    await expect(t.engine.putUser('bob', {})).rejects.toThrow(thrown);
    const slack = { platform: 'slack' as const, workspaceId: 'T1', externalId: 'U1' };
    await expect(t.engine.linkAccount('alice', slack)).rejects.toThrow(thrown);
    await expect(t.engine.deleteUser('alice')).rejects.toThrow(thrown);
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 0, override: null });
    expect(t.engine.resolveAccount(slack)).toBeUndefined();
    expect(await t.engine.storeFault()).toMatchObject({ reason: 'read_only' });

    writable();
    t.clock.advance(1_000);
    expect(await t.engine.storeFault()).toBeNull();
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    expect((await t.engine.putUser('bob', {})).created).toBe(true);
    expect(await t.engine.linkAccount('alice', slack)).toEqual({ linked: true });
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
  });

  it('an expiry that falls during a fault is found again afterwards, at the time it happened', async () => {
    await t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 10_000 });
    const expiry = t.clock.now() + 10_000;
    const writable = makeReadOnly(t.db);
    t.clock.advance(11_000);
    await t.engine.sweep();
    expect(rows('SELECT * FROM transitions WHERE version = 2')).toEqual([]);
    expect(await t.engine.storeFault()).toMatchObject({ reason: 'read_only' });
    writable();
    t.clock.advance(1_000);
    await t.engine.sweep();
    expect(rows('SELECT version, to_status, at FROM transitions WHERE version = 2')).toEqual([
      { version: 2, to_status: 'offline', at: expiry },
    ]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 2, stale: true });
  });

  it('a refresh never waited for a commit: still acknowledged during a fault, and written once it is over', async () => {
    await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    const writable = makeReadOnly(t.db);
    t.clock.advance(10_000);
    await t.engine.report('alice', { platform: 'device', device: 'laptop', state: state(), ttlMs: 30_000 });
    expect(await t.engine.persistRefreshes()).toBe(0);
    expect(t.engine.get('alice')?.expires_at).toBe(new Date(t.clock.now() + 30_000).toISOString());
    writable();
    expect(await t.engine.persistRefreshes()).toBe(1);
    expect(storedRefreshes(t.db).get('alice')?.observations).toMatchObject([
      { device: 'laptop', expiresAt: t.clock.now() + 30_000 },
    ]);
  });

  it("a connector's report the store refuses ends no connector loop; its next report commits", async () => {
    const account = { platform: 'zoom' as const, workspaceId: '', externalId: 'zoom-alice' };
    await t.engine.linkAccount('alice', account);
    const ctx = connectorContext(t.engine, CONNECTORS.zoom, silentLog);
    const writable = makeReadOnly(t.db);
    await expect(ctx.report({ account, presence: { state: state(), devices: null } })).resolves.toBe(true);
    expect(t.engine.get('alice')).toMatchObject({ status: 'offline', version: 0 });
    writable();
    await ctx.report({ account, presence: { state: state(), devices: null } });
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
    expect(rows('SELECT platform, status FROM observations')).toEqual([
      { platform: 'zoom', status: 'online' },
    ]);
  });

  it('stopping while a write waits for the lock answers it instead of hanging', async () => {
    const lock = holdWriteLock(t.path);
    const ack = t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await waitUntil(() => writes >= 1, 'the first attempt');
    await t.engine.stop();
    await expect(ack).rejects.toMatchObject({ code: 'unavailable', details: [{ code: 'database_locked' }] });
    lock.release();
  });
});

describe('store faults through the HTTP API', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi();
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await api.close();
  });

  const heartbeat = (device: string, status = 'online') =>
    api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'alice', device_id: device, status },
    });
  const presence = async (): Promise<{ version: number; devices: string[] }> => {
    const res = await api.call({ method: 'GET', url: '/v1/presence/alice' });
    expect(res.statusCode).toBe(200);
    const body = api.json(res);
    return { version: body.version, devices: Object.keys(body.platforms.device?.devices ?? {}).sort() };
  };
  const readyz = () => api.call({ method: 'GET', url: '/readyz', key: null });

  /** 503 `unavailable` naming `reason`, with Retry-After, in the contract's error body. */
  function expectRefused(
    res: Awaited<ReturnType<typeof heartbeat>>,
    reason: string,
    retryAfter: string,
  ): void {
    expectError(res, 503, 'unavailable');
    expect(res.headers['retry-after']).toBe(retryAfter);
    expect(api.json(res).error.details).toEqual([{ code: reason, message: expect.any(String) }]);
  }

  it("/healthz and reads answer while a write waits for another connection's lock", async () => {
    expect((await heartbeat('laptop')).statusCode).toBe(204);
    expect(api.svc.db!.pragma('busy_timeout', { simple: true })).toBe(BUSY_TIMEOUT_MS);
    const lock = holdWriteLock(api.svc.db!.name);
    const pending = heartbeat('phone', 'busy');
    await waitUntil(
      async () => (await api.svc.engine.storeFault())?.reason === 'database_locked',
      'the write to meet the lock',
    );
    // Proven by order, the lock held throughout: health and a read are answered while the write
    // still waits for it.
    expect((await api.call({ method: 'GET', url: '/healthz', key: null })).statusCode).toBe(200);
    // The read shows what is committed: the phone's heartbeat is not, yet.
    expect(await presence()).toEqual({ version: 1, devices: ['laptop'] });
    expect(await peek(pending)).toBe('pending');
    lock.release();
    expect((await pending).statusCode).toBe(204);
    expect((await presence()).devices).toEqual(['laptop', 'phone']);
  });

  it('a lock past the retries: 503 + Retry-After, /readyz 503 database_locked, then recovery', async () => {
    const lock = holdWriteLock(api.svc.db!.name);
    const pending = heartbeat('laptop');
    await waitUntil(async () => (await api.svc.engine.storeFault()) !== null, 'the write to meet the lock');
    const ready = await readyz();
    expect(ready.statusCode).toBe(503);
    expect(api.json(ready)).toMatchObject({
      ready: false,
      reason: 'database_locked',
      message: expect.stringMatching(/locked/),
    });
    api.clock.advance(5_000);
    expectRefused(await pending, 'database_locked', '2');
    expect((await api.call({ method: 'GET', url: '/v1/presence/alice' })).statusCode).toBe(404);
    lock.release();
    api.clock.advance(1_000);
    expect(api.json(await readyz())).toEqual({ ready: true });
    expect((await heartbeat('laptop')).statusCode).toBe(204);
    expect(await presence()).toEqual({ version: 1, devices: ['laptop'] });
  });

  it('disk full (SQLITE_FULL): 503 disk_full, reads unchanged, /readyz names it, recovery without a restart', async () => {
    expect((await heartbeat('laptop')).statusCode).toBe(204);
    // The error SQLite gives when the disk is full (a tiny tmpfs gives the same), for every commit.
    const full = () => {
      throw new Database.SqliteError('database or disk is full', 'SQLITE_FULL');
    };
    const write = jest.spyOn(SqlitePresenceStore.prototype, 'write').mockImplementation(full);
    const probe = jest.spyOn(SqlitePresenceStore.prototype, 'probe').mockImplementation(full);
    expectRefused(await heartbeat('phone', 'busy'), 'disk_full', '30');
    expect(await presence()).toEqual({ version: 1, devices: ['laptop'] });
    const ready = await readyz();
    expect(ready.statusCode).toBe(503);
    expect(ready.headers['retry-after']).toBe('30');
    expect(api.json(ready)).toEqual({
      ready: false,
      reason: 'disk_full',
      message: 'the disk holding the database is full',
      since: new Date(api.clock.now()).toISOString(),
    });
    write.mockRestore();
    probe.mockRestore();
    api.clock.advance(1_000);
    expect(api.json(await readyz())).toEqual({ ready: true });
    expect((await heartbeat('phone', 'busy')).statusCode).toBe(204);
    expect(await presence()).toEqual({ version: 1, devices: ['laptop', 'phone'] });
  });

  it('read-only (SQLITE_READONLY): overrides, users and keys all answer 503 read_only, then work again', async () => {
    expect((await heartbeat('laptop')).statusCode).toBe(204);
    const writable = makeReadOnly(api.svc.db!);
    const override = () =>
      api.call({
        method: 'PUT',
        url: '/v1/presence/alice/override',
        payload: { status: 'busy', ttl_seconds: 600 },
      });
    expectRefused(await override(), 'read_only', '30');
    expectRefused(await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} }), 'read_only', '30');
    expectRefused(
      await api.call({ method: 'POST', url: '/v1/keys', payload: { scopes: ['read'] }, key: api.key.admin }),
      'read_only',
      '30',
    );
    expect(api.json(await readyz())).toMatchObject({ ready: false, reason: 'read_only' });
    expect((await api.call({ method: 'GET', url: '/v1/presence/alice' })).statusCode).toBe(200);
    expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/alice' }))).toMatchObject({
      status: 'online',
      override: null,
      version: 1,
    });
    writable();
    api.clock.advance(1_000);
    expect((await readyz()).statusCode).toBe(200);
    expect((await override()).statusCode).toBe(200);
    expect((await api.call({ method: 'PUT', url: '/v1/users/bob', payload: {} })).statusCode).toBe(201);
    expect(api.json(await api.call({ method: 'GET', url: '/v1/presence/alice' }))).toMatchObject({
      status: 'busy',
      version: 2,
    });
  });
});
