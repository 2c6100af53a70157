/**
 * End to end: the running service (real HTTP on 127.0.0.1) with the real Teams connector, the
 * real Graph SDK and simple-oauth2 talking to the fake Graph, which sends its validation
 * handshakes, change and lifecycle notifications to the service's inbound URLs. Covers the
 * subscription lifecycle (create, renew before the 60-minute expiry, reauthorize, a revoked
 * delegated token) and a notification moving a linked user's aggregate presence.
 */

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { join } from 'node:path';

import { TeamsConnector } from '../../connectors/teams/connector';
import type { PresenceChange } from '../../src/core/changes';
import { teamsInboundRoutes } from '../../src/http/routes/inbound';
import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import type { AccountRef } from '../../src/core/ports';
import { createService, type Service } from '../../src/main';
import { webhookTap } from '../helpers/webhook-tap';
import { tmpDir } from '../helpers/engine';
import { aadId, fakeGraphAppToken, startFakeGraph, type FakeGraph } from '../helpers/fake-graph';
import { fetchApi } from '../helpers/fetch-api';

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT_ID = 'c0ffee00-0000-4000-8000-000000000001';
const CLIENT_SECRET = 'client-secret-value';
const CLIENT_STATE = 'teams-e2e-client-state-0123456789abcdef';
const MIN = 60_000;

const ALICE = aadId(1);
const BOB = aadId(2);
const CAROL = aadId(3); // no delegated connection: polled only

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

interface E2E {
  clock: FakeClock;
  graph: FakeGraph;
  connector: TeamsConnector;
  svc: Service;
  base: string;
  key: string;
  /** Delegated tokens by AAD id: what the connection store would hand out. */
  delegated: Map<string, string>;
  rejected: { account: AccountRef; reason: string }[];
  changes: PresenceChange[];
  get(path: string): Promise<any>;
  close(): Promise<void>;
}

let e: E2E;

async function setup(): Promise<E2E> {
  const tmp = tmpDir();
  const clock = new FakeClock();
  const graph = await startFakeGraph({
    clock,
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
  });
  graph.setPresence(ALICE, 'Busy', 'InAMeeting');
  graph.setPresence(BOB, 'Away', 'Away');
  graph.setPresence(CAROL, 'Available', 'Available');
  const delegated = new Map([
    [ALICE, graph.issueDelegatedToken(ALICE)],
    [BOB, graph.issueDelegatedToken(BOB)],
  ]);
  const rejected: E2E['rejected'] = [];
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
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
    notificationUrl: `${base}/v1/inbound/teams`,
    clientState: CLIENT_STATE,
    delegatedTokenFor: (account) => Promise.resolve(delegated.get(account.externalId) ?? null),
    onDelegatedTokenRejected: (account, reason) => {
      // What the composition root does: the connection is marked reauth_required, so no token.
      rejected.push({ account, reason });
      delegated.delete(account.externalId);
    },
  });
  const svc = await createService(
    parseEnv({
      PRESENCE_DB: join(tmp.dir, 'teams.db'),
      LOG_LEVEL: 'silent',
      WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      // Webhook signing secrets are sealed under it (without it webhooks are off).
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    }),
    {
      clock,
      connectors: [{ connector }],
      logger: false,
      timers: false,
      plugins: [(app) => teamsInboundRoutes(app, { connector })],
    },
  );
  await svc.app.listen({ host: '127.0.0.1', port });
  const key = (await svc.keys.create(['read', 'write', 'admin'], 'e2e')).key;
  const changes: PresenceChange[] = [];
  svc.engine.changes.add({ committed: (c) => changes.push(...c) });

  const call = async (method: string, path: string, body?: unknown): Promise<any> => {
    const answer = await fetchApi(base, key, method, path, body);
    if (answer.status >= 400) throw new Error(`${method} ${path}: ${answer.status} ${answer.text}`);
    return answer.body;
  };
  for (const [user, id] of [
    ['alice', ALICE],
    ['bob', BOB],
    ['carol', CAROL],
  ] as const) {
    await call('PUT', `/v1/users/${user}`, { display_name: user });
    await call('POST', `/v1/users/${user}/accounts`, {
      platform: 'teams',
      external_id: id,
      workspace_id: TENANT,
    });
  }
  return {
    clock,
    graph,
    connector,
    svc,
    base,
    key,
    delegated,
    rejected,
    changes,
    get: (path) => call('GET', path),
    close: async () => {
      await svc.close();
      await graph.close();
      tmp.cleanup();
    },
  };
}

