/**
 * The Teams connector's polling against the fake Graph and token endpoint, through the real
 * Graph SDK and simple-oauth2: batching, the per-tenant limiter, 429 Retry-After, 5xx backoff,
 * refused tokens, and unknown values.
 */

import { TeamsConnector, type TeamsConnectorOptions } from '../../connectors/teams/connector';
import { FakeClock } from '../../src/core/clock';
import type { ConnectorContext, ConnectorReport } from '../../src/core/connector';
import type { Log } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import { aadId, fakeGraphAppToken, startFakeGraph, type FakeGraph } from '../helpers/fake-graph';
import { waitUntil } from '../helpers/wait';

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT_ID = 'c0ffee00-0000-4000-8000-000000000001';
const CLIENT_SECRET = 'client-secret-value-that-must-never-be-logged';

interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  obj: object;
  msg: string;
}

interface Rig {
  clock: FakeClock;
  graph: FakeGraph;
  connector: TeamsConnector;
  reports: ConnectorReport[];
  logs: LogLine[];
  accounts: AccountRef[];
}

const rigs: Rig[] = [];

async function rig(users: number, options: Partial<TeamsConnectorOptions> = {}): Promise<Rig> {
  const clock = new FakeClock();
  const graph = await startFakeGraph({
    clock,
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
  });
  const accounts: AccountRef[] = [];
  for (let i = 0; i < users; i++) {
    accounts.push({ platform: 'teams', externalId: aadId(i), workspaceId: TENANT });
    graph.setPresence(aadId(i), 'Available', 'Available');
  }
  const reports: ConnectorReport[] = [];
  const logs: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg = ''): void => {
      logs.push({ level, obj, msg });
    };
  const log: Log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
  const ctx: ConnectorContext = {
    clock,
    log,
    report: (r) => {
      reports.push(r);
      return Promise.resolve(true);
    },
    accounts: () => accounts,
  };
  const connector = new TeamsConnector({
    tenantId: TENANT,
    graphUrl: graph.url,
    appToken: fakeGraphAppToken(graph, {
      tenantId: TENANT,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      clock,
    }),
    clock,
    timers: false,
    random: () => 0,
    ...options,
  });
  await connector.start(ctx);
  const r = { clock, graph, connector, reports, logs, accounts };
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.connector.stop();
    await r.graph.close();
  }
});

/** Nothing a log line or health message holds may contain a secret or a token. */
function expectNoSecrets(r: Rig): void {
  const text = JSON.stringify(r.logs) + JSON.stringify(r.connector.health());
  expect(text).not.toContain(CLIENT_SECRET);
  expect(text).not.toMatch(/app-[0-9a-f]{32}/);
}

