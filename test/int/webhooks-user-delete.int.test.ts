/**
 * Deleting a user and the webhook outbox: the user's events (full presence payloads) and their
 * deliveries are forgotten in the delete's own transaction, nothing of theirs is retried or
 * replayed afterwards, and a `user.deleted` event with the last version goes out instead.
 */
import { join } from 'node:path';

import { Webhook } from 'standardwebhooks';

import { FakeClock } from '../../src/core/clock';
import type { Status } from '../../src/core/presence';
import type { WebhookService, WebhookServiceOptions } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import type { Receiver, Responder } from '../helpers/receiver';
import { Receivers, reportTeams, webhookService } from '../helpers/webhooks';

describe('deleting a user forgets their webhook events', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  let svc: WebhookService;
  const receivers = new Receivers();

  async function setup(options: Partial<WebhookServiceOptions> = {}): Promise<void> {
    n += 1;
    // Near real time, so that standardwebhooks' own timestamp check passes.
    t = await testEngine(join(tmp.dir, `user-delete-${n}.db`), { clock: new FakeClock(Date.now()) });
    svc = await webhookService(t, options);
  }

  const receiver = (respond?: Responder): Promise<Receiver> => receivers.start(respond);
  const set = (userId: string, status: Status, text?: string): Promise<void> =>
    reportTeams(t, userId, status, text === undefined ? null : { text, emoji: null, expiresAt: null });

  const rows = (sql: string, ...args: unknown[]): Record<string, unknown>[] =>
    t.db.prepare(sql).all(...args) as Record<string, unknown>[];
  const kinds = (r: Receiver): [string, unknown, unknown][] =>
    r.bodies().map((b) => [b.type, b.data.user_id, b.data.version]);

  afterEach(async () => {
    await svc.stop();
    t.close();
    await receivers.closeAll();
  });
  afterAll(() => tmp.cleanup());

  it('removes their events, deliveries and attempts, never retries or replays them, and sends user.deleted', async () => {
    await setup();
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online', 'alice at the dentist');
    await set('alice', 'busy', 'alice at the dentist');
    await set('bob', 'online');
    expect(await svc.runDue()).toBe(3);
    // Her third change fails once and waits for its retry, in memory and in SQLite.
    r.respond = () => 500;
    await set('alice', 'away', 'alice at the dentist');
    expect(await svc.runDue()).toBe(1);
    expect(rows('SELECT count(*) AS n FROM webhook_attempts')).toEqual([{ n: 1 }]);

    expect(await t.engine.deleteUser('alice')).toBe(true);

    // In SQLite: only the user.deleted event names her; no delivery or attempt of hers is left.
    expect(rows("SELECT type, version FROM webhook_events WHERE user_id = 'alice'")).toEqual([
      { type: 'user.deleted', version: 3 },
    ]);
    expect(rows("SELECT count(*) AS n FROM webhook_events WHERE payload LIKE '%dentist%'")).toEqual([
      { n: 0 },
    ]);
    expect(
      rows(
        `SELECT e.type FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
         WHERE e.user_id = 'alice'`,
      ),
    ).toEqual([{ type: 'user.deleted' }]);
    expect(rows('SELECT count(*) AS n FROM webhook_attempts')).toEqual([{ n: 0 }]);

    // The retry that was due never goes out; user.deleted does, signed, with her last version.
    r.respond = () => 204;
    t.clock.advance(10_000); // past the retry's 5 s
    expect(await svc.runDue()).toBe(1);
    expect(kinds(r).slice(4)).toEqual([['user.deleted', 'alice', 3]]);
    const last = r.received[4]!;
    expect(new Webhook(ep.secret).verify(last.body, last.headers)).toEqual({
      type: 'user.deleted',
      timestamp: new Date(t.clock.now() - 10_000).toISOString(),
      data: { user_id: 'alice', version: 3 },
    });

    // A replay of everything sends bob's change and the deletion, nothing of hers.
    expect(await svc.replay(ep.id, { since: '2020-01-01T00:00:00Z' })).toEqual({ replayed: 2 });
    await svc.runDue();
    expect(kinds(r).slice(5).sort()).toEqual([
      ['presence.changed', 'bob', 1],
      ['user.deleted', 'alice', 3],
    ]);
    expect(r.received.slice(5).some((q) => q.body.includes('dentist'))).toBe(false);
    const log = (await svc.deliveries(ep.id)).deliveries;
    expect(log.filter((d) => d.user_id === 'alice').map((d) => d.type)).toEqual([
      'user.deleted',
      'user.deleted',
    ]);
  });

  it('a user created again under the same id starts again at version 1', async () => {
    await setup();
    const r = await receiver();
    await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await set('alice', 'busy');
    await svc.runDue();
    await t.engine.deleteUser('alice');
    await set('alice', 'away');
    await svc.runDue();
    expect(kinds(r)).toEqual([
      ['presence.changed', 'alice', 1],
      ['presence.changed', 'alice', 2],
      ['user.deleted', 'alice', 2],
      ['presence.changed', 'alice', 1],
    ]);
    expect(r.bodies()[3]!.data).toMatchObject({ previous: { status: 'offline' }, current: { version: 1 } });
  });

  it('a delivery in flight when its user is deleted is not retried', async () => {
    await setup();
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const r = await receiver((_req, i) => (i === 0 ? { status: 500, after: gate } : 204));
    await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    const round = svc.runDue();
    await r.waitFor(1);
    await t.engine.deleteUser('alice');
    release();
    await round;
    t.clock.advance(3_600_000);
    await svc.runDue();
    expect(kinds(r)).toEqual([
      ['presence.changed', 'alice', 1],
      ['user.deleted', 'alice', 1],
    ]);
    expect(rows('SELECT count(*) AS n FROM webhook_attempts')).toEqual([{ n: 0 }]);
  });

  it('follows the endpoint filters: event types and user ids', async () => {
    await setup();
    const all = await receiver();
    const presenceOnly = await receiver();
    const bobOnly = await receiver();
    const aliceOnly = await receiver();
    await svc.createEndpoint({ url: all.url });
    await svc.createEndpoint({ url: presenceOnly.url, events: ['presence.changed'] });
    await svc.createEndpoint({ url: bobOnly.url, user_ids: ['bob'] });
    await svc.createEndpoint({ url: aliceOnly.url, events: ['user.deleted'], user_ids: ['alice'] });
    await set('alice', 'online');
    await svc.runDue();
    await t.engine.deleteUser('alice');
    await svc.runDue();
    expect(kinds(all)).toEqual([
      ['presence.changed', 'alice', 1],
      ['user.deleted', 'alice', 1],
    ]);
    expect(kinds(presenceOnly)).toEqual([['presence.changed', 'alice', 1]]);
    expect(kinds(bobOnly)).toEqual([]);
    expect(kinds(aliceOnly)).toEqual([['user.deleted', 'alice', 1]]);
  });

  it('user.deleted is written in the transaction of the delete: when either fails, neither happens', async () => {
    await setup();
    const r = await receiver();
    await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await svc.runDue();
    const events = rows('SELECT seq, type, user_id FROM webhook_events');
    const deliveries = rows('SELECT id, status FROM webhook_deliveries');

    // The event cannot be written (a fault injected into the outbox table).
    t.db.exec(`CREATE TRIGGER no_user_deleted BEFORE INSERT ON webhook_events WHEN NEW.type = 'user.deleted'
      BEGIN SELECT RAISE(ABORT, 'injected: the outbox is full'); END`);
    await expect(t.engine.deleteUser('alice')).rejects.toMatchObject({
      message: expect.stringMatching(/injected/),
    });
    expect(t.engine.hasUser('alice')).toBe(true);
    expect(rows("SELECT user_id FROM users WHERE user_id = 'alice'")).toHaveLength(1);
    expect(rows('SELECT seq, type, user_id FROM webhook_events')).toEqual(events);
    expect(rows('SELECT id, status FROM webhook_deliveries')).toEqual(deliveries);
    t.db.exec('DROP TRIGGER no_user_deleted');

    // The user cannot be deleted: no user.deleted event, the outbox as it was.
    t.db.exec(`CREATE TRIGGER no_delete BEFORE DELETE ON users
      BEGIN SELECT RAISE(ABORT, 'injected: the users table is locked'); END`);
    await expect(t.engine.deleteUser('alice')).rejects.toMatchObject({
      message: expect.stringMatching(/injected/),
    });
    expect(t.engine.hasUser('alice')).toBe(true);
    expect(rows('SELECT seq, type, user_id FROM webhook_events')).toEqual(events);
    t.db.exec('DROP TRIGGER no_delete');

    // Nothing stale was queued by the failed attempts: the delete that succeeds sends one event.
    expect(await t.engine.deleteUser('alice')).toBe(true);
    await svc.runDue();
    expect(kinds(r)).toEqual([
      ['presence.changed', 'alice', 1],
      ['user.deleted', 'alice', 1],
    ]);
    expect(rows("SELECT type FROM webhook_events WHERE user_id = 'alice'")).toEqual([
      { type: 'user.deleted' },
    ]);
  });

  it('only the engine writes user.deleted (emit refuses it)', async () => {
    await setup();
    await expect(svc.emit('user.deleted' as never, { user_id: 'alice', version: 1 })).rejects.toThrow(
      /does not take user.deleted/,
    );
  });
});
