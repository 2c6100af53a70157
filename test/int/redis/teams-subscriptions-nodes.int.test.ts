/**
 * Graph presence subscriptions across nodes (issue #16): Teams connectors ("nodes") sharing one
 * RedisCoordination prefix and one FakeClock, against the fake Graph, each driven minute by minute
 * as its renewal cron would. One node manages the subscriptions (the lease lock): they are created
 * once and renewed once per renewal window whichever nodes tick; a lifecycle event delivered to
 * every node is acted on once; a stopping node hands them over (no delete, no new create) and a
 * dead one's are adopted when its lease ends, renewed by the successor in place. When Redis
 * loses the note (restarted empty) or gives back an old one (restored), the next manager finds
 * the subscriptions at Graph (`GET /subscriptions` with the users' delegated tokens, paged) and
 * adopts them: no new one created, no user left uncovered, renewals in place.
 */

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

import { TeamsConnector } from '../../../connectors/teams/connector';
import { SUBSCRIPTION_LEASE_MS, subscriptionLockKey } from '../../../connectors/teams/lease';
import type { ConnectorContext } from '../../../src/core/connector';
import { silentLog } from '../../../src/core/log';
import type { AccountRef } from '../../../src/core/ports';
import { aadId, fakeGraphAppToken, startFakeGraph, type FakeGraph } from '../../helpers/fake-graph';

import Redis from 'ioredis';

import { Deployment, REDIS_URL } from './helpers';

jest.setTimeout(120_000);

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT_ID = 'c0ffee00-0000-4000-8000-000000000001';
const CLIENT_SECRET = 'client-secret-value';
const CLIENT_STATE = 'teams-nodes-client-state-0123456789abcdef';
const MIN = 60_000;
const ALICE = aadId(1);
const BOB = aadId(2);

let d: Deployment;
let graph: FakeGraph;
let receiver: Server;
let notificationUrl: string;
const running: TeamsConnector[] = [];

const accounts: AccountRef[] = [ALICE, BOB].map((id) => ({
  platform: 'teams',
  externalId: id,
  workspaceId: TENANT,
}));

/** The inbound URL as far as Graph's validation handshake goes: echo the token. */
async function startReceiver(): Promise<Server> {
  const s = createServer((req, res) => {
    const token = new URL(req.url ?? '/', 'http://x').searchParams.get('validationToken');
    req.resume();
    if (token !== null) {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(token);
      return;
    }
    res.writeHead(202);
    res.end();
  });
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  return s;
}

/** A node of the deployment; `alone`: a single process without shared locks. */
async function node(o: { alone?: boolean } = {}): Promise<TeamsConnector> {
  const co = await d.coordination();
  const delegated = new Map(accounts.map((a) => [a.externalId, graph.issueDelegatedToken(a.externalId)]));
  const c = new TeamsConnector({
    tenantId: TENANT,
    graphUrl: graph.url,
    appToken: fakeGraphAppToken(graph, {
      tenantId: TENANT,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
      clock: d.clock,
    }),
    clock: d.clock,
    timers: false,
    random: () => 0,
    notificationUrl,
    clientState: CLIENT_STATE,
    delegatedTokenFor: (account) => Promise.resolve(delegated.get(account.externalId) ?? null),
    ...(o.alone === true ? {} : { buckets: co.buckets, locks: co.locks }),
  });
  const ctx: ConnectorContext = {
    clock: d.clock,
    log: silentLog,
    report: () => Promise.resolve(true),
    accounts: () => accounts,
  };
  await c.start(ctx);
  running.push(c);
  return c;
}

const ops = (op: string): number => graph.calls.filter((c) => c.op === op).length;

/** Moves the clock a minute at a time for `minutes`, each node's renewal tick in turn, as cron does. */
async function minutes(n: number, nodes: readonly TeamsConnector[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    d.clock.advance(MIN);
    for (const c of nodes) await c.renewSubscriptions();
  }
}