describe('Teams polling', () => {
  it('polls 1,300 linked users in two getPresencesByUserId calls of 650, with the issued app token', async () => {
    const r = await rig(1300);
    await r.connector.tick();

    expect(r.graph.presenceBatches().map((b) => b.length)).toEqual([650, 650]);
    expect(new Set(r.graph.presenceBatches().flat()).size).toBe(1300);
    expect(r.reports).toHaveLength(1300);
    expect(r.reports[0]).toMatchObject({
      account: { platform: 'teams', workspaceId: TENANT },
      presence: {
        state: { status: 'online', source: 'app', raw: { availability: 'Available', activity: 'Available' } },
      },
      // The TTL follows the poll interval: two intervals and a minute.
      ttlMs: 180_000,
    });
    // The real SDK sent `Authorization: Bearer <the token the fake issued>` on every call.
    expect(r.graph.allCallsAuthenticated()).toBe(true);
    expect(r.graph.tokenRequests).toEqual([
      {
        grant_type: 'client_credentials',
        scope: 'https://graph.microsoft.com/.default',
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
      },
    ]);
    expect(r.connector.health()).toMatchObject({
      state: 'ok',
      lastSuccessAt: r.clock.now(),
      nextPollAt: r.clock.now() + 60_000,
    });

    // Not due yet: nothing; due: one more cycle, with the cached token.
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    r.clock.advance(60_000);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(4);
    expect(r.graph.tokenRequests).toHaveLength(1);
  });

  it('maps Busy/InAMeeting and keeps the raw value', async () => {
    const r = await rig(1);
    r.graph.setPresence(aadId(0), 'Busy', 'InAMeeting');
    await r.connector.tick();
    expect(r.reports[0]!.presence.state).toMatchObject({
      status: 'busy',
      activity: 'in_meeting',
      raw: { availability: 'Busy', activity: 'InAMeeting' },
    });
  });

  it('stays within the per-tenant budget, spreading the batches over windows', async () => {
    // 5 batches with a budget of 2 calls per 30 s.
    const r = await rig(650 * 4 + 10, { rateLimit: { calls: 2, windowMs: 30_000 } });
    const t0 = r.clock.now();
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    expect(r.connector.health().nextPollAt).toBe(t0 + 30_000);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    r.clock.advance(29_999);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    r.clock.advance(1);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(4);
    r.clock.advance(30_000);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(5);
    expect(r.reports).toHaveLength(650 * 4 + 10);
    // No 30-second window ever held more than 2 calls.
    const times = r.graph.calls.filter((c) => c.op === 'presences').map((c) => c.at);
    for (const t of times)
      expect(times.filter((u) => u > t - 30_000 && u <= t).length).toBeLessThanOrEqual(2);
  });

  it('honours Retry-After on 429, then recovers', async () => {
    const r = await rig(3);
    const t0 = r.clock.now();
    r.graph.fail('presences', { status: 429, retryAfter: '7' });
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(1);
    expect(r.reports).toHaveLength(0);
    const h = r.connector.health();
    expect(h.state).toBe('degraded');
    expect(h.lastError).toMatch(/429/);
    expect(h.nextPollAt).toBe(t0 + 7_000);

    r.clock.advance(6_999);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(1);
    r.clock.advance(1);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    expect(r.reports).toHaveLength(3);
    expect(r.connector.health().state).toBe('ok');
  });

  it('reads Retry-After even from a bare 429 without a Graph error body (a proxy)', async () => {
    const r = await rig(1);
    const t0 = r.clock.now();
    r.graph.fail('presences', { status: 429, retryAfter: '3', graphBody: false });
    await r.connector.tick();
    expect(r.connector.health().nextPollAt).toBe(t0 + 3_000);
  });

  it('backs off on 5xx (5 s, then 15 s) and recovers', async () => {
    const r = await rig(2);
    r.graph.fail('presences', { status: 503 }, 2);
    await r.connector.tick();
    expect(r.connector.health()).toMatchObject({ state: 'degraded', lastSuccessAt: null });
    expect(r.connector.health().lastError).toMatch(/503/);

    r.clock.advance(4_999);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(1);
    r.clock.advance(1);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);

    r.clock.advance(14_999);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(2);
    r.clock.advance(1);
    await r.connector.tick();
    expect(r.graph.count('presences')).toBe(3);
    expect(r.reports).toHaveLength(2);
    expect(r.connector.health()).toMatchObject({ state: 'ok', lastSuccessAt: r.clock.now() });
  });

  it('takes a fresh app token after a 401 and carries on', async () => {
    const r = await rig(1);
    await r.connector.tick();
    r.graph.revokeAppTokens();
    r.clock.advance(60_000);
    await r.connector.tick();
    expect(r.graph.tokenRequests).toHaveLength(2);
    expect(r.reports).toHaveLength(2);
    expect(r.connector.health().state).toBe('ok');
  });

  it('goes down with a clear error when the token endpoint refuses the credentials (invalid_grant), and recovers', async () => {
    const r = await rig(1);
    await r.connector.tick();
    r.graph.revokeAppTokens();
    r.graph.failToken({ status: 400, error: 'invalid_grant' });
    r.clock.advance(60_000);
    await r.connector.tick();

    const h = r.connector.health();
    expect(h.state).toBe('down');
    expect(h.lastError).toMatch(/token endpoint refused .*400 invalid_grant/);
    expect(h.lastError).toMatch(/MS_CLIENT_SECRET/);
    expect(r.logs.some((l) => l.level === 'error' && /invalid_grant/.test(l.msg))).toBe(true);
    expectNoSecrets(r);

    r.graph.failToken(null);
    r.clock.advance(5_000);
    await r.connector.tick();
    expect(r.connector.health().state).toBe('ok');
    expect(r.reports).toHaveLength(2);
  });

  it('goes down on invalid_client (401 at the token endpoint) without ever logging the secret', async () => {
    const r = await rig(1);
    r.graph.failToken({ status: 401, error: 'invalid_client' });
    await r.connector.tick();
    expect(r.connector.health()).toMatchObject({ state: 'down' });
    expect(r.connector.health().lastError).toMatch(/401 invalid_client/);
    expect(r.graph.count('presences')).toBe(0);
    expectNoSecrets(r);
  });

  it('goes down on 403: the app lacks Presence.Read.All', async () => {
    const r = await rig(1);
    r.graph.fail('presences', { status: 403 });
    await r.connector.tick();
    expect(r.connector.health().state).toBe('down');
    expect(r.connector.health().lastError).toMatch(/Presence\.Read\.All/);
  });

  it('never guesses an unknown availability: no observation, logged once per value', async () => {
    const r = await rig(3);
    r.graph.setPresence(aadId(0), 'Teleporting', 'Available');
    r.graph.setPresence(aadId(1), 'teleporting', 'available');
    r.graph.setPresence(aadId(2), 'PresenceUnknown', 'PresenceUnknown');
    await r.connector.tick();
    r.clock.advance(60_000);
    await r.connector.tick();

    expect(r.reports).toHaveLength(0);
    const warned = r.logs.filter((l) => l.level === 'warn' && /not known/.test(l.msg));
    // Teleporting/Available (any case) once, PresenceUnknown once, across two polls.
    expect(warned.map((l) => (l.obj as { availability: string }).availability).sort()).toEqual([
      'PresenceUnknown',
      'Teleporting',
    ]);
    expect(r.connector.health().state).toBe('ok');
  });

  it('skips accounts of another tenant and ids that are not AAD object ids', async () => {
    const r = await rig(1);
    r.accounts.push({
      platform: 'teams',
      externalId: aadId(9),
      workspaceId: '99999999-2222-4333-8444-555555555555',
    });
    r.accounts.push({ platform: 'teams', externalId: 'alice@contoso.com', workspaceId: TENANT });
    await r.connector.tick();
    expect(r.graph.presenceBatches()).toEqual([[aadId(0)]]);
  });

  it('a subscription Graph cannot validate leaves the connector degraded with a clear message, users still polled', async () => {
    const tokens = new Map<string, string>();
    const r = await rig(2, {
      // Nothing answers Graph's handshake there: validation fails, no subscription.
      notificationUrl: 'http://127.0.0.1:1/nowhere',
      delegatedTokenFor: (a) => Promise.resolve(tokens.get(a.externalId) ?? null),
    });
    tokens.set(aadId(0), r.graph.issueDelegatedToken(aadId(0)));
    await r.connector.tick();
    await r.connector.syncSubscriptions();
    expect(r.connector.subscriptions()).toEqual([]);
    expect(r.graph.count('create')).toBe(1);
    const h = r.connector.health();
    expect(h.state).toBe('degraded');
    expect(h.lastError).toMatch(/subscription failed.*400 ValidationError.*public HTTPS/);
    expect(JSON.stringify(h)).not.toContain('delegated-');
    r.clock.advance(60_000);
    await r.connector.tick();
    expect(r.graph.presenceBatches()[1]).toEqual([aadId(0), aadId(1)]);
  });

  it('with real timers: start polls on its own and stop leaves nothing running', async () => {
    const r = await rig(1, {
      timers: true,
      notificationUrl: 'https://presence.example.com/v1/inbound/teams',
      delegatedTokenFor: () => Promise.resolve(null),
    });
    await waitUntil(() => r.reports.length > 0, 'the first poll');
    expect(r.reports).toHaveLength(1);
    await r.connector.stop();
    expect(r.connector.health().nextPollAt).toBeNull();
  });
});
