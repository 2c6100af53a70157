/**
 * @module test/int/oauth-lifecycle
 * Token lifecycle on a FakeClock: the sweep (what node-cron runs every minute), app grants
 * fetched ahead of expiry (Zoom Server-to-Server, Microsoft client credentials), the cool-down
 * schedule, LinkedIn's expiry warning, health transitions and their events, and logs free of
 * secrets. Loopback fakes only; no real sleeping beyond milliseconds.
 */

import cron, { type ScheduledTask } from 'node-cron';

import { AppError } from '../../src/core/errors';
import {
  REFRESH_COOLDOWN_MS,
  REFRESH_MARGIN_MS,
  SWEEP_CRON,
  SWEEP_LOOKAHEAD_MS,
} from '../../src/oauth/token-manager';
import { oauthHarness, TEST_SECRET_KEY, type OAuthHarness } from '../helpers/fake-oauth';
import { tmpDir } from '../helpers/engine';

const DAY_MS = 24 * 3600_000;

describe('OAuth token lifecycle', () => {
  const tmp = tmpDir();
  const open: OAuthHarness[] = [];
  const harness = async (...args: Parameters<typeof oauthHarness>): Promise<OAuthHarness> => {
    const h = await oauthHarness(...args);
    open.push(h);
    return h;
  };
  afterEach(async () => {
    for (const h of open.splice(0)) await h.close();
  });
  afterAll(() => tmp.cleanup());

  describe('Zoom Server-to-Server (account_credentials)', () => {
    it('connects the app, then fetches a new 1-hour token ahead of expiry, never a refresh', async () => {
      const h = await harness({ flavor: 'zoom', dir: tmp.dir, env: { ZOOM_ACCOUNT_ID: 'acct-42' } });
      const view = await h.service.connectApp('zoom');
      expect(view).toMatchObject({
        kind: 'app',
        user_id: null,
        external_id: 'acct-42',
        workspace_id: 'acct-42',
        health: 'ok',
        refreshable: true,
        expires_at: new Date(h.clock.now() + 3599_000).toISOString(),
      });
      const [grant] = h.fake.callsTo('token', 'account_credentials');
      expect(grant).toMatchObject({
        clientAuth: 'basic',
        body: expect.objectContaining({ account_id: 'acct-42' }),
      });
      expect(h.rows('SELECT refresh_token FROM connections')).toEqual([{ refresh_token: null }]);

      // Far from expiry: the sweep leaves it alone.
      h.clock.advance(30 * 60_000);
      expect(await h.service.sweep()).toMatchObject({ refreshed: 0 });
      // Within margin + look-ahead of the hour: a new token, before anyone needed it.
      h.clock.set(Date.parse(view.expires_at ?? '') - REFRESH_MARGIN_MS - SWEEP_LOOKAHEAD_MS + 1000);
      expect(await h.service.sweep()).toMatchObject({ refreshed: 1, failed: 0 });
      expect(h.fake.callsTo('token', 'account_credentials')).toHaveLength(2);
      expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(0);
      const token = await h.service.getAccessToken(view.id);
      expect(token).toBe(h.fake.issued.access[1]);
      expect(h.fake.callsTo('token')).toHaveLength(2);
      // Without the sweep, getAccessToken itself fetches one inside the margin.
      h.clock.advance(3599_000 - REFRESH_MARGIN_MS + 1000);
      const next = await h.service.getAccessToken(view.id);
      expect(next).toBe(h.fake.issued.access[2]);
      // Connecting again reuses the connection.
      expect((await h.service.connectApp('zoom')).id).toBe(view.id);
      expect(await h.service.list()).toHaveLength(1);
      // The app token is revoked on delete, like a user token.
      const gone = await h.service.deleteConnection(view.id);
      expect(gone).toMatchObject({ revoked_at_platform: true });
      expect(h.fake.callsTo('revoke')[0]?.query.token).toBe(h.fake.issued.access[3]);
    });

    it('needs ZOOM_ACCOUNT_ID', async () => {
      const h = await harness({ flavor: 'zoom', dir: tmp.dir });
      await expect(h.service.connectApp('zoom')).rejects.toThrow(/ZOOM_ACCOUNT_ID/);
      await expect(h.service.connectApp('discord')).rejects.toMatchObject({ code: 'invalid_request' });
      expect(h.service.platforms().find((p) => p.platform === 'zoom')).toEqual({
        platform: 'zoom',
        configured: true,
        pkce: true,
        app_grant: false,
      });
    });

    it('a failing app grant goes to error and is retried after the cool-down', async () => {
      const h = await harness({ flavor: 'zoom', dir: tmp.dir, env: { ZOOM_ACCOUNT_ID: 'acct-42' } });
      const view = await h.service.connectApp('zoom');
      h.fake.fail('token', { kind: 'status', status: 500 }, 1, 'account_credentials');
      h.clock.advance(3599_000 - REFRESH_MARGIN_MS);
      expect(await h.service.sweep()).toMatchObject({ refreshed: 0, failed: 1 });
      expect(await h.service.get(view.id)).toMatchObject({ health: 'error' });
      h.clock.advance(REFRESH_COOLDOWN_MS[0] ?? 0);
      expect(await h.service.sweep()).toMatchObject({ refreshed: 1 });
      expect(await h.service.get(view.id)).toMatchObject({ health: 'ok' });
    });
  });

  it('Microsoft client credentials: the Graph .default scope for the configured tenant', async () => {
    const tenant = '0b1c2d3e-0000-4000-8000-000000000abc';
    const h = await harness({ flavor: 'microsoft', dir: tmp.dir, env: { MS_TENANT_ID: tenant } });
    const view = await h.service.connectApp('teams');
    expect(view).toMatchObject({ kind: 'app', external_id: tenant, health: 'ok' });
    const [grant] = h.fake.callsTo('token', 'client_credentials');
    expect(grant).toMatchObject({
      path: `/${tenant}/oauth2/v2.0/token`,
      clientAuth: 'body',
      body: expect.objectContaining({ scope: `${h.fake.url}/.default` }),
    });
    const without = await harness({ flavor: 'microsoft', dir: tmp.dir });
    await expect(without.service.connectApp('teams')).rejects.toThrow(/MS_TENANT_ID/);
  });

  it('the sweep refreshes user connections before their margin, and only those', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    h.addUser('bob');
    const a = await h.connect('alice');
    h.clock.advance(DAY_MS);
    h.fake.user = { id: 'U0FAKE2' };
    const b = await h.connect('bob');
    h.clock.set(Date.parse(a.expires_at ?? '') - REFRESH_MARGIN_MS - SWEEP_LOOKAHEAD_MS + 1);
    expect(await h.service.sweep()).toMatchObject({ refreshed: 1, failed: 0 });
    expect((await h.service.get(a.id)).refreshed_at).toBe(new Date(h.clock.now()).toISOString());
    expect((await h.service.get(b.id)).refreshed_at).toBe(b.created_at);
    // a's new token is not due again for a week.
    expect(await h.service.sweep()).toMatchObject({ refreshed: 0 });
  });

  it('cool-downs grow with consecutive failures, honour Retry-After, and reset on success', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    const view = await h.connect();
    const due = Date.parse(view.expires_at ?? '') - REFRESH_MARGIN_MS;
    h.clock.set(due);
    h.fake.fail('token', { kind: 'status', status: 503 }, 2, 'refresh_token');
    h.fake.fail('token', { kind: 'status', status: 429, retryAfter: 600 }, 1, 'refresh_token');
    const retries: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      expect(await h.service.sweep()).toMatchObject({ failed: 1 });
      const v = await h.service.get(view.id);
      expect(v.health).toBe('error');
      retries.push(v.next_retry_at);
      // Before the cool-down ends the sweep does not call the platform.
      const calls = h.fake.callsTo('token', 'refresh_token').length;
      h.clock.advance(1000);
      expect(await h.service.sweep()).toMatchObject({ refreshed: 0, failed: 0 });
      expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(calls);
      if (i < 2) h.clock.set(Date.parse(v.next_retry_at ?? ''));
    }
    const gaps = [
      Date.parse(retries[0] ?? '') - due,
      Date.parse(retries[1] ?? '') - Date.parse(retries[0] ?? ''),
      Date.parse(retries[2] ?? '') - Date.parse(retries[1] ?? ''),
    ];
    // 30 s, then 1 min, then the platform's Retry-After (10 min) over the 2-minute step.
    expect(gaps).toEqual([30_000, 60_000, 600_000]);
    // The access token expired during the 10 minutes: callers learn when to come back.
    h.clock.set(Date.parse(retries[2] ?? '') - 5000);
    expect(h.clock.now()).toBeGreaterThan(Date.parse(view.expires_at ?? ''));
    const e = (await h.service.getAccessToken(view.id).catch((x: unknown) => x)) as AppError;
    expect(e).toBeInstanceOf(AppError);
    expect(e).toMatchObject({
      code: 'platform_error',
      details: [expect.objectContaining({ code: 'unavailable' })],
    });
    expect(e.headers).toEqual({ 'Retry-After': '5' });
    // The platform is back: the attempt after the cool-down succeeds.
    h.clock.advance(5000);
    expect(await h.service.sweep()).toMatchObject({ refreshed: 1 });
    expect(await h.service.get(view.id)).toMatchObject({
      health: 'ok',
      last_error: null,
      next_retry_at: null,
    });
    expect(h.events).toEqual([]);
    expect(h.logs.some((l) => l.level === 'info' && l.msg === 'connection recovered')).toBe(true);
  });

  it('LinkedIn: warns 7 days before the 60-day grant ends, once, then needs re-authorization', async () => {
    const h = await harness({ flavor: 'linkedin', dir: tmp.dir });
    const view = await h.connect();
    expect(view).toMatchObject({ refreshable: false, expires_soon: false });
    expect(view.grant_expires_at).toBe(view.expires_at);
    const end = Date.parse(view.expires_at ?? '');
    expect(end - h.clock.now()).toBe(60 * DAY_MS);

    h.clock.set(end - 7 * DAY_MS - 60_000);
    expect(await h.service.sweep()).toMatchObject({ warned: 0 });
    expect((await h.service.get(view.id)).expires_soon).toBe(false);

    h.clock.set(end - 7 * DAY_MS);
    expect(await h.service.sweep()).toMatchObject({ warned: 1 });
    const warnings = h.logs.filter((l) => l.level === 'warn' && /expires soon/.test(l.msg));
    expect(warnings).toEqual([
      {
        level: 'warn',
        obj: expect.objectContaining({
          connection_id: view.id,
          user_id: 'alice',
          expires_at: view.expires_at,
        }),
        msg: expect.stringMatching(/LinkedIn connection expires soon/),
      },
    ]);
    expect(await h.service.get(view.id)).toMatchObject({ health: 'ok', expires_soon: true });
    h.clock.advance(DAY_MS);
    expect(await h.service.sweep()).toMatchObject({ warned: 0 });
    // Still usable until the end.
    h.clock.set(end - 1);
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    h.clock.set(end);
    expect(await h.service.sweep()).toMatchObject({ expired: 1 });
    expect(await h.service.get(view.id)).toMatchObject({ health: 'reauth_required', expires_soon: false });
    expect(h.events).toEqual([
      {
        type: 'connection.reauth_required',
        data: expect.objectContaining({
          connection_id: view.id,
          reason: expect.stringMatching(/must connect again/),
        }),
      },
    ]);
    // Reconnecting renews the 60 days and the warning.
    const again = await h.connect();
    expect(again).toMatchObject({ id: view.id, health: 'ok', expires_soon: false });
    expect(h.rows('SELECT expiry_warned_at FROM connections')).toEqual([{ expiry_warned_at: null }]);
  });

  it('LinkedIn partners: the warning follows the refresh token’s own end', async () => {
    const h = await harness({
      flavor: 'linkedin',
      dir: tmp.dir,
      fake: { refreshTokens: true, rotateRefreshTokens: false, refreshTtlSec: 365 * 24 * 3600 },
    });
    const view = await h.connect();
    expect(view.refreshable).toBe(true);
    const grantEnd = Date.parse(view.grant_expires_at ?? '');
    expect(grantEnd - h.clock.now()).toBe(365 * DAY_MS);
    // Refreshed through the year (the same refresh token each time, its end never extended).
    for (;;) {
      const due = Date.parse((await h.service.get(view.id)).expires_at ?? '') - REFRESH_MARGIN_MS + 1000;
      if (due >= grantEnd - 8 * DAY_MS) break;
      h.clock.set(due);
      await h.service.getAccessToken(view.id);
    }
    const refreshes = h.fake.callsTo('token', 'refresh_token').map((c) => c.body.refresh_token);
    expect(refreshes).toEqual(Array(5).fill(h.fake.issued.refresh[0]));
    expect((await h.service.get(view.id)).grant_expires_at).toBe(view.grant_expires_at);
    h.clock.set(grantEnd - 8 * DAY_MS);
    expect(await h.service.sweep()).toMatchObject({ warned: 0 });
    h.clock.set(grantEnd - 6 * DAY_MS);
    expect(await h.service.sweep()).toMatchObject({ warned: 1 });
    expect(await h.service.get(view.id)).toMatchObject({ expires_soon: true, refreshable: true });
    // Past the refresh token's end nothing can refresh, and the last access token is spent too.
    h.clock.set(grantEnd + 1);
    const last = await h.service.get(view.id);
    expect(last).toMatchObject({ refreshable: false });
    expect(Date.parse(last.expires_at ?? '')).toBeLessThan(h.clock.now());
    await expect(h.service.getAccessToken(view.id)).rejects.toMatchObject({ code: 'forbidden' });
    expect((await h.service.get(view.id)).health).toBe('reauth_required');
    expect(h.events.map((e) => e.type)).toEqual(['connection.reauth_required']);
  });

  it('shows `refreshing` while a refresh is in flight, and a delete waits for it', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    const view = await h.connect();
    h.fake.fail('token', { kind: 'slow', delayMs: 150 }, 1, 'refresh_token');
    h.clock.advance(7 * DAY_MS - REFRESH_MARGIN_MS);
    const pending = h.service.getAccessToken(view.id);
    expect((await h.service.get(view.id)).health).toBe('refreshing');
    expect((await h.service.list())[0]?.health).toBe('refreshing');
    const deleted = h.service.deleteConnection(view.id);
    const token = await pending;
    expect(token).toBe(h.fake.issued.access[1]);
    // The revoke used the refreshed tokens, not the replaced ones.
    await expect(deleted).resolves.toMatchObject({ revoked_at_platform: true });
    expect(h.fake.callsTo('revoke').map((c) => c.body.token)).toEqual([
      h.fake.issued.access[1],
      h.fake.issued.refresh[1],
    ]);
  });

  it('Slack `token_revoked` on refresh → revoked, with one connection.revoked event', async () => {
    const h = await harness({ flavor: 'slack', dir: tmp.dir });
    const view = await h.connect();
    h.fake.fail('token', { kind: 'revoked' }, 1, 'refresh_token');
    h.clock.advance(12 * 3600_000 - REFRESH_MARGIN_MS);
    await expect(h.service.getAccessToken(view.id)).rejects.toMatchObject({
      code: 'forbidden',
      details: [expect.objectContaining({ code: 'revoked' })],
    });
    expect(await h.service.get(view.id)).toMatchObject({
      health: 'revoked',
      last_error: expect.stringMatching(/token_revoked/),
    });
    expect(h.events.map((e) => e.type)).toEqual(['connection.revoked']);
    // Deleting it afterwards announces nothing new.
    await h.service.deleteConnection(view.id);
    expect(h.events.map((e) => e.type)).toEqual(['connection.revoked']);
  });

  it('Slack without token rotation: no expiry, no refresh, ever', async () => {
    const h = await harness({
      flavor: 'slack',
      dir: tmp.dir,
      fake: { accessTtlSec: null, refreshTokens: false },
    });
    const view = await h.connect();
    expect(view).toMatchObject({
      expires_at: null,
      refreshable: false,
      grant_expires_at: null,
      expires_soon: false,
    });
    h.clock.advance(400 * DAY_MS);
    await expect(h.service.getAccessToken(view.id)).resolves.toBe(h.fake.issued.access[0]);
    expect(await h.service.sweep()).toMatchObject({ refreshed: 0, expired: 0 });
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(0);
  });

  it('markRevoked / markReauthRequired (for connectors and inbound handlers) emit once per transition', async () => {
    const h = await harness({ flavor: 'zoom', dir: tmp.dir });
    const view = await h.connect();
    await h.service.markReauthRequired(view.id, 'zoom API answered 401');
    await h.service.markReauthRequired(view.id, 'zoom API answered 401 again');
    await h.service.markRevoked(view.id, 'app deauthorized');
    expect(h.events.map((e) => [e.type, e.data.reason])).toEqual([
      ['connection.reauth_required', 'zoom API answered 401'],
      ['connection.revoked', 'app deauthorized'],
    ]);
    expect(h.events[1]?.data).toEqual({
      connection_id: view.id,
      platform: 'zoom',
      kind: 'user',
      user_id: 'alice',
      external_id: view.external_id,
      workspace_id: null,
      reason: 'app deauthorized',
      at: new Date(h.clock.now()).toISOString(),
    });
    await expect(h.service.getAccessToken(view.id)).rejects.toMatchObject({ details: [{ code: 'revoked' }] });
    await expect(h.service.markRevoked('con_nope', 'x')).rejects.toThrow(
      expect.objectContaining({ code: 'not_found' }) as Error,
    );
  });

  it('an onEvent that throws rolls the transition back', async () => {
    let fail = true;
    const h = await harness({
      flavor: 'discord',
      dir: tmp.dir,
      service: {
        onEvent: () => {
          if (fail) throw new Error('outbox unavailable');
        },
      },
    });
    const view = await h.connect();
    await expect(h.service.markRevoked(view.id, 'x')).rejects.toThrow('outbox unavailable');
    expect((await h.service.get(view.id)).health).toBe('ok');
    fail = false;
    await h.service.markRevoked(view.id, 'x');
    expect((await h.service.get(view.id)).health).toBe('revoked');
  });

  it('deleting a user removes their connections (foreign key cascade); deleteConnectionsOfUser revokes first', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    h.addUser('bob');
    await h.connect('alice');
    h.fake.user = { id: 'U0FAKE2' };
    const bobs = await h.connect('bob');
    expect(await h.service.list()).toHaveLength(2);
    h.db.prepare('DELETE FROM users WHERE user_id = ?').run('alice');
    expect((await h.service.list()).map((v) => v.user_id)).toEqual(['bob']);
    const results = await h.service.deleteConnectionsOfUser('bob');
    expect(results).toEqual([expect.objectContaining({ id: bobs.id, revoked_at_platform: true })]);
    expect(await h.service.list()).toEqual([]);
  });

  it('start() schedules the sweep on node-cron and stop() ends it', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    const sweeps = (): ScheduledTask[] =>
      [...cron.getTasks().values()].filter((t) => t.name === 'oauth-token-sweep');
    expect(sweeps()).toHaveLength(0);
    h.service.start();
    h.service.start(); // a second start schedules nothing more
    const [task, ...more] = sweeps();
    expect(more).toHaveLength(0);
    expect(task!.getPattern()).toBe(SWEEP_CRON);
    expect(task!.getStatus()).not.toMatch(/stopped|destroyed/);
    // Every minute: the next run is at most a minute away (node-cron's own real clock).
    expect(task!.msToNext()).toBeLessThanOrEqual(60_000);

    // What the task runs is the sweep: a connection inside the refresh window gets refreshed.
    const view = await h.connect();
    h.clock.set(Date.parse(view.expires_at ?? '') - REFRESH_MARGIN_MS - SWEEP_LOOKAHEAD_MS + 1);
    const grants = h.fake.callsTo('token', 'refresh_token').length;
    await task!.execute();
    expect(h.fake.callsTo('token', 'refresh_token')).toHaveLength(grants + 1);
    expect((await h.service.get(view.id)).refreshed_at).toBe(new Date(h.clock.now()).toISOString());

    await h.service.stop();
    expect(sweeps()).toHaveLength(0);
    expect(task!.getStatus()).toBe('destroyed');
    await h.service.stop(); // a second stop is harmless
    expect(sweeps()).toHaveLength(0);
  });

  it('never logs or returns a token or the client secret', async () => {
    const h = await harness({ flavor: 'discord', dir: tmp.dir });
    const view = await h.connect();
    h.fake.fail('token', { kind: 'status', status: 500 }, 1, 'refresh_token');
    h.clock.advance(7 * DAY_MS - REFRESH_MARGIN_MS);
    await h.service.getAccessToken(view.id).catch(() => undefined);
    h.clock.advance(60_000);
    await h.service.getAccessToken(view.id);
    h.fake.invalidateRefreshTokens();
    h.clock.advance(7 * DAY_MS);
    await h.service.getAccessToken(view.id).catch(() => undefined);
    h.fake.fail('revoke', { kind: 'status', status: 500 }, 2);
    const deleted = await h.service.deleteConnection(view.id);
    const shown = JSON.stringify([h.logs, h.events, await h.service.list(), deleted, view]);
    const secrets = [...h.fake.issued.access, ...h.fake.issued.refresh, h.fake.clientSecret, TEST_SECRET_KEY];
    expect(secrets.length).toBeGreaterThan(4);
    for (const s of secrets) expect(shown).not.toContain(s);
    expect(h.logs.length).toBeGreaterThan(3);
  });
});
