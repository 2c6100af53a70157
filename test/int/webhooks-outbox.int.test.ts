import { join } from 'node:path';

import { Webhook } from 'standardwebhooks';

import { FakeClock } from '../../src/core/clock';
import type { CustomStatus, Status } from '../../src/core/presence';
import type { WebhookService, WebhookServiceOptions } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import type { Receiver, Responder } from '../helpers/receiver';
import { Receivers, reportTeams, webhookService } from '../helpers/webhooks';

describe('webhook outbox: replay, coalescing, log, pruning, restart', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  let svc: WebhookService;
  const receivers = new Receivers();
  const services: WebhookService[] = [];

  async function setup(options: Partial<WebhookServiceOptions> = {}, path?: string): Promise<void> {
    n += 1;
    t = await testEngine(path ?? join(tmp.dir, `outbox-${n}.db`), { clock: new FakeClock(Date.now()) });
    svc = await service(options);
  }

  async function service(options: Partial<WebhookServiceOptions> = {}): Promise<WebhookService> {
    const s = await webhookService(t, options);
    services.push(s);
    return s;
  }

  const receiver = (respond?: Responder): Promise<Receiver> => receivers.start(respond);
  const set = (userId: string, status: Status, customStatus: CustomStatus | null = null): Promise<void> =>
    reportTeams(t, userId, status, customStatus);

  const seen = (r: Receiver): [unknown, unknown][] => r.bodies().map((b) => [b.data.user_id, b.data.version]);

  afterEach(async () => {
    for (const s of services.splice(0)) await s.stop();
    t.close();
    await receivers.closeAll();
  });
  afterAll(() => tmp.cleanup());

  it('replays every event since a time with the same webhook-ids, in version order', async () => {
    await setup();
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    t.clock.advance(1000);
    const middle = t.clock.now();
    await set('alice', 'busy');
    await set('bob', 'online');
    t.clock.advance(1000);
    await set('alice', 'away');
    await svc.runDue();
    const original = new Map(r.received.map((q) => [q.body, q.headers['webhook-id']]));
    expect(original.size).toBe(4);

    expect(await svc.replay(ep.id, { since: new Date(middle).toISOString() })).toEqual({ replayed: 3 });
    await svc.runDue();
    const replayed = r.received.slice(4);
    expect(replayed).toHaveLength(3);
    for (const q of replayed) {
      expect(q.headers['webhook-id']).toBe(original.get(q.body));
      expect(() => new Webhook(ep.secret).verify(q.body, q.headers)).not.toThrow();
    }
    const alice = replayed.map((q) => JSON.parse(q.body) as { data: { user_id: string; version: number } });
    expect(alice.filter((b) => b.data.user_id === 'alice').map((b) => b.data.version)).toEqual([2, 3]);
    expect((await svc.deliveries(ep.id)).deliveries.filter((d) => d.replay)).toHaveLength(3);

    expect(await svc.replay(ep.id, { since: '2020-01-01T00:00:00Z' })).toEqual({ replayed: 4 });
    await expect(svc.replay(ep.id, { since: 'yesterday' })).rejects.toThrow(
      expect.objectContaining({ code: 'invalid_request' }),
    );
    await expect(svc.replay(ep.id, {})).rejects.toThrow(expect.objectContaining({ code: 'invalid_request' }));
    await expect(svc.replay('ep_nope', { since: '2020-01-01T00:00:00Z' })).rejects.toThrow(
      expect.objectContaining({ code: 'not_found' }),
    );
    await svc.updateEndpoint(ep.id, { enabled: false });
    await expect(svc.replay(ep.id, { since: '2020-01-01T00:00:00Z' })).rejects.toThrow(
      expect.objectContaining({ code: 'conflict' }),
    );
  });

  it('after a re-enable, a replay brings back what was given up while disabled', async () => {
    await setup();
    const r = await receiver(() => 410);
    const ep = await svc.createEndpoint({ url: r.url });
    const since = new Date(t.clock.now()).toISOString();
    await set('alice', 'online');
    await set('bob', 'online');
    await svc.runDue();
    expect(svc.getEndpoint(ep.id).enabled).toBe(false);
    r.respond = () => 204;
    await svc.updateEndpoint(ep.id, { enabled: true });
    expect(await svc.replay(ep.id, { since })).toEqual({ replayed: 2 });
    await svc.runDue();
    expect(seen(r).slice(-2).sort()).toEqual([
      ['alice', 1],
      ['bob', 1],
    ]);
  });

  it('coalesces a flap within the window into nothing, and a burst into one event', async () => {
    await setup();
    const plain = await receiver();
    const calm = await receiver();
    await svc.createEndpoint({ url: plain.url });
    const ep = await svc.createEndpoint({ url: calm.url, coalesce_ms: 2000 });

    await set('alice', 'online'); // v1
    await svc.runDue();
    expect(seen(plain)).toEqual([['alice', 1]]);
    expect(calm.received).toHaveLength(0); // held for the window
    t.clock.advance(2000);
    await svc.runDue();
    expect(seen(calm)).toEqual([['alice', 1]]); // a run of one: sent as it is
    expect(calm.received[0]!.headers['webhook-id']).toBe(plain.received[0]!.headers['webhook-id']);

    // online → offline → online within the window: nothing for the coalescing endpoint.
    await set('alice', 'offline'); // v2
    t.clock.advance(500);
    await set('alice', 'online'); // v3
    t.clock.advance(1500);
    await svc.runDue();
    expect(seen(plain)).toEqual([
      ['alice', 1],
      ['alice', 2],
      ['alice', 3],
    ]);
    expect(calm.received).toHaveLength(1);
    const log = (await svc.deliveries(ep.id, { status: 'coalesced' })).deliveries;
    expect(log.map((d) => d.version)).toEqual([3, 2]);
    expect(log[0]!.last_error).toMatch(/cancelled out/);

    // online → busy → away, custom status set: one event with what differs at the end.
    const sprint = { text: 'Sprint review', emoji: ':calendar:', expiresAt: null };
    await set('alice', 'busy'); // v4
    t.clock.advance(300);
    await set('alice', 'away', sprint); // v5
    t.clock.advance(300);
    await set('bob', 'online'); // bob v1, its own window
    t.clock.advance(1400);
    await svc.runDue();
    const merged = calm.bodies<{ type: string; data: Record<string, unknown> }>()[1]!;
    expect(merged.data).toMatchObject({
      user_id: 'alice',
      version: 5,
      previous: { status: 'online', activity: null, custom_status: null },
      current: { status: 'away', custom_status: { text: 'Sprint review' }, version: 5 },
      changed: ['status', 'custom_status'],
    });
    const mergedId = calm.received[1]!.headers['webhook-id'];
    expect(plain.received.map((q) => q.headers['webhook-id'])).not.toContain(mergedId);
    expect(seen(calm)).toEqual([
      ['alice', 1],
      ['alice', 5],
    ]);
    t.clock.advance(600);
    await svc.runDue();
    expect(seen(calm).at(-1)).toEqual(['bob', 1]);
    // The merged event is what this endpoint was sent: a replay sends it again, same id.
    await svc.replay(ep.id, { since: '2020-01-01T00:00:00Z' });
    await svc.runDue();
    expect(calm.received.slice(3).map((q) => q.headers['webhook-id'])).toContain(mergedId);
  });

  it('a change after the window starts the next run; order is kept', async () => {
    await setup();
    const calm = await receiver();
    await svc.createEndpoint({ url: calm.url, coalesce_ms: 1000 });
    await set('alice', 'online'); // v1 at 0
    t.clock.advance(900);
    await set('alice', 'busy'); // v2 at 900: in v1's window
    t.clock.advance(200);
    await set('alice', 'away'); // v3 at 1100: after it
    await svc.runDue();
    expect(seen(calm)).toEqual([['alice', 2]]);
    t.clock.advance(999); // v3's own window ends at 2100
    expect(await svc.runDue()).toBe(0);
    t.clock.advance(1);
    await svc.runDue();
    expect(seen(calm)).toEqual([
      ['alice', 2],
      ['alice', 3],
    ]);
  });

  it('the delivery log shows attempts, errors and pages by status', async () => {
    await setup({ retrySchedule: [0, 1000] });
    const ep = await svc.createEndpoint({ url: 'http://127.0.0.1:1/nothing-listens' });
    for (let i = 0; i < 5; i++) await set(`u${i}`, 'online');
    await svc.runDue();
    const page1 = await svc.deliveries(ep.id, { limit: 2 });
    expect(page1.deliveries.map((d) => d.user_id)).toEqual(['u4', 'u3']);
    expect(page1.deliveries[0]).toMatchObject({
      status: 'pending',
      attempt_count: 1,
      last_status_code: null,
      next_attempt_at: new Date(t.clock.now() + 1000).toISOString(),
    });
    expect(page1.deliveries[0]!.last_error).toMatch(/ECONNREFUSED/);
    expect(page1.deliveries[0]!.attempts[0]).toMatchObject({ attempt: 1, status_code: null });
    const page2 = await svc.deliveries(ep.id, { limit: '2', before: String(page1.next_before) });
    expect(page2.deliveries.map((d) => d.user_id)).toEqual(['u2', 'u1']);
    const page3 = await svc.deliveries(ep.id, { limit: 2, before: page2.next_before! });
    expect(page3).toMatchObject({ next_before: null });
    expect(page3.deliveries.map((d) => d.user_id)).toEqual(['u0']);
    t.clock.advance(1000);
    await svc.runDue();
    expect((await svc.deliveries(ep.id, { status: 'failed' })).deliveries).toHaveLength(5);
    expect((await svc.deliveries(ep.id, { status: 'pending' })).deliveries).toHaveLength(0);
    for (const bad of [{ status: 'lost' }, { limit: 0 }, { limit: 5000 }, { extra: 1 }]) {
      await expect(svc.deliveries(ep.id, bad)).rejects.toThrow(
        expect.objectContaining({ code: 'invalid_request' }),
      );
    }
    await expect(svc.deliveries('ep_none')).rejects.toThrow(expect.objectContaining({ code: 'not_found' }));
  });

  it('prunes delivered rows past the retention, keeps pending ones and what they need', async () => {
    await setup({ retentionMs: 86_400_000 });
    const ok = await receiver();
    const down = await receiver(() => 500);
    const a = await svc.createEndpoint({ url: ok.url });
    const b = await svc.createEndpoint({ url: down.url, events: ['connector.degraded'] });
    await set('alice', 'online');
    await svc.emit('connector.degraded', { platform: 'slack', reason: 'rate limited' });
    await svc.runDue();
    t.clock.advance(2 * 86_400_000);
    await set('alice', 'busy'); // recent: kept
    await svc.runDue();
    expect(await svc.prune()).toEqual({ deliveries: 2, events: 1 });
    expect((await svc.deliveries(a.id)).deliveries.map((d) => d.version)).toEqual([2]);
    // b's delivery is still being retried: it and its event stay.
    expect((await svc.deliveries(b.id)).deliveries).toHaveLength(1);
    expect(t.db.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(2);
    // b's two failed attempts (a success is kept on its delivery row, not as an attempt row).
    expect(t.db.prepare('SELECT count(*) FROM webhook_attempts').pluck().get()).toBe(2);
  });

  it('filters endpoints by event type and user; emit writes other event types', async () => {
    await setup();
    const bobOnly = await receiver();
    const connectors = await receiver();
    const everything = await receiver();
    await svc.createEndpoint({ url: bobOnly.url, user_ids: ['bob'] });
    await svc.createEndpoint({ url: connectors.url, events: ['connector.degraded', 'connector.recovered'] });
    await svc.createEndpoint({ url: everything.url });
    await set('alice', 'online');
    await set('bob', 'online');
    const id = await svc.emit('connector.degraded', { platform: 'slack', error: 'HTTP 429' });
    expect(id).toMatch(/^msg_/);
    await svc.emit('connection.revoked', { connection_id: 'c1', user_id: 'alice', platform: 'slack' });
    await svc.runDue();
    expect(bobOnly.bodies().map((b) => b.type)).toEqual(['presence.changed', 'connector.degraded']);
    expect(bobOnly.bodies()[0]!.data.user_id).toBe('bob');
    expect(connectors.bodies().map((b) => b.type)).toEqual(['connector.degraded']);
    expect(connectors.received[0]!.headers['webhook-id']).toBe(id);
    expect(connectors.bodies()[0]).toEqual({
      type: 'connector.degraded',
      timestamp: new Date(t.clock.now()).toISOString(),
      data: { platform: 'slack', error: 'HTTP 429' },
    });
    expect(
      everything
        .bodies()
        .map((b) => b.type)
        .sort(),
    ).toEqual(['connection.revoked', 'connector.degraded', 'presence.changed', 'presence.changed']);
    // No endpoint wants it: nothing written.
    await svc.updateEndpoint(svc.listEndpoints().find((e) => e.url === everything.url)!.id, {
      events: ['presence.changed'],
    });
    expect(
      await svc.emit('connection.reauth_required', { connection_id: 'c2', user_id: 'carol' }),
    ).toBeNull();
    await expect(svc.emit('presence.changed' as never, {})).rejects.toThrow(/does not take/);
    // Emitted inside the caller's transaction: sent once it commits.
    await t.stores.transaction((tx) => svc.emitIn(tx, 'connector.recovered', { platform: 'slack' }));
    await svc.runDue();
    expect(connectors.bodies().map((b) => b.type)).toEqual(['connector.degraded', 'connector.recovered']);
    // Rolled back with it: never sent.
    await expect(
      t.stores.transaction(async (tx) => {
        await svc.emitIn(tx, 'connector.degraded', { platform: 'zoom' });
        throw new Error('rollback');
      }),
    ).rejects.toThrow('rollback');
    await svc.runDue();
    expect(connectors.bodies().map((b) => b.type)).toEqual(['connector.degraded', 'connector.recovered']);
  });

  it('a restart resumes delivery from the outbox', async () => {
    const path = join(tmp.dir, 'restart.db');
    await setup({}, path);
    const r = await receiver();
    await svc.createEndpoint({ url: r.url });
    for (const u of ['a', 'b', 'c']) await set(u, 'online');
    await set('a', 'busy');
    // Never started: the process "dies" with everything still pending.
    await svc.stop();
    t.close();
    t = await testEngine(path, { clock: t.clock });
    svc = await service();
    expect(await svc.runDue()).toBe(4);
    // Users go in parallel; each user's events in version order.
    expect(seen(r).filter(([u]) => u === 'a')).toEqual([
      ['a', 1],
      ['a', 2],
    ]);
    expect(seen(r).sort()).toEqual([
      ['a', 1],
      ['a', 2],
      ['b', 1],
      ['c', 1],
    ]);
  });

  it('holds a bounded window in memory and reads the rest from SQLite in order', async () => {
    await setup({ maxQueuedPerEndpoint: 6, maxInFlightPerEndpoint: 2 });
    const r = await receiver((req, i) => (i < 3 ? 503 : 204));
    const ep = await svc.createEndpoint({ url: r.url });
    for (let round = 0; round < 10; round++) {
      for (const u of ['x', 'y', 'z']) await set(u, round % 2 === 0 ? 'online' : 'busy');
      expect(svc.stats().queued).toBeLessThanOrEqual(6);
    }
    expect(svc.stats().spilled_endpoints).toBe(1);
    for (let i = 0; i < 20 && r.received.length < 33; i++) {
      await svc.runDue();
      t.clock.advance(5000);
    }
    const delivered = (await svc.deliveries(ep.id, { status: 'delivered', limit: 100 })).deliveries;
    expect(delivered).toHaveLength(30);
    for (const u of ['x', 'y', 'z']) {
      const versions = r
        .bodies()
        .filter((b) => b.data.user_id === u)
        .map((b) => b.data.version as number);
      const firstSeen = versions.filter((v, i) => versions.indexOf(v) === i);
      expect(firstSeen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    }
    expect(svc.stats()).toMatchObject({ queued: 0, spilled_endpoints: 0 });
  });

  it('an engine commit that fails after the outbox rows were written sends nothing twice and loses nothing', async () => {
    await setup();
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    let fail = 1;
    // A sink after the outbox: it fails the first commit, after the outbox wrote its rows, as
    // another connection's lock would (the engine retries that; other failures are refused).
    t.engine.changes.add({
      stage: () => {
        if (fail > 0) {
          fail -= 1;
          throw Object.assign(new Error('database is locked'), { name: 'SqliteError', code: 'SQLITE_BUSY' });
        }
      },
    });
    await set('alice', 'online'); // acknowledged once the engine's retry committed
    await set('alice', 'busy');
    await new Promise((resolve) => setImmediate(resolve));
    await svc.runDue();
    expect(seen(r)).toEqual([
      ['alice', 1],
      ['alice', 2],
    ]);
    expect(t.db.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(2);
    expect((await svc.deliveries(ep.id)).deliveries.map((d) => d.status)).toEqual(['delivered', 'delivered']);
  });

  it('drops quietly the outcome of a request in flight when its endpoint is deleted', async () => {
    await setup();
    const slow = await receiver(() => ({ delayMs: 100 }));
    const ep = await svc.createEndpoint({ url: slow.url });
    await set('alice', 'online');
    const running = svc.runDue();
    await slow.waitFor(1);
    await svc.deleteEndpoint(ep.id);
    await running;
    expect(t.db.prepare('SELECT count(*) FROM webhook_deliveries').pluck().get()).toBe(0);
    // The service carries on.
    const next = await receiver();
    await svc.createEndpoint({ url: next.url });
    await set('alice', 'busy');
    await svc.runDue();
    expect(seen(next)).toEqual([['alice', 2]]);
  });
});
