import { join } from 'node:path';

import { Webhook } from 'standardwebhooks';

import { FakeClock } from '../../src/core/clock';
import type { Status } from '../../src/core/presence';
import type { WebhookService, WebhookServiceOptions } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import type { Receiver, Responder } from '../helpers/receiver';
import { Receivers, reportTeams, webhookService } from '../helpers/webhooks';

const DAY = 86_400_000;

describe('webhook delivery to real loopback receivers', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  let svc: WebhookService;
  const receivers = new Receivers();

  async function setup(options: Partial<WebhookServiceOptions> = {}): Promise<void> {
    n += 1;
    // A fake clock near real time, so that standardwebhooks' own timestamp check passes.
    t = await testEngine(join(tmp.dir, `delivery-${n}.db`), { clock: new FakeClock(Date.now()) });
    svc = await webhookService(t, options);
  }

  const receiver = (respond?: Responder): Promise<Receiver> => receivers.start(respond);
  const set = (userId: string, status: Status): Promise<void> => reportTeams(t, userId, status);

  afterEach(async () => {
    await svc.stop();
    t.close();
    await receivers.closeAll();
  });
  afterAll(() => tmp.cleanup());

  it('sends a presence.changed event per change, signed so that standardwebhooks verifies it', async () => {
    await setup();
    const r = await receiver();
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    expect(await svc.runDue()).toBe(1);
    const [req] = r.received;
    expect(req!.method).toBe('POST');
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['webhook-id']).toMatch(/^msg_[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(req!.headers['webhook-timestamp']).toBe(String(Math.floor(t.clock.now() / 1000)));
    expect(req!.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const payload = new Webhook(ep.secret).verify(req!.body, req!.headers) as Record<string, unknown>;
    expect(payload).toEqual({
      type: 'presence.changed',
      timestamp: new Date(t.clock.now()).toISOString(),
      data: {
        user_id: 'alice',
        version: 1,
        previous: { status: 'offline', activity: null, custom_status: null },
        current: t.engine.get('alice'),
        changed: ['status'],
      },
    });

    // The same state again is no change: nothing is sent.
    await set('alice', 'online');
    expect(await svc.runDue()).toBe(0);
    await set('alice', 'busy');
    expect(await svc.runDue()).toBe(1);
    const second = JSON.parse(r.received[1]!.body) as { data: Record<string, unknown> };
    expect(second.data).toMatchObject({
      version: 2,
      previous: { status: 'online', activity: null, custom_status: null },
      changed: ['status'],
    });
    expect(r.received[1]!.headers['webhook-id']).not.toBe(req!.headers['webhook-id']);
  });

  it('retries after a 500 with the same webhook-id, on the schedule, and logs both attempts', async () => {
    await setup();
    const r = await receiver((_req, i) => (i === 0 ? 500 : 200));
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    expect(await svc.runDue()).toBe(1);
    let log = await svc.deliveries(ep.id);
    expect(log.deliveries[0]).toMatchObject({
      status: 'pending',
      attempt_count: 1,
      last_status_code: 500,
      last_error: 'HTTP 500 Internal Server Error',
      next_attempt_at: new Date(t.clock.now() + 5000).toISOString(),
    });

    t.clock.advance(4999);
    expect(await svc.runDue()).toBe(0);
    t.clock.advance(1);
    expect(await svc.runDue()).toBe(1);
    const [first, second] = r.received;
    expect(second!.headers['webhook-id']).toBe(first!.headers['webhook-id']);
    expect(Number(second!.headers['webhook-timestamp'])).toBe(
      Number(first!.headers['webhook-timestamp']) + 5,
    );
    expect(second!.body).toBe(first!.body);
    expect(() => new Webhook(ep.secret).verify(second!.body, second!.headers)).not.toThrow();

    log = await svc.deliveries(ep.id);
    expect(log.deliveries).toHaveLength(1);
    expect(log.deliveries[0]).toMatchObject({
      status: 'delivered',
      attempt_count: 2,
      last_status_code: 200,
      last_error: null,
      next_attempt_at: null,
      webhook_id: first!.headers['webhook-id'],
      type: 'presence.changed',
      user_id: 'alice',
      version: 1,
    });
    expect(
      log.deliveries[0]!.attempts.map((a) => [a.attempt, a.status_code, a.next_attempt_at !== null]),
    ).toEqual([
      [1, 500, true],
      [2, 200, false],
    ]);
    expect(log.deliveries[0]!.attempts[0]!.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('follows the whole retry schedule, then gives up; the next change of that user goes out', async () => {
    await setup({ retrySchedule: [0, 1000, 2000] });
    const r = await receiver(() => 502);
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await set('alice', 'busy');
    expect(await svc.runDue()).toBe(1);
    t.clock.advance(1000);
    expect(await svc.runDue()).toBe(1);
    t.clock.advance(2000);
    // The third and last attempt of v1 fails, so v1 is given up and v2 goes next.
    expect(await svc.runDue()).toBe(2);
    const log = await svc.deliveries(ep.id);
    expect(log.deliveries.map((d) => [d.version, d.status, d.attempt_count])).toEqual([
      [2, 'pending', 1],
      [1, 'failed', 3],
    ]);
    expect((await svc.deliveries(ep.id, { status: 'failed' })).deliveries).toHaveLength(1);
  });

  it('takes the first delay of the schedule for the first attempt', async () => {
    await setup({ retrySchedule: [1000, 1000] });
    const r = await receiver();
    await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    expect(await svc.runDue()).toBe(0);
    t.clock.advance(1000);
    expect(await svc.runDue()).toBe(1);
  });

  it('keeps version order per user under retries, without holding other users back', async () => {
    await setup();
    const r = await receiver((_req, i) => (i === 0 ? 500 : 204));
    await svc.createEndpoint({ url: r.url });
    await set('alice', 'online'); // v1: its first attempt fails
    expect(await svc.runDue()).toBe(1);
    await set('bob', 'online');
    await set('alice', 'busy'); // v2
    await set('alice', 'away'); // v3
    expect(await svc.runDue()).toBe(1); // bob only: alice waits behind her v1
    expect(r.bodies().map((b) => [b.data.user_id, b.data.version])).toEqual([
      ['alice', 1],
      ['bob', 1],
    ]);
    t.clock.advance(5000);
    expect(await svc.runDue()).toBe(3);
    expect(r.bodies().map((b) => [b.data.user_id, b.data.version])).toEqual([
      ['alice', 1],
      ['bob', 1],
      ['alice', 1],
      ['alice', 2],
      ['alice', 3],
    ]);
  });

  it('410 disables the endpoint and tells the other endpoints with webhook.endpoint_disabled', async () => {
    await setup();
    const gone = await receiver(() => 410);
    const other = await receiver();
    const a = await svc.createEndpoint({ url: gone.url });
    const b = await svc.createEndpoint({ url: other.url });
    await set('alice', 'online');
    await set('bob', 'online');
    await svc.runDue();
    await svc.runDue();
    expect(svc.getEndpoint(a.id)).toMatchObject({ enabled: false, disabled_reason: 'gone' });
    expect(svc.getEndpoint(b.id)).toMatchObject({ enabled: true });
    const types = other.bodies().map((x) => x.type);
    expect(types.filter((x) => x === 'presence.changed')).toHaveLength(2);
    const disabled = other.bodies().find((x) => x.type === 'webhook.endpoint_disabled');
    expect(disabled?.data).toMatchObject({ endpoint_id: a.id, reason: 'gone' });
    // Nothing more goes to the disabled one; what was pending for it is given up.
    const before = gone.received.length;
    await set('alice', 'busy');
    await svc.runDue();
    expect(gone.received.length).toBe(before);
    expect((await svc.deliveries(a.id, { status: 'pending' })).deliveries).toEqual([]);
    // Re-enabled, it gets new changes again.
    gone.respond = () => 204;
    expect(await svc.updateEndpoint(a.id, { enabled: true })).toMatchObject({
      enabled: true,
      disabled_reason: null,
    });
    await set('alice', 'away');
    await svc.runDue();
    expect(gone.received.length).toBe(before + 1);
  });

  it('honours Retry-After on 429 (seconds) and 503 (HTTP date), pausing the endpoint until then', async () => {
    await setup();
    let mode: 'limit' | 'date' | 'ok' = 'limit';
    const r = await receiver(() => {
      if (mode === 'limit') return { status: 429, headers: { 'retry-after': '120' } };
      if (mode === 'date')
        return { status: 503, headers: { 'retry-after': new Date(t.clock.now() + 600_000).toUTCString() } };
      return 204;
    });
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    expect(await svc.runDue()).toBe(1);
    expect((await svc.deliveries(ep.id)).deliveries[0]!.next_attempt_at).toBe(
      new Date(t.clock.now() + 120_000).toISOString(),
    );
    // Another user's event waits too: the endpoint asked for a pause, not just this message.
    await set('bob', 'online');
    t.clock.advance(5000);
    expect(await svc.runDue()).toBe(0);
    mode = 'date';
    t.clock.advance(115_000);
    expect(await svc.runDue()).toBe(2);
    expect(r.received).toHaveLength(3);
    for (const d of (await svc.deliveries(ep.id, { status: 'pending' })).deliveries) {
      // HTTP dates have whole seconds.
      expect(Math.abs(Date.parse(d.next_attempt_at!) - (t.clock.now() + 600_000))).toBeLessThan(1000);
    }
    mode = 'ok';
    t.clock.advance(300_000);
    expect(await svc.runDue()).toBe(0);
    t.clock.advance(301_000);
    expect(await svc.runDue()).toBe(2);
    expect(
      r
        .bodies()
        .slice(-2)
        .map((b) => b.data.user_id)
        .sort(),
    ).toEqual(['alice', 'bob']);
  });

  it('disables an endpoint that has failed for 5 days, and says so to the others', async () => {
    await setup({ retrySchedule: [0, ...Array.from({ length: 40 }, () => 6 * 3_600_000)] });
    const dead = await receiver(() => 500);
    const other = await receiver();
    const a = await svc.createEndpoint({ url: dead.url });
    await svc.createEndpoint({ url: other.url, events: ['webhook.endpoint_disabled'] });
    const start = t.clock.now();
    await set('alice', 'online');
    await svc.runDue();
    expect(svc.getEndpoint(a.id).failing_since).toBe(new Date(start).toISOString());
    for (let i = 0; i < 19; i++) {
      t.clock.advance(6 * 3_600_000);
      await svc.runDue();
    }
    expect(t.clock.now() - start).toBe(114 * 3_600_000);
    expect(svc.getEndpoint(a.id).enabled).toBe(true);
    t.clock.advance(6 * 3_600_000);
    await svc.runDue();
    expect(t.clock.now() - start).toBeGreaterThanOrEqual(5 * DAY);
    expect(svc.getEndpoint(a.id)).toMatchObject({ enabled: false, disabled_reason: 'failing' });
    await svc.runDue();
    expect(other.bodies()).toEqual([
      expect.objectContaining({
        type: 'webhook.endpoint_disabled',
        data: expect.objectContaining({ endpoint_id: a.id, reason: 'failing' }),
      }),
    ]);
  });

  it('a success clears the failure record', async () => {
    await setup();
    const r = await receiver((_req, i) => (i === 0 ? 500 : 204));
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await svc.runDue();
    expect(svc.getEndpoint(ep.id).failing_since).not.toBeNull();
    t.clock.advance(5000);
    await svc.runDue();
    expect(svc.getEndpoint(ep.id).failing_since).toBeNull();
    expect(t.db.prepare('SELECT failing_since FROM webhook_endpoints').pluck().get()).toBeNull();
  });

  it('a hanging endpoint and a dead one do not slow a healthy one', async () => {
    // The hang outlasts the test (no timeout fires), so "not slowed" is shown without a stopwatch:
    // all 50 reach the healthy endpoint while the hanging one still holds its requests.
    await setup({ timeoutMs: 600_000, maxInFlightPerEndpoint: 4, stopGraceMs: 10 });
    const slow = await receiver(() => ({ hang: true }));
    const healthy = await receiver();
    await svc.createEndpoint({ url: slow.url });
    await svc.createEndpoint({ url: 'http://127.0.0.1:1/refused' });
    await svc.createEndpoint({ url: healthy.url });
    svc.start();
    for (let i = 0; i < 50; i++) await set(`user-${i}`, 'online');
    await healthy.waitFor(50);
    // The hanging endpoint holds only its own four slots, still waiting for an answer.
    expect(slow.received.length).toBe(4);
    expect(svc.stats().endpoints).toBe(3);
    expect(svc.stats().in_flight).toBeGreaterThanOrEqual(4);
  });

  it('during a rotation both signatures are sent and each verifies with its own secret', async () => {
    await setup({ rotationWindowMs: 60_000 });
    const r = await receiver();
    const created = await svc.createEndpoint({ url: r.url });
    const rotated = await svc.updateEndpoint(created.id, { rotate_secret: true });
    expect('secret' in rotated && rotated.secret).toMatch(/^whsec_/);
    const fresh = (rotated as { secret: string }).secret;
    expect(fresh).not.toBe(created.secret);
    expect(rotated.previous_secret_expires_at).toBe(new Date(t.clock.now() + 60_000).toISOString());
    expect(svc.getEndpoint(created.id)).not.toHaveProperty('secret');

    await set('alice', 'online');
    await svc.runDue();
    const req = r.received[0]!;
    const sigs = req.headers['webhook-signature']!.split(' ');
    expect(sigs).toHaveLength(2);
    expect(() => new Webhook(fresh).verify(req.body, req.headers)).not.toThrow();
    expect(() => new Webhook(created.secret).verify(req.body, req.headers)).not.toThrow();
    // Each signature is the one of its own secret, the new one first.
    expect(() =>
      new Webhook(fresh).verify(req.body, { ...req.headers, 'webhook-signature': sigs[0]! }),
    ).not.toThrow();
    expect(() =>
      new Webhook(created.secret).verify(req.body, { ...req.headers, 'webhook-signature': sigs[1]! }),
    ).not.toThrow();

    // After the window only the new secret signs.
    t.clock.advance(60_000);
    await set('alice', 'busy');
    await svc.runDue();
    const later = r.received[1]!;
    expect(later.headers['webhook-signature']!.split(' ')).toHaveLength(1);
    expect(() => new Webhook(fresh).verify(later.body, later.headers)).not.toThrow();
    expect(() => new Webhook(created.secret).verify(later.body, later.headers)).toThrow();
    expect(svc.getEndpoint(created.id).previous_secret_expires_at).toBeNull();
  });

  it('does not follow redirects: a 3xx is a failed attempt', async () => {
    await setup();
    const target = await receiver();
    const r = await receiver(() => ({ status: 307, headers: { location: target.url } }));
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await svc.runDue();
    expect(target.received).toHaveLength(0);
    expect((await svc.deliveries(ep.id)).deliveries[0]).toMatchObject({
      status: 'pending',
      last_status_code: 307,
      last_error: 'HTTP 307 Temporary Redirect (redirects are not followed)',
    });
  });

  it('times out a slow answer and retries it', async () => {
    // The first answer never comes; the timeout is long enough that the second, prompt answer
    // beats it however busy the machine is.
    await setup({ timeoutMs: 3000 });
    const r = await receiver((_req, i) => (i === 0 ? { hang: true } : 204));
    const ep = await svc.createEndpoint({ url: r.url });
    await set('alice', 'online');
    await svc.runDue();
    expect((await svc.deliveries(ep.id)).deliveries[0]).toMatchObject({
      status: 'pending',
      last_status_code: null,
      last_error: 'no response within 3000 ms',
    });
    t.clock.advance(5000);
    await svc.runDue();
    expect((await svc.deliveries(ep.id)).deliveries[0]).toMatchObject({
      status: 'delivered',
      attempt_count: 2,
    });
  });
});
