/**
 * OAuth refresh single-flight across nodes (issue #16): two ConnectionServices (two "nodes") on
 * one connection store, each with its own token manager and provider client, sharing one
 * RedisCoordination prefix and one FakeClock, against the fake OAuth server (Discord flavor:
 * refresh tokens rotate, so a second refresh with the old one is refused). The fake holds the
 * first refresh request until the test lets it go, so the other node is known to be waiting.
 */

import { ConnectionService } from '../../../src/oauth/service';
import type { ConnectionEventType } from '../../../src/oauth/service';
import { REFRESH_MARGIN_MS, refreshLockKey } from '../../../src/oauth/token-manager';
import type { Log } from '../../../src/core/log';
import type { RedisCoordination } from '../../../src/store/redis';
import { tmpDir } from '../../helpers/engine';
import { oauthHarness, type OAuthHarness } from '../../helpers/fake-oauth';
import { waitUntil } from '../../helpers/wait';

import { Deployment } from './helpers';

jest.setTimeout(120_000);

const LOCK_TTL_MS = 30_000;
const WAITING = "waiting for another node's refresh of the connection";

interface Node {
  readonly service: ConnectionService;
  readonly logs: string[];
}

const tmp = tmpDir();
let d: Deployment;
let h: OAuthHarness;
let nodes: [Node, Node];
const events: { node: number; type: ConnectionEventType }[] = [];

const logOf = (into: string[]): Log => {
  const push = (_obj: object, msg?: string): void => {
    into.push(msg ?? '');
  };
  return { debug: push, info: push, warn: push, error: push };
};

/** A node's connection layer on the harness's store, with its own token manager and locks. */
function node(index: number, co: RedisCoordination): Node {
  const logs: string[] = [];
  const service = new ConnectionService({
    store: h.stores.connections,
    env: h.env,
    clock: d.clock,
    log: logOf(logs),
    hasUser: () => true,
    linkAccount: () => ({ linked: true }),
    onEvent: (type) => {
      events.push({ node: index, type });
    },
    httpTimeoutMs: 30_000,
    locks: co.locks,
    refreshLockTtlMs: LOCK_TTL_MS,
  });
  return { service, logs };
}

/** Lets a request the fake holds go; the promise the fake waits on. */
function gate(): { until: Promise<void>; open(): void } {
  let open = (): void => {};
  const until = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { until, open };
}

const refreshCalls = (): number => h.fake.callsTo('token', 'refresh_token').length;
const waiting = (n: Node): boolean => n.logs.includes(WAITING);

beforeEach(async () => {
  d = new Deployment();
  h = await oauthHarness({ flavor: 'discord', dir: tmp.dir, clock: d.clock });
  nodes = [node(0, await d.coordination()), node(1, await d.coordination())];
  events.length = 0;
});
afterEach(async () => {
  for (const n of nodes) await n.service.stop();
  await h.close();
  await d.close();
});
afterAll(() => tmp.cleanup());

/** Connects alice through the harness's service and moves the clock to within the refresh margin. */
async function dueConnection(): Promise<string> {
  const view = await h.connect();
  d.clock.set(Date.parse(view.expires_at ?? '') - REFRESH_MARGIN_MS + 1000);
  return view.id;
}

it('two nodes needing the same refresh at once: one token request, both get the new token', async () => {
  const id = await dueConnection();
  const g = gate();
  h.fake.fail('token', { kind: 'held', until: g.until }, 1, 'refresh_token');
  const both = Promise.all(nodes.map((n) => n.service.getAccessToken(id)));
  // One node's request is at the fake, the other waits for the lock (without a lock, both would
  // be at the fake, and the second's old refresh token refused).
  await waitUntil(() => refreshCalls() === 1 && nodes.some(waiting), 'one refresh and one waiter');
  g.open();
  const tokens = await both;
  expect(refreshCalls()).toBe(1);
  expect(tokens).toEqual([h.fake.issued.access[1], h.fake.issued.access[1]]);
  expect(await h.service.get(id)).toMatchObject({ health: 'ok' });
  // Both nodes now read the new token without a request.
  for (const n of nodes) expect(await n.service.getAccessToken(id)).toBe(h.fake.issued.access[1]);
  expect(refreshCalls()).toBe(1);
});

it("a failed refresh is the waiting node's outcome too: no second request with the refused token", async () => {
  const id = await dueConnection();
  const g = gate();
  h.fake.fail(
    'token',
    { kind: 'held', until: g.until, after: { kind: 'invalid_grant' } },
    1,
    'refresh_token',
  );
  const both = Promise.allSettled(nodes.map((n) => n.service.getAccessToken(id)));
  await waitUntil(() => refreshCalls() === 1 && nodes.some(waiting), 'one refresh and one waiter');
  g.open();
  const outcomes = await both;
  for (const o of outcomes) {
    expect(o).toMatchObject({
      status: 'rejected',
      reason: { code: 'forbidden', details: [{ code: 'reauth_required' }] },
    });
  }
  expect(refreshCalls()).toBe(1);
  // Recorded once, by the node that made the request.
  expect(events.map((e) => e.type)).toEqual(['connection.reauth_required']);
});

it("both nodes' sweeps at the same minute: one refresh; the node that found the lock taken leaves it", async () => {
  const id = await dueConnection();
  const g = gate();
  h.fake.fail('token', { kind: 'held', until: g.until }, 1, 'refresh_token');
  const [a, b] = nodes;
  const first = a.service.sweep();
  await waitUntil(() => refreshCalls() === 1, 'the first sweep at the token endpoint');
  // The second sweep does not wait for the first: it skips the row the other node is refreshing.
  expect(await b.service.sweep()).toMatchObject({ refreshed: 0, failed: 0 });
  g.open();
  expect(await first).toMatchObject({ refreshed: 1, failed: 0 });
  expect(refreshCalls()).toBe(1);
  expect(await b.service.getAccessToken(id)).toBe(h.fake.issued.access[1]);
});

it('a node that died holding the lock: the other takes over when the lease ends, and refreshes once', async () => {
  const id = await dueConnection();
  // The dead node: it took the lock and will never release or renew it.
  const dead = await d.coordination();
  expect(await dead.locks.acquire(refreshLockKey(id), LOCK_TTL_MS)).not.toBeNull();
  const [, b] = nodes;
  const token = b.service.getAccessToken(id);
  await waitUntil(() => waiting(b), 'the node waiting for the lock');
  expect(refreshCalls()).toBe(0);
  d.clock.advance(LOCK_TTL_MS);
  expect(await token).toBe(h.fake.issued.access[1]);
  expect(refreshCalls()).toBe(1);
  // The refresh used the stored (current) refresh token and rotated it.
  expect(h.fake.callsTo('token', 'refresh_token')[0]?.body.refresh_token).toBe(h.fake.issued.refresh[0]);
});

it('a node stopping while it waits ends its wait (unavailable) and leaves the lock alone', async () => {
  const id = await dueConnection();
  const dead = await d.coordination();
  const lease = await dead.locks.acquire(refreshLockKey(id), LOCK_TTL_MS);
  expect(lease).not.toBeNull();
  const [, b] = nodes;
  const token = b.service.getAccessToken(id);
  await waitUntil(() => waiting(b), 'the node waiting for the lock');
  await b.service.stop();
  await expect(token).rejects.toMatchObject({ details: [{ code: 'unavailable' }] });
  expect(refreshCalls()).toBe(0);
  // The holder's lease is still its own.
  expect(await dead.locks.release(lease!)).toBe(true);
});
