import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import type { NormalizedState } from '../../src/core/presence';
import { CountingStore, testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import { testApi, type TestApi } from '../helpers/http';
import { holdWriteLock, peek, waitFor } from '../helpers/store-faults';

// Generous: the lock tests wait for real retries on a loaded machine (they never race a deadline).
jest.setTimeout(30_000);

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
  ...fields,
});

describe('store faults: the engine on a real SQLite file', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  /** How long each call into the store held the event loop, in ms. */
  let writes: number[];
  beforeEach(async () => {
    n += 1;
    t = testEngine(join(tmp.dir, `faults-${n}.db`));
    t.engine.ensureUser('alice');
    t.engine.flushSync();
    writes = [];
    const write = CountingStore.prototype.write;
    jest.spyOn(t.store, 'write').mockImplementation(function (this: CountingStore, ops, also) {
      const started = performance.now();
      try {
        write.call(this, ops, also);
      } finally {
        writes.push(performance.now() - started);
      }
    });
    await Promise.resolve();
  });
  afterEach(() => t.close());
  afterAll(() => tmp.cleanup());

  const rows = (sql: string, ...args: unknown[]) =>
    t.db.prepare(sql).all(...args) as Record<string, unknown>[];

  it('a write waiting for a lock another connection holds is retried on timers, never holding the loop', async () => {
    const lock = holdWriteLock(t.path);
    const ack = t.engine.report('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    // Timers keep running while the write waits: the retries are asynchronous, each one short.
    await waitFor(() => writes.length >= 3, 'three commit attempts');
    expect(await peek(ack)).toBe('pending');
    // SQLite's busy wait used to hold the loop for 5 s per attempt; a generous bound well under that.
    expect(Math.max(...writes)).toBeLessThan(1000);
    expect(rows('SELECT * FROM aggregates')).toEqual([]);
    lock.release();
    await ack;
    expect(rows('SELECT status, version FROM aggregates')).toEqual([{ status: 'online', version: 1 }]);
    expect(t.engine.get('alice')).toMatchObject({ status: 'online', version: 1 });
  });
});

describe('store faults through the HTTP API', () => {
  let api: TestApi;
  beforeEach(async () => {
    api = await testApi();
  });
  afterEach(() => api.close());

  const heartbeat = (device: string, status = 'online') =>
    api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'alice', device_id: device, status },
    });
  const devices = async (): Promise<string[]> => {
    const res = await api.call({ method: 'GET', url: '/v1/presence/alice' });
    expect(res.statusCode).toBe(200);
    return Object.keys(api.json(res).platforms.device.devices as object).sort();
  };

  it("/healthz and reads answer at once while a write waits for another connection's lock", async () => {
    expect((await heartbeat('laptop')).statusCode).toBe(204);
    const lock = holdWriteLock(api.svc.db.name);
    const pending = heartbeat('phone', 'busy');
    await waitFor(
      () => api.svc.engine.storeFault()?.reason === 'database_locked',
      'the write to meet the lock',
    );
    const started = performance.now();
    const health = await api.call({ method: 'GET', url: '/healthz', key: null });
    expect(health.statusCode).toBe(200);
    // The read shows what is committed: the phone's heartbeat is not, yet.
    expect(await devices()).toEqual(['laptop']);
    // Each used to take the 5 s of SQLite's busy wait; a generous bound well under that.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await peek(pending)).toBe('pending');
    lock.release();
    expect((await pending).statusCode).toBe(204);
    expect(await devices()).toEqual(['laptop', 'phone']);
  });
});
