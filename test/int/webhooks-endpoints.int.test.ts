import { join } from 'node:path';

import { FakeClock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import type { Log } from '../../src/core/log';
import { WebhookService, type WebhookServiceOptions } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import { slackActive } from '../helpers/observations';
import { Receiver } from '../helpers/receiver';
import { waitUntil } from '../helpers/wait';
import { testVault } from '../helpers/webhook-vault';

/** A resolver that knows a few names, as DNS would answer them. */
const resolve = (host: string): Promise<string[]> => {
  const table: Record<string, string[]> = {
    'hooks.example.com': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'],
    'internal.example.com': ['10.1.2.3'],
    'sneaky.example.com': ['93.184.216.34', '169.254.169.254'],
  };
  const found = table[host];
  return found === undefined ? Promise.reject(new Error('ENOTFOUND')) : Promise.resolve(found);
};

describe('webhook endpoint management', () => {
  const tmp = tmpDir();
  let n = 0;
  let t: TestEngine;
  let svc: WebhookService;

  async function setup(options: Partial<WebhookServiceOptions> = {}): Promise<void> {
    n += 1;
    await setupOn(await testEngine(join(tmp.dir, `endpoints-${n}.db`), { clock: new FakeClock() }), options);
  }

  async function setupOn(engine: TestEngine, options: Partial<WebhookServiceOptions> = {}): Promise<void> {
    t = engine;
    svc = await WebhookService.open({
      store: t.stores.webhooks,
      vault: testVault,
      engine: t.engine,
      clock: t.clock,
      allowPrivateTargets: false,
      resolve,
      pruneSchedule: null,
      ...options,
    });
  }

  afterEach(async () => {
    await svc.stop();
    t.close();
  });
  afterAll(() => tmp.cleanup());

  /** Alice (created if need be) comes online on Slack: one presence change. */
  async function aliceOnline(): Promise<void> {
    t.engine.ensureUser('alice');
    await t.engine.report('alice', { platform: 'slack', ttlMs: 60_000, state: slackActive() });
  }

  async function rejection(p: Promise<unknown> | (() => unknown)): Promise<AppError> {
    try {
      await (typeof p === 'function' ? p() : p);
    } catch (error) {
      expect(error).toBeInstanceOf(AppError);
      return error as AppError;
    }
    throw new Error('expected an AppError');
  }

  it('creates an endpoint and shows its secret only then', async () => {
    await setup();
    const created = await svc.createEndpoint({
      url: 'https://hooks.example.com/presence?token=abc',
      events: ['presence.changed', 'webhook.endpoint_disabled'],
      user_ids: ['alice', 'bob'],
      coalesce_ms: 2000,
    });
    expect(created).toEqual({
      id: expect.stringMatching(/^ep_[0-9A-Z]{26}$/),
      url: 'https://hooks.example.com/presence?token=abc',
      events: ['presence.changed', 'webhook.endpoint_disabled'],
      user_ids: ['alice', 'bob'],
      coalesce_ms: 2000,
      enabled: true,
      disabled_reason: null,
      disabled_at: null,
      failing_since: null,
      previous_secret_expires_at: null,
      created_at: '2026-11-23T14:00:00.000Z',
      updated_at: '2026-11-23T14:00:00.000Z',
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]+=*$/),
    });
    expect(Buffer.from(created.secret.slice(6), 'base64')).toHaveLength(32);
    const { secret: _secret, ...view } = created;
    expect(svc.getEndpoint(created.id)).toEqual(view);
    expect(svc.listEndpoints()).toEqual([view]);
    expect(JSON.stringify(svc.listEndpoints())).not.toContain(created.secret.slice(6));

    // Defaults: every event type, every user, no coalescing. A fresh secret per endpoint.
    const plain = await svc.createEndpoint({ url: 'http://93.184.216.34/hook' });
    expect(plain).toMatchObject({ events: null, user_ids: null, coalesce_ms: 0 });
    expect(plain.secret).not.toBe(created.secret);
    expect(svc.listEndpoints().map((e) => e.id)).toEqual([created.id, plain.id]);

    // It survives a restart, secrets included (they must sign).
    await svc.stop();
    svc = await WebhookService.open({
      store: t.stores.webhooks,
      vault: testVault,
      clock: t.clock,
      allowPrivateTargets: false,
      pruneSchedule: null,
    });
    expect(svc.getEndpoint(created.id)).toEqual(view);
  });

  it.each([
    ['an unknown field', { url: 'https://hooks.example.com/', colour: 'red' }, /Unrecognized key/],
    ['no url', {}, /url/],
    ['a url that is not a string', { url: 42 }, /url/],
    ['an unknown event type', { url: 'https://hooks.example.com/', events: ['presence.maybe'] }, /events/],
    ['an empty event list', { url: 'https://hooks.example.com/', events: [] }, /events/],
    [
      'a repeated event type',
      { url: 'https://hooks.example.com/', events: ['connector.degraded', 'connector.degraded'] },
      /repeat/,
    ],
    ['a bad user id', { url: 'https://hooks.example.com/', user_ids: ['no spaces'] }, /user_ids/],
    [
      'a coalescing window too long',
      { url: 'https://hooks.example.com/', coalesce_ms: 3_600_000 },
      /coalesce_ms/,
    ],
    ['a negative coalescing window', { url: 'https://hooks.example.com/', coalesce_ms: -1 }, /coalesce_ms/],
    ['a body that is not an object', 'https://hooks.example.com/', /expected object/],
  ])('refuses %s', async (_what, input, message) => {
    await setup();
    const error = await rejection(svc.createEndpoint(input));
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(message);
    expect(error.details.length).toBeGreaterThan(0);
    expect(svc.listEndpoints()).toEqual([]);
  });

  it.each([
    ['ftp://hooks.example.com/', 'ftp://hooks.example.com/', /http or https/],
    ['javascript:alert(1)', 'javascript:alert(1)', /http or https/],
    ['not a url', 'not a url', /not an absolute URL/],
    ['https://user:pw@hooks.example.com/', 'https://user:pw@hooks.example.com/', /credentials/],
    ['http://127.0.0.1:8080/hook', 'http://127.0.0.1:8080/hook', /loopback/],
    ['http://localhost:8080/hook', 'http://localhost:8080/hook', /does not resolve/], // the test resolver knows no localhost
    ['http://[::1]/hook', 'http://[::1]/hook', /loopback/],
    [
      'http://[::ffff:127.0.0.1]/hook',
      'http://[::ffff:127.0.0.1]/hook',
      /loopback address inside an IPv6 address/,
    ],
    ['http://2130706433/hook', 'http://2130706433/hook', /loopback/], // 127.0.0.1 as one number
    ['http://0x7f.1/hook', 'http://0x7f.1/hook', /loopback/],
    ['http://169.254.169.254/latest/meta-data', 'http://169.254.169.254/latest/meta-data', /link-local/],
    ['http://10.0.0.5/hook', 'http://10.0.0.5/hook', /private/],
    ['http://192.168.1.10/hook', 'http://192.168.1.10/hook', /private/],
    ['http://[fd00::1]/hook', 'http://[fd00::1]/hook', /unique local/],
    ['http://[fe80::1]/hook', 'http://[fe80::1]/hook', /link-local/],
    [
      'http://internal.example.com/hook',
      'http://internal.example.com/hook',
      /resolves to 10\.1\.2\.3, a private address/,
    ],
    ['http://sneaky.example.com/hook', 'http://sneaky.example.com/hook', /169\.254\.169\.254/],
    ['http://nowhere.example.com/hook', 'http://nowhere.example.com/hook', /does not resolve/],
    ['a url over 2048 characters', `https://hooks.example.com/${'x'.repeat(2100)}`, /longer than 2048/],
  ])('refuses the target %s', async (_label, url, message) => {
    await setup();
    const error = await rejection(svc.createEndpoint({ url }));
    expect(error.code).toBe('invalid_request');
    expect(error.message).toMatch(message);
    expect(error.details[0]).toMatchObject({ path: ['url'] });
  });

  it('allows loopback and private targets when the operator says so', async () => {
    await setup({ allowPrivateTargets: true });
    await expect(svc.createEndpoint({ url: 'http://127.0.0.1:9/hook' })).resolves.toMatchObject({
      url: 'http://127.0.0.1:9/hook',
    });
    await expect(svc.createEndpoint({ url: 'http://localhost:9/hook' })).resolves.toBeDefined();
    // Still only http(s).
    expect((await rejection(svc.createEndpoint({ url: 'file:///etc/passwd' }))).code).toBe('invalid_request');
  });

  it('updates url and filters, checks the new url, and clears filters with null', async () => {
    await setup();
    const ep = await svc.createEndpoint({ url: 'https://hooks.example.com/a', events: ['presence.changed'] });
    t.clock.advance(1000);
    const updated = await svc.updateEndpoint(ep.id, {
      url: 'https://hooks.example.com/b',
      user_ids: ['carol'],
      coalesce_ms: 500,
    });
    expect(updated).toMatchObject({
      url: 'https://hooks.example.com/b',
      events: ['presence.changed'],
      user_ids: ['carol'],
      coalesce_ms: 500,
      updated_at: '2026-11-23T14:00:01.000Z',
    });
    expect(updated).not.toHaveProperty('secret');
    expect(await svc.updateEndpoint(ep.id, { events: null, user_ids: null })).toMatchObject({
      events: null,
      user_ids: null,
    });
    expect((await rejection(svc.updateEndpoint(ep.id, { url: 'http://10.0.0.1/' }))).message).toMatch(
      /private/,
    );
    expect((await rejection(svc.updateEndpoint(ep.id, { secret: 'whsec_x' }))).code).toBe('invalid_request');
    expect((await rejection(svc.updateEndpoint(ep.id, { enabled: 'yes' }))).code).toBe('invalid_request');
    expect(svc.getEndpoint(ep.id).url).toBe('https://hooks.example.com/b');
    expect((await rejection(svc.updateEndpoint('ep_missing', {}))).code).toBe('not_found');
  });

  it('rotates the secret, keeping the old one for the rotation window', async () => {
    await setup({ rotationWindowMs: 3_600_000 });
    const ep = await svc.createEndpoint({ url: 'https://hooks.example.com/' });
    const rotated = (await svc.updateEndpoint(ep.id, { rotate_secret: true })) as { secret: string };
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(ep.secret);
    expect(svc.getEndpoint(ep.id).previous_secret_expires_at).toBe('2026-11-23T15:00:00.000Z');
    // Both stored sealed, each bound to its column.
    const row = t.db.prepare('SELECT secret, previous_secret FROM webhook_endpoints').get() as {
      secret: string;
      previous_secret: string;
    };
    expect(row.secret).toMatch(/^v1\./);
    expect(testVault.open(row.secret, `webhook_endpoints:${ep.id}:secret`)).toBe(rotated.secret);
    expect(testVault.open(row.previous_secret, `webhook_endpoints:${ep.id}:previous_secret`)).toBe(ep.secret);
    t.clock.advance(3_600_000);
    expect(svc.getEndpoint(ep.id).previous_secret_expires_at).toBeNull();
  });

  it('disables by hand without telling other endpoints, and deletes', async () => {
    await setup();
    const a = await svc.createEndpoint({ url: 'https://hooks.example.com/a' });
    const b = await svc.createEndpoint({ url: 'https://hooks.example.com/b' });
    expect(await svc.updateEndpoint(a.id, { enabled: false })).toMatchObject({
      enabled: false,
      disabled_reason: 'manual',
      disabled_at: '2026-11-23T14:00:00.000Z',
    });
    expect(t.db.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(0);
    await aliceOnline();
    // Only the enabled endpoint gets a delivery row.
    expect(t.db.prepare('SELECT endpoint_id FROM webhook_deliveries').pluck().all()).toEqual([b.id]);

    await svc.deleteEndpoint(b.id);
    expect((await rejection(() => svc.getEndpoint(b.id))).code).toBe('not_found');
    expect((await rejection(svc.deleteEndpoint(b.id))).code).toBe('not_found');
    expect(t.db.prepare('SELECT count(*) FROM webhook_deliveries').pluck().get()).toBe(0);
    expect(svc.listEndpoints().map((e) => e.id)).toEqual([a.id]);
  });

  it('caps the number of endpoints', async () => {
    await setup({ maxEndpoints: 2 });
    await svc.createEndpoint({ url: 'https://hooks.example.com/1' });
    await svc.createEndpoint({ url: 'https://hooks.example.com/2' });
    expect((await rejection(svc.createEndpoint({ url: 'https://hooks.example.com/3' }))).code).toBe(
      'conflict',
    );
  });

  it('writes nothing to the outbox when no endpoint exists', async () => {
    await setup();
    await aliceOnline();
    expect(t.db.prepare('SELECT count(*) FROM webhook_events').pluck().get()).toBe(0);
    expect(await svc.emit('connector.degraded', { platform: 'slack' })).toBeNull();
  });

  it('refuses at connect time a name that now resolves to a private address (DNS rebinding)', async () => {
    const r = await Receiver.start();
    try {
      // At creation the name looked public; the real resolver now says 127.0.0.1.
      await setup({ resolve: () => Promise.resolve(['93.184.216.34']) });
      const port = new URL(r.url).port;
      const ep = await svc.createEndpoint({ url: `http://localhost:${port}/hook` });
      await aliceOnline();
      await svc.runDue();
      expect(r.received).toHaveLength(0);
      expect((await svc.deliveries(ep.id)).deliveries[0]).toMatchObject({
        status: 'pending',
        last_status_code: null,
      });
      expect((await svc.deliveries(ep.id)).deliveries[0]!.last_error).toMatch(
        /EPRIVATETARGET.*127\.0\.0\.1.*refused/,
      );
    } finally {
      await r.close();
    }
  });

  it('an endpoint saved while private targets were allowed is refused at send time and on re-enable once they are not', async () => {
    const r = await Receiver.start();
    try {
      await setup({ allowPrivateTargets: true });
      const literal = await svc.createEndpoint({ url: r.url }); // http://127.0.0.1:<port>/hook
      const v6 = await svc.createEndpoint({ url: `http://[::1]:${new URL(r.url).port}/hook` });
      await svc.updateEndpoint(v6.id, { enabled: false });
      // Restarted without WEBHOOK_ALLOW_PRIVATE_TARGETS.
      await svc.stop();
      const before = t;
      t = await before.reopen();
      before.close();
      const warnings: string[] = [];
      const log: Log = {
        debug: () => undefined,
        info: () => undefined,
        warn: (o, m) => warnings.push(`${m} ${JSON.stringify(o)}`),
        error: () => undefined,
      };
      await setupOn(t, { allowPrivateTargets: false, log });
      expect(warnings).toEqual([
        expect.stringMatching(new RegExp(`private address.*${literal.id}.*loopback`)),
      ]);
      await aliceOnline();
      expect(await svc.runDue()).toBe(1);
      t.clock.advance(10_000); // the first retry is due: refused again
      expect(await svc.runDue()).toBe(1);
      expect(r.received).toHaveLength(0);
      const [delivery] = (await svc.deliveries(literal.id)).deliveries;
      expect(delivery).toMatchObject({ status: 'pending', attempt_count: 2, last_status_code: null });
      expect(delivery!.last_error).toMatch(
        /^EPRIVATETARGET: refused before sending: the url points at a loopback address; set WEBHOOK_ALLOW_PRIVATE_TARGETS=true/,
      );

      // PATCH {"enabled":true} checks the stored URL again, under today's setting.
      for (const ep of [literal, v6]) {
        if (ep === literal) await svc.updateEndpoint(ep.id, { enabled: false });
        const error = await rejection(svc.updateEndpoint(ep.id, { enabled: true }));
        expect(error.code).toBe('invalid_request');
        expect(error.message).toMatch(/loopback/);
        expect(svc.getEndpoint(ep.id)).toMatchObject({ enabled: false, disabled_reason: 'manual' });
      }
      // A change that leaves it off needs no check.
      expect(await svc.updateEndpoint(v6.id, { coalesce_ms: 100 })).toMatchObject({ coalesce_ms: 100 });
    } finally {
      await r.close();
    }
  });

  it('never logs a secret', async () => {
    const lines: string[] = [];
    const log: Log = {
      debug: (o, m) => lines.push(JSON.stringify([o, m])),
      info: (o, m) => lines.push(JSON.stringify([o, m])),
      warn: (o, m) => lines.push(JSON.stringify([o, m])),
      error: (o, m) => lines.push(JSON.stringify([o, m])),
    };
    await setup({ log });
    const ep = await svc.createEndpoint({ url: 'https://hooks.example.com/?token=s3cr3t' });
    const rotated = (await svc.updateEndpoint(ep.id, { rotate_secret: true })) as { secret: string };
    await svc.updateEndpoint(ep.id, { enabled: false });
    await svc.deleteEndpoint(ep.id);
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const line of lines) {
      expect(line).not.toContain(ep.secret.slice(6));
      expect(line).not.toContain(rotated.secret.slice(6));
      expect(line).not.toContain('s3cr3t');
    }
  });

  it('prunes on its node-cron schedule once started, and stops cleanly', async () => {
    await setup({ pruneSchedule: '* * * * * *', retentionMs: 0 });
    const pruned = jest.spyOn(svc, 'prune');
    svc.start();
    await waitUntil(() => pruned.mock.calls.length > 0, 'a scheduled prune');
    expect(pruned).toHaveBeenCalled();
    await svc.stop();
  });

  it('refuses a bad prune schedule or retry schedule at construction', async () => {
    await setup();
    await expect(
      WebhookService.open({
        store: t.stores.webhooks,
        vault: testVault,
        clock: t.clock,
        allowPrivateTargets: false,
        pruneSchedule: 'often',
      }),
    ).rejects.toThrow(/cron/);
    await expect(
      WebhookService.open({
        store: t.stores.webhooks,
        vault: testVault,
        clock: t.clock,
        allowPrivateTargets: false,
        retrySchedule: [],
      }),
    ).rejects.toThrow(/retry schedule/);
  });
});
