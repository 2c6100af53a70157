/**
 * Several nodes sending from one outbox (issue #16): two webhook services, each on its own engine
 * and pool over one PostgreSQL database (a database of its own per test), with one endpoint, in
 * claim mode (dispatcher.ts). Each node sends only what it claimed: every delivery goes out once
 * in normal operation, each user's events in version order whichever node sends them; a graceful
 * stop hands its claims over at once; the claims of a node that dies (`abandon`: nothing more
 * written, no release) are taken over once their lease ends by the injected clock, and a lease
 * renewed while a request is in flight keeps the other node off it.
 */

import { PresenceEngine } from '../../src/aggregator/engine';
import { FakeClock } from '../../src/core/clock';
import { Ladder, type Status } from '../../src/core/presence';
import { openPgStores, type PgStores } from '../../src/store/pg';
import { WebhookService, type WebhookServiceOptions } from '../../src/webhooks';
import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import type { Received } from '../helpers/receiver';
import { testVault } from '../helpers/webhook-vault';
import { Receivers } from '../helpers/webhooks';
import { waitUntil } from '../helpers/wait';

const LEASE_MS = 30_000;

interface Node {
  readonly name: string;
  readonly stores: PgStores;
  readonly engine: PresenceEngine;
  readonly webhooks: WebhookService;
}

let database: TestDatabase;
let clock: FakeClock;
const nodes: Node[] = [];
const receivers = new Receivers();

beforeEach(async () => {
  database = await createTestDatabase();
  // Near real time: the signatures' timestamps stay plausible.
  clock = new FakeClock(Date.now());
});

afterEach(async () => {
  for (const n of nodes.splice(0)) {
    await n.webhooks.stop();
    await n.engine.stop();
    await n.stores.close();
  }
  await receivers.closeAll();
  await database.drop();
});

/** A node: its own pool, engine and webhook service in claim mode; `name` is its user agent. */
async function node(name: string, options: Partial<WebhookServiceOptions> = {}): Promise<Node> {
  const stores = await openPgStores({ connectionString: database.url, clock, max: 4 });
  const engine = new PresenceEngine({ clock, store: stores.presence, ladder: new Ladder() });
  await engine.load();
  const webhooks = await WebhookService.open({
    store: stores.webhooks,
    vault: testVault,
    engine,
    clock,
    allowPrivateTargets: true,
    jitter: 0,
    pruneSchedule: null,
    userAgent: name,
    claims: { store: stores.webhooks, node: name, leaseMs: LEASE_MS, claimEveryMs: 20, renewEveryMs: 20 },
    ...options,
  });
  const n = { name, stores, engine, webhooks };
  nodes.push(n);
  return n;
}

const STATUSES: readonly Status[] = ['online', 'busy', 'away', 'idle'];

/** Reports the n-th status of the cycle for `userId` from Teams: a change every time. */
async function change(n: Node, userId: string, i: number): Promise<void> {
  n.engine.ensureUser(userId);
  const status = STATUSES[i % STATUSES.length]!;
  await n.engine.report(userId, {
    platform: 'teams',
    ttlMs: 3_600_000,
    state: { status, activity: null, customStatus: null, source: 'app', raw: status, label: status },
  });
}

interface Sent {
  readonly by: string;
  readonly id: string;
  readonly type: string;
  readonly user: string;
  readonly version: number;
}

const sent = (r: Received): Sent => {
  const body = JSON.parse(r.body) as { type: string; data: { user_id: string; version: number } };
  return {
    by: r.headers['user-agent']!,
    id: r.headers['webhook-id']!,
    type: body.type,
    user: body.data.user_id,
    version: body.data.version,
  };
};

/** Versions per user in arrival order. */
function versionsByUser(list: readonly Sent[]): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const s of list) (out[s.user] ??= []).push(s.version);
  return out;
}

async function pendingCount(n: Node): Promise<number> {
  const { rows } = await n.stores.pool.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending'",
  );
  return rows[0]!.n;
}

async function claimedBy(n: Node): Promise<Record<string, number>> {
  const { rows } = await n.stores.pool.query<{ by: string; n: number }>(
    'SELECT claimed_by AS by, count(*)::int AS n FROM webhook_deliveries WHERE claimed_by IS NOT NULL GROUP BY claimed_by',
  );
  return Object.fromEntries(rows.map((r) => [r.by, r.n]));
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i + 1);