beforeEach(async () => {
  d = new Deployment();
  graph = await startFakeGraph({
    clock: d.clock,
    tenantId: TENANT,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
  });
  for (const a of accounts) graph.setPresence(a.externalId, 'Available', 'Available');
  receiver = await startReceiver();
  notificationUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/v1/inbound/teams`;
});
afterEach(async () => {
  for (const c of running.splice(0)) await c.stop();
  await graph.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
  await d.close();
});

it('two nodes: the subscription is created once and renewed once per window; a lifecycle event is acted on once', async () => {
  const a = await node();
  const b = await node();
  await a.syncSubscriptions();
  await b.syncSubscriptions();
  expect(ops('create')).toBe(1);
  expect(graph.subscriptions.size).toBe(1);
  const [sub] = a.subscriptions();
  expect(sub).toMatchObject({ userIds: [ALICE, BOB] });
  expect(b.subscriptions()).toEqual([]);

  // 55-minute subscriptions, renewed 10 minutes ahead: one renewal in the first 50 minutes,
  // with both nodes ticking every minute (the other order too: the holder is who holds the lease).
  await minutes(25, [a, b]);
  await minutes(25, [b, a]);
  expect(ops('renew')).toBe(1);
  expect(ops('create')).toBe(1);
  expect(graph.subscriptions.get(sub!.id)!.expiresAt).toBeGreaterThan(d.clock.now() + 40 * MIN);

  // Graph sends a lifecycle event to whichever node the load balancer picks; both get one here.
  const item = {
    lifecycleEvent: 'reauthorizationRequired',
    subscriptionId: sub!.id,
    clientState: CLIENT_STATE,
  };
  await b.handleLifecycleNotifications([item]);
  await a.handleLifecycleNotifications([item]);
  expect(graph.subscriptions.get(sub!.id)!.reauthorized).toBe(1);
});

it('a stopping node hands over: no delete, no new create; the other adopts and renews the same subscription', async () => {
  const a = await node();
  const b = await node();
  await a.syncSubscriptions();
  await b.syncSubscriptions();
  const [sub] = a.subscriptions();
  await minutes(5, [a, b]);
  await a.stop();
  running.splice(running.indexOf(a), 1);
  expect(ops('delete')).toBe(0);
  expect(graph.subscriptions.has(sub!.id)).toBe(true);

  // The next tick on b takes the released lease at once and adopts the subscription.
  await minutes(1, [b]);
  expect(b.subscriptions().map((s) => s.id)).toEqual([sub!.id]);
  await minutes(44, [b]);
  expect(ops('renew')).toBe(1);
  expect(ops('create')).toBe(1);
  expect(graph.calls.filter((c) => c.op === 'renew')[0]?.path).toContain(sub!.id);
});

it('a node that died managing them: another takes over when the lease ends and renews in place', async () => {
  const a = await node();
  const b = await node();
  await a.syncSubscriptions();
  await b.syncSubscriptions();
  const [sub] = a.subscriptions();
  await minutes(10, [a, b]);
  // a dies: it ticks no more and releases nothing. Within its lease, b does not manage them.
  await minutes(SUBSCRIPTION_LEASE_MS / MIN - 1, [b]);
  expect(b.subscriptions()).toEqual([]);
  await minutes(1, [b]);
  expect(b.subscriptions().map((s) => s.id)).toEqual([sub!.id]);
  await minutes(40, [b]);
  expect(ops('renew')).toBe(1);
  expect(ops('create')).toBe(1);
  expect(graph.subscriptions.size).toBe(1);
});

/** The subscriptions at the fake Graph live now for our notification URL. */
const liveOurs = (): string[] =>
  [...graph.subscriptions.values()]
    .filter((s) => s.notificationUrl === notificationUrl && s.expiresAt > d.clock.now())
    .map((s) => s.id);

it('Redis restarted empty: the next manager lists them at Graph (paged) and adopts them; no new create, renewals in place', async () => {
  const a = await node();
  const b = await node();
  await a.syncSubscriptions();
  await b.syncSubscriptions();
  const [sub] = a.subscriptions();
  expect(sub).toMatchObject({ userIds: [ALICE, BOB], owner: { externalId: ALICE } });
  // The first manager found no note either: it asked Graph for each user before creating.
  expect(ops('list')).toBe(2);
  graph.calls.length = 0;
  // Alice also has two other subscriptions of the app, not the connector's: another resource on
  // our URL, and one for another URL. One a page, her listing is three pages long.
  const other = [
    graph.seedSubscription({
      owner: ALICE,
      resource: '/me/events',
      notificationUrl,
      expiresAt: d.clock.now() + 50 * MIN,
    }),
    graph.seedSubscription({
      owner: ALICE,
      resource: "/communications/presences?$filter=id in ('" + BOB + "')",
      notificationUrl: 'https://elsewhere.example/notify',
      expiresAt: d.clock.now() + 50 * MIN,
    }),
  ];
  graph.listPageSize = 1;
  await minutes(10, [a, b]);
  expect(ops('list')).toBe(0);
  expect(ops('create')).toBe(0);

  await d.wipe();
  // a's lease is gone with everything else; the next node to tick takes it without a note.
  await minutes(1, [a, b]);
  const manager = [a, b].find((c) => c.subscriptions().length > 0)!;
  expect(manager.subscriptions()).toEqual([
    expect.objectContaining({
      id: sub!.id,
      userIds: [ALICE, BOB],
      owner: expect.objectContaining({ externalId: ALICE }),
    }),
  ]);
  // One listing, Alice's (it covered Bob too), followed over its three pages, with her token.
  const lists = graph.calls.filter((c) => c.op === 'list');
  expect(lists).toHaveLength(3);
  expect(lists.map((c) => `${c.path}${c.query}`)).toEqual([
    '/subscriptions',
    expect.stringMatching(/^\/subscriptions\?\$skiptoken=[\w-]+$/),
    expect.stringMatching(/^\/subscriptions\?\$skiptoken=[\w-]+$/),
  ]);
  expect(new Set(lists.map((c) => c.token)).size).toBe(1);
  expect(ops('create')).toBe(0);
  expect(ops('delete')).toBe(0);
  expect(other.every((o) => graph.subscriptions.has(o.id))).toBe(true);

  // Renewed in place by the manager, once, ahead of its expiry; nothing else created.
  await minutes(40, [a, b]);
  expect(ops('renew')).toBe(1);
  expect(graph.calls.filter((c) => c.op === 'renew')[0]?.path).toContain(sub!.id);
  expect(ops('create')).toBe(0);
  expect(liveOurs()).toEqual([sub!.id]);
  expect(graph.subscriptions.get(sub!.id)!.expiresAt).toBeGreaterThan(d.clock.now() + 40 * MIN);
  expect(ops('list')).toBe(3);
});

it('an old note given back (Redis restored): its subscription over by its expiry, the manager asks Graph and adopts the renewed one', async () => {
  const a = await node();
  const b = await node();
  await a.syncSubscriptions();
  await b.syncSubscriptions();
  const [sub] = a.subscriptions();
  graph.calls.length = 0;
  const admin = new Redis(REDIS_URL);
  try {
    const noteKey = (await d.coordination()).key('note', subscriptionLockKey(TENANT));
    const old = await admin.get(noteKey);
    expect(old).toContain(sub!.id);
    // Renewed at minute 45 (to minute 100); at minute 60 Redis comes back from the old snapshot:
    // no lock, and a note that says the subscription ended at minute 55.
    await minutes(60, [a, b]);
    expect(ops('renew')).toBe(1);
    await d.wipe();
    await admin.set(noteKey, old!, 'PX', 60 * MIN);
    await minutes(1, [b, a]);
  } finally {
    admin.disconnect();
  }
  const manager = [a, b].find((c) => c.subscriptions().length > 0)!;
  expect(manager.subscriptions().map((s) => s.id)).toEqual([sub!.id]);
  expect(ops('list')).toBe(1);
  expect(ops('create')).toBe(0);
  await minutes(40, [a, b]);
  expect(ops('renew')).toBe(2);
  expect(ops('create')).toBe(0);
  expect(liveOurs()).toEqual([sub!.id]);
});

it('alone, after a crash: Graph answers the create with 409, the owner’s listing gives the old subscription back and it is adopted', async () => {
  const first = await node({ alone: true });
  await first.syncSubscriptions();
  const [sub] = first.subscriptions();
  expect(ops('list')).toBe(0);
  // The process dies (no stop: its subscription stays at Graph); the next one knows nothing of it.
  running.splice(running.indexOf(first), 1);
  const next = await node({ alone: true });
  await minutes(5, [next]);
  await next.syncSubscriptions();
  expect(next.subscriptions()).toEqual([expect.objectContaining({ id: sub!.id, userIds: [ALICE, BOB] })]);
  // Alice's create was refused (409), then her listing; no second subscription owned by Bob.
  expect(graph.calls.filter((c) => c.op === 'create' || c.op === 'list').map((c) => c.op)).toEqual([
    'create',
    'create',
    'list',
  ]);
  expect(liveOurs()).toEqual([sub!.id]);
  await minutes(40, [next]);
  expect(ops('renew')).toBe(1);
  expect(ops('create')).toBe(2);
});