beforeEach(async () => {
  e = await setup();
});

afterEach(async () => {
  await e.close();
});

/** Polls, then subscribes the delegated users; returns the subscription's id. */
async function pollAndSubscribe(): Promise<string> {
  await e.connector.tick();
  await e.connector.syncSubscriptions();
  const subs = e.connector.subscriptions();
  expect(subs).toHaveLength(1);
  return subs[0]!.id;
}

describe('Teams end to end', () => {
  it('a basic notification leads to one batch fetch and moves the linked user in the running service', async () => {
    const tap = await webhookTap(e.svc, e.clock);
    await e.connector.tick();
    const alice = await e.get('/v1/presence/alice');
    expect(alice).toMatchObject({
      status: 'busy',
      activity: 'in_meeting',
      platforms: { teams: { raw: { availability: 'Busy', activity: 'InAMeeting' } } },
    });

    await e.connector.syncSubscriptions();
    const [sub] = e.connector.subscriptions();
    expect(sub).toMatchObject({ owner: { externalId: ALICE }, userIds: [ALICE, BOB] });
    const remote = e.graph.subscriptions.get(sub!.id)!;
    expect(remote).toMatchObject({
      resource: `/communications/presences?$filter=id in ('${ALICE}', '${BOB}')`,
      notificationUrl: `${e.base}/v1/inbound/teams`,
      lifecycleNotificationUrl: `${e.base}/v1/inbound/teams/lifecycle`,
      clientState: CLIENT_STATE,
      owner: ALICE,
    });
    expect(remote.expiresAt - e.clock.now()).toBeLessThanOrEqual(60 * MIN);
    // Graph validated both URLs against the running service before creating it.
    expect(e.graph.handshakes.map((h) => [h.url, h.ok])).toEqual([
      [`${e.base}/v1/inbound/teams`, true],
      [`${e.base}/v1/inbound/teams/lifecycle`, true],
    ]);

    e.graph.setPresence(ALICE, 'Available', 'Available');
    e.graph.setPresence(BOB, 'DoNotDisturb', 'Presenting');
    const before = e.graph.count('presences');
    const res = await e.graph.notify(sub!.id, [ALICE, BOB]);
    // Answered before the fetch it starts (teams-inbound.int.test.ts shows the 202 does not wait
    // for processing, with a sink that never finishes); no stopwatch here.
    expect(res.status).toBe(202);
    await e.connector.whenIdle();

    // One fetch for both changed users.
    expect(e.graph.presenceBatches().slice(before)).toEqual([[ALICE, BOB]]);
    expect(await e.get('/v1/presence/alice')).toMatchObject({ status: 'online', activity: null });
    expect(await e.get('/v1/presence/bob')).toMatchObject({ status: 'busy', activity: 'presenting' });
    // The change goes out (a change sink here; the webhook outbox is another sink of the same commits).
    expect(e.changes.filter((c) => c.userId === 'alice').map((c) => c.current.status)).toEqual([
      'busy',
      'online',
    ]);

    // Every Graph call carried a bearer token the fake issued: app token for presence, the
    // owner's delegated token for the subscription.
    expect(e.graph.allCallsAuthenticated()).toBe(true);
    expect(e.graph.calls.find((c) => c.op === 'create')!.token).toBe(e.delegated.get(ALICE));
    expect(e.connector.health().state).toBe('ok');
    // And as signed presence.changed webhooks.
    await tap.until(() => tap.statusesOf('alice').length === 2 && tap.statusesOf('bob').length === 2);
    expect(tap.statusesOf('alice')).toEqual(['busy', 'online']);
    expect(tap.statusesOf('bob')).toEqual(['away', 'busy']);
    await tap.close();
  });

  it('ignores a notification with a forged clientState (401, no fetch)', async () => {
    const subId = await pollAndSubscribe();
    const before = e.graph.count('presences');
    const res = await e.graph.notify(subId, [ALICE], { clientState: 'forged' });
    expect(res.status).toBe(401);
    expect(JSON.parse(res.body).error.code).toBe('unauthorized');
    await e.connector.whenIdle();
    expect(e.graph.count('presences')).toBe(before);
  });

  it('a notification with the right clientState but the wrong shape starts no fetch and changes nothing', async () => {
    const subId = await pollAndSubscribe();
    const before = e.graph.count('presences');
    const version = (await e.get('/v1/presence/alice')).version;
    e.graph.setPresence(ALICE, 'Available', 'Available');
    const state = e.graph.subscriptions.get(subId)!.clientState;
    const bad = [
      { clientState: state, subscriptionId: subId, resource: 5, resourceData: { id: ALICE, '@odata.id': 5 } },
      { clientState: state, subscriptionId: subId, resourceData: `users/${ALICE}/presence` },
      {
        clientState: state,
        subscriptionId: subId,
        resource: `users/${ALICE}/presence`,
        changeType: ['updated'],
      },
    ];
    for (const item of bad) {
      const res = await fetch(`${e.base}/v1/inbound/teams`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ value: [item] }),
      });
      expect(res.status).toBe(202);
    }
    await e.connector.whenIdle();
    expect(e.graph.count('presences')).toBe(before);
    expect(await e.get('/v1/presence/alice')).toMatchObject({ status: 'busy', version });
  });

  it('polls subscribed users only at the reconcile interval', async () => {
    await pollAndSubscribe();
    e.graph.calls.length = 0;
    e.clock.advance(MIN);
    await e.connector.tick();
    expect(e.graph.presenceBatches()).toEqual([[CAROL]]);
    e.clock.advance(9 * MIN);
    await e.connector.tick();
    expect(e.graph.presenceBatches()[1]!.sort()).toEqual([ALICE, BOB, CAROL]);
  });

  it('renews before the 60-minute expiry and keeps receiving notifications after the first expiry', async () => {
    const t0 = e.clock.now();
    const subId = await pollAndSubscribe();
    const firstExpiry = e.graph.subscriptions.get(subId)!.expiresAt;
    expect(firstExpiry).toBe(t0 + 55 * MIN);

    e.clock.set(t0 + 44 * MIN);
    await e.connector.renewSubscriptions();
    expect(e.graph.count('renew')).toBe(0);

    e.clock.set(t0 + 46 * MIN);
    await e.connector.renewSubscriptions();
    expect(e.graph.count('renew')).toBe(1);
    const renewed = e.graph.subscriptions.get(subId)!.expiresAt;
    expect(renewed).toBe(t0 + 46 * MIN + 55 * MIN);
    expect(e.connector.subscriptions()[0]!.expiresAt).toBe(renewed);

    // Past the first expiry the subscription still delivers.
    e.clock.set(firstExpiry + MIN);
    e.graph.setPresence(ALICE, 'Offline', 'OffWork');
    expect((await e.graph.notify(subId, [ALICE])).status).toBe(202);
    await e.connector.whenIdle();
    expect(await e.get('/v1/presence/alice')).toMatchObject({
      // Appear offline: offline by the person's own choice, in the manual tier.
      status: 'offline',
      source: 'manual',
      platforms: { teams: { status: 'offline', activity: null, source: 'manual' } },
    });
    expect(e.graph.count('create')).toBe(1);
  });

  it('answers reauthorizationRequired by reauthorizing with the owner’s token', async () => {
    const subId = await pollAndSubscribe();
    const res = await e.graph.lifecycle(subId, 'reauthorizationRequired');
    expect(res.status).toBe(202);
    await e.connector.whenIdle();
    expect(e.graph.count('reauthorize')).toBe(1);
    expect(e.graph.subscriptions.get(subId)!.reauthorized).toBe(1);
    expect(e.graph.calls.find((c) => c.op === 'reauthorize')!.token).toBe(e.delegated.get(ALICE));
  });

  it('renews instead when reauthorizing fails', async () => {
    const subId = await pollAndSubscribe();
    e.graph.fail('reauthorize', { status: 400 });
    e.clock.advance(20 * MIN);
    await e.graph.lifecycle(subId, 'reauthorizationRequired');
    await e.connector.whenIdle();
    expect(e.graph.count('renew')).toBe(1);
    expect(e.graph.subscriptions.get(subId)!.expiresAt).toBe(e.clock.now() + 55 * MIN);
  });

  it('a revoked delegated token: reported for reauth, the subscription recreated by another owner', async () => {
    const t0 = e.clock.now();
    await pollAndSubscribe();
    e.graph.revokeDelegated(ALICE);
    e.clock.set(t0 + 46 * MIN);
    await e.connector.renewSubscriptions();

    expect(e.rejected.map((r) => r.account.externalId)).toEqual([ALICE]);
    expect(e.rejected[0]!.reason).toMatch(/401/);
    expect(e.rejected[0]!.reason).not.toContain('delegated-');
    const subs = e.connector.subscriptions();
    expect(subs).toEqual([
      expect.objectContaining({ owner: expect.objectContaining({ externalId: BOB }), userIds: [BOB] }),
    ]);
    expect(e.graph.calls.filter((c) => c.op === 'create').at(-1)!.token).toBe(e.delegated.get(BOB));

    // Alice is no longer covered: polled at the normal interval again (the first tick is a
    // reconcile of everyone, due since minute 10).
    await e.connector.tick();
    e.graph.calls.length = 0;
    e.clock.advance(MIN);
    await e.connector.tick();
    expect(e.graph.presenceBatches().flat().sort()).toEqual([ALICE, CAROL]);
  });

  it('subscriptionRemoved: recreated; Graph’s 409 for the old owner moves ownership to the next user', async () => {
    const subId = await pollAndSubscribe();
    expect((await e.graph.lifecycle(subId, 'subscriptionRemoved')).status).toBe(202);
    await e.connector.whenIdle();
    // The fake still holds Alice's subscription, so creating another for her gets a 409.
    expect(e.graph.count('create')).toBe(3);
    expect(e.connector.subscriptions()).toEqual([
      expect.objectContaining({ owner: expect.objectContaining({ externalId: BOB }), userIds: [ALICE, BOB] }),
    ]);
    expect(e.connector.health().state).toBe('ok');
  });

  it('missed: the subscription’s users are fetched at once', async () => {
    const subId = await pollAndSubscribe();
    const before = e.graph.count('presences');
    await e.graph.lifecycle(subId, 'missed');
    await e.connector.whenIdle();
    expect(e.graph.presenceBatches().slice(before)).toEqual([[ALICE, BOB]]);
  });

  it('shows the connector in GET /v1/connectors and deletes its subscriptions on close', async () => {
    const subId = await pollAndSubscribe();
    const { connectors } = await e.get('/v1/connectors');
    expect(connectors.find((c: { platform: string }) => c.platform === 'teams')).toMatchObject({
      enabled: true,
      mode: 'poll',
    });
    await e.svc.close();
    expect(e.graph.subscriptions.has(subId)).toBe(false);
    expect(e.graph.count('delete')).toBe(1);
  });
});