it('two running nodes send every delivery exactly once, each user in version order', async () => {
  const r = await receivers.start();
  const a = await node('node-a');
  await a.webhooks.createEndpoint({ url: r.url });
  const users = { a: ['ana', 'ari', 'avi'], b: ['bo', 'bea', 'ben'] };
  const changes = 6;
  // A backlog a holds in memory before b starts (without claims b would load and send it too).
  for (const u of users.a) await change(a, u, 0);
  const b = await node('node-b'); // opened after: it loads the endpoint
  a.webhooks.start();
  b.webhooks.start();
  // Interleaved commits on both nodes; each node writes its own users (versions are per user).
  for (let i = 0; i < changes; i++) {
    await Promise.all([...users.a.map((u) => change(a, u, i + 1)), ...users.b.map((u) => change(b, u, i))]);
  }
  const total = users.a.length * (changes + 1) + users.b.length * changes;
  await r.waitFor(total);
  await waitUntil(async () => (await pendingCount(a)) === 0, 'every delivery written as delivered');
  await a.webhooks.idle();
  await b.webhooks.idle();
  const list = r.received.map(sent);
  expect(list).toHaveLength(total);
  expect(new Set(list.map((s) => s.id)).size).toBe(total);
  const expected = Object.fromEntries([
    ...users.a.map((u) => [u, range(changes + 1)]),
    ...users.b.map((u) => [u, range(changes)]),
  ]);
  expect(versionsByUser(list)).toEqual(expected);
  expect(await claimedBy(a)).toEqual({});
});

it('a node sends what another node committed, and the head of a user waits for its retry on any node', async () => {
  const r = await receivers.start((_req, i) => (i === 0 ? 500 : 204));
  const a = await node('node-a', { retrySchedule: [0, 1000, 2000] });
  await a.webhooks.createEndpoint({ url: r.url });
  const b = await node('node-b', { retrySchedule: [0, 1000, 2000] });
  for (let i = 0; i < 3; i++) await change(a, 'ana', i);
  // Only b sends: a's commits are claimable by any node.
  expect(await b.webhooks.runDue()).toBe(1); // v1 fails: ana's later versions wait behind it
  expect(await a.webhooks.runDue()).toBe(0);
  expect(await b.webhooks.runDue()).toBe(0);
  clock.advance(1000);
  // The retry is claimed again by whichever node comes first, then the rest in order.
  expect(await a.webhooks.runDue()).toBe(3);
  expect(await b.webhooks.runDue()).toBe(0);
  const list = r.received.map(sent);
  expect(list.map((s) => [s.by, s.version])).toEqual([
    ['node-b', 1],
    ['node-a', 1],
    ['node-a', 2],
    ['node-a', 3],
  ]);
  expect(list[0]!.id).toBe(list[1]!.id);
  expect(await pendingCount(a)).toBe(0);
});

it('a graceful stop hands its claims over at once: the other node sends them, in order', async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  // a's requests are held until the end; b's are answered.
  const r = await receivers.start((req) => (req.headers['user-agent'] === 'node-a' ? { after: gate } : 204));
  const a = await node('node-a', { stopGraceMs: 0 });
  await a.webhooks.createEndpoint({ url: r.url });
  const b = await node('node-b');
  a.webhooks.start();
  const users = ['ana', 'bo', 'cy'];
  for (let i = 0; i < 3; i++) for (const u of users) await change(a, u, i);
  // a claimed the head of each user and has it in flight.
  await r.waitFor(users.length);
  expect(await claimedBy(a)).toEqual({ 'node-a': users.length });
  await a.webhooks.stop();
  nodes.splice(nodes.indexOf(a), 1);
  await a.engine.stop();
  await a.stores.close();
  // Handed over: nothing is claimed any more, and b sends everything now, by the same clock.
  expect(await claimedBy(b)).toEqual({});
  expect(await b.webhooks.runDue()).toBe(9);
  open();
  const fromB = r.received.map(sent).filter((s) => s.by === 'node-b');
  expect(versionsByUser(fromB)).toEqual({ ana: [1, 2, 3], bo: [1, 2, 3], cy: [1, 2, 3] });
  expect(new Set(fromB.map((s) => s.id)).size).toBe(9);
  expect(await pendingCount(b)).toBe(0);
});

it("a dead node's claims are taken over once their lease ends, and the order holds", async () => {
  const r = await receivers.start((req) => (req.headers['user-agent'] === 'node-a' ? { hang: true } : 204));
  const a = await node('node-a');
  await a.webhooks.createEndpoint({ url: r.url });
  const b = await node('node-b');
  a.webhooks.start();
  for (let i = 0; i < 2; i++) for (const u of ['ana', 'bo']) await change(a, u, i);
  await r.waitFor(2);
  // a dies with both heads claimed and in flight: nothing is written, nothing released.
  await a.webhooks.abandon();
  expect(await claimedBy(b)).toEqual({ 'node-a': 2 });
  expect(await b.webhooks.runDue()).toBe(0); // a's claims still run
  clock.advance(LEASE_MS - 1);
  expect(await b.webhooks.runDue()).toBe(0);
  clock.advance(1);
  expect(await b.webhooks.runDue()).toBe(4);
  const fromB = r.received.map(sent).filter((s) => s.by === 'node-b');
  expect(versionsByUser(fromB)).toEqual({ ana: [1, 2], bo: [1, 2] });
  // At least once: the heads a had sent went out again, with the same webhook-id.
  const fromA = r.received.map(sent).filter((s) => s.by === 'node-a');
  expect(fromA.map((s) => s.id).sort()).toEqual(
    fromB
      .filter((s) => s.version === 1)
      .map((s) => s.id)
      .sort(),
  );
  expect(await pendingCount(b)).toBe(0);
});

it('a claim renewed while its request is in flight past the lease is not taken by another node', async () => {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => (open = resolve));
  const r = await receivers.start((req) => (req.headers['user-agent'] === 'node-a' ? { after: gate } : 204));
  const a = await node('node-a', { timeoutMs: 10 * LEASE_MS });
  await a.webhooks.createEndpoint({ url: r.url });
  const b = await node('node-b');
  a.webhooks.start();
  await change(a, 'ana', 0);
  await change(a, 'ana', 1);
  await r.waitFor(1);
  clock.advance(2 * LEASE_MS);
  // a's renewal timer moves the claim past the new now.
  await waitUntil(async () => {
    const { rows } = await a.stores.pool.query<{ until: number }>(
      "SELECT claim_expires_at AS until FROM webhook_deliveries WHERE claimed_by = 'node-a'",
    );
    return rows.length === 1 && rows[0]!.until > clock.now();
  }, "a's claim renewed");
  expect(await b.webhooks.runDue()).toBe(0);
  open();
  // a's answer releases the claim; the next version is then sent by one node only.
  await waitUntil(async () => (await pendingCount(a)) === 0, 'both versions delivered');
  await b.webhooks.runDue();
  const list = r.received.map(sent);
  expect(list.map((s) => s.version)).toEqual([1, 2]);
});

it('coalescing works on a claimed head: the run behind it is merged into it', async () => {
  const r = await receivers.start();
  const a = await node('node-a');
  const ep = await a.webhooks.createEndpoint({ url: r.url, coalesce_ms: 1000 });
  const b = await node('node-b');
  await change(a, 'ana', 0); // online
  clock.advance(300);
  await change(a, 'ana', 1); // busy
  clock.advance(300);
  await change(a, 'ana', 2); // away
  clock.advance(399);
  expect(await b.webhooks.runDue()).toBe(0); // the window of v1 is still open
  clock.advance(1);
  expect(await b.webhooks.runDue()).toBe(1);
  expect(await a.webhooks.runDue()).toBe(0);
  const [merged] = r.bodies<{
    data: { version: number; previous: { status: string }; current: { status: string } };
  }>();
  expect(merged!.data.version).toBe(3);
  expect(merged!.data.previous.status).toBe('offline');
  expect(merged!.data.current.status).toBe('away');
  const log = await a.webhooks.deliveries(ep.id);
  expect(log.deliveries.map((d) => d.status).sort()).toEqual(['coalesced', 'coalesced', 'delivered']);
  expect(await pendingCount(a)).toBe(0);
});
