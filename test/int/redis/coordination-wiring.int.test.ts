/**
 * The coordination as the connectors use it, with two "nodes" on the real Redis (one key prefix,
 * one FakeClock): two Slack connectors polling one workspace split the users by their polling
 * shares and together stay within the workspace's Tier 3 budget (each alone would spend more);
 * a Slack event delivered to both nodes is processed once.
 */

import { slackInbound } from '../../../connectors/slack/inbound';
import { SlackConnector } from '../../../connectors/slack/connector';
import type { InboundRequest } from '../../../connectors/inbound';
import { accountTarget } from '../../../src/core/coordination';
import type { ConnectorContext, ConnectorReport } from '../../../src/core/connector';
import { hmacHex } from '../../../src/core/hmac';
import { silentLog } from '../../../src/core/log';
import type { AccountRef } from '../../../src/core/ports';
import type { RedisCoordination } from '../../../src/store/redis';
import { FakeSlack, type FakeSlackCall } from '../../helpers/fake-slack';

import { Deployment, eventually } from './helpers';

const MIN = 60_000;
jest.setTimeout(180_000);

let d: Deployment;
let fake: FakeSlack | undefined;
const connectors: SlackConnector[] = [];
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  for (const c of connectors.splice(0)) await c.stop();
  await fake?.close();
  fake = undefined;
  await d.close();
});

function maxInWindow(calls: readonly FakeSlackCall[], windowMs: number): number {
  const at = calls.map((c) => c.at).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[j]! < at[i]! - windowMs + 1) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

it('two nodes split a workspace by polling shares and stay within its Tier 3 budget together', async () => {
  fake = await FakeSlack.start(d.clock, { 'xoxb-test-token': 'T0TEST' });
  const accounts: AccountRef[] = [];
  for (let i = 0; i < 60; i++) {
    const id = `UT0TEST${String(i).padStart(4, '0')}`;
    fake.user(id);
    accounts.push({ platform: 'slack', externalId: id, workspaceId: 'T0TEST' });
  }
  const targets = accounts.map(accountTarget);
  const nodes = [await d.coordination(), await d.coordination()];
  for (let round = 0; round < 2; round++) for (const n of nodes) await n.shares.renew('slack', targets);

  const reports = new Map<RedisCoordination, ConnectorReport[]>();
  for (const n of nodes) {
    const mine: ConnectorReport[] = [];
    reports.set(n, mine);
    const ctx: ConnectorContext = {
      clock: d.clock,
      log: silentLog,
      report: (r) => {
        mine.push(r);
        return Promise.resolve(true);
      },
      accounts: () => accounts,
      polls: (a) => n.shares.owns('slack', accountTarget(a)),
    };
    // Profile and DND at their defaults; presence is what the budget is about.
    const c = new SlackConnector({
      token: 'xoxb-test-token',
      apiUrl: fake.apiUrl,
      clock: d.clock,
      timers: false,
      buckets: n.buckets,
    });
    connectors.push(c);
    await c.start(ctx);
  }

  // Jump from one due moment to the next for three minutes, renewing the shares as the host does.
  const until = d.clock.now() + 3 * MIN;
  let renewAt = d.clock.now() + 10_000;
  for (let guard = 0; guard < 10_000; guard++) {
    const due = connectors.map((c) => c.nextDueAt()).filter((t): t is number => t !== null);
    const next = Math.min(...due, renewAt);
    if (next > until) break;
    if (next > d.clock.now()) d.clock.set(next);
    if (d.clock.now() >= renewAt) {
      for (const n of nodes) await n.shares.renew('slack', targets);
      renewAt += 10_000;
    }
    await Promise.all(connectors.map((c) => c.pollDue()));
  }

  const calls = fake.callsOf('users.getPresence');
  // Each node alone would poll its 30 users every minute (60 a minute together): the shared
  // window holds them to the tier's 50.
  expect(maxInWindow(calls, MIN)).toBeLessThanOrEqual(50);
  expect(calls.length).toBeGreaterThanOrEqual(120);
  // Each user is polled by the node holding its share, and only that one.
  const [a, b] = nodes as [RedisCoordination, RedisCoordination];
  const of = (n: RedisCoordination): Set<string> => new Set(reports.get(n)!.map((r) => r.account.externalId));
  for (const [n, other] of [
    [a, b],
    [b, a],
  ] as const) {
    const reported = of(n);
    expect(reported.size).toBe(30);
    for (const id of reported) {
      expect(n.shares.owns('slack', accountTarget({ workspaceId: 'T0TEST', externalId: id }))).toBe(true);
      expect(of(other).has(id)).toBe(false);
    }
  }
});

it('a Slack event delivered to two nodes is processed once', async () => {
  const secret = 'signing-secret';
  const pushed: string[] = [];
  const nodes = [await d.coordination(), await d.coordination()];
  const handlers = nodes.map((n) =>
    slackInbound({
      signingSecret: secret,
      clock: d.clock,
      log: silentLog,
      port: {
        push: (e) => {
          pushed.push(String(e.event_id));
          return Promise.resolve();
        },
      },
      deliveries: n.deliveries,
    }),
  );
  const body = JSON.stringify({
    type: 'event_callback',
    event_id: 'Ev0001',
    team_id: 'T0TEST',
    event: { type: 'dnd_updated_user', user: 'U1' },
  });
  const ts = String(Math.floor(d.clock.now() / 1000));
  const request: InboundRequest = {
    headers: {
      'content-type': 'application/json',
      'x-slack-request-timestamp': ts,
      'x-slack-signature': `v0=${hmacHex(secret, `v0:${ts}:${body}`)}`,
    },
    query: {},
    raw: Buffer.from(body),
    body: undefined,
    log: silentLog,
    id: 'req-1',
  };
  const replies = [];
  for (const h of handlers) {
    const endpoint = h.endpoints[0]!;
    endpoint.verify(request);
    replies.push(await endpoint.handle(endpoint.parse(request), request));
  }
  expect(replies).toEqual([
    { status: 200, body: { ok: true } },
    { status: 200, body: { ok: true, duplicate: true } },
  ]);
  await eventually(() => (pushed.length === 1 ? Promise.resolve() : Promise.reject(new Error('not pushed'))));
  expect(pushed).toEqual(['Ev0001']);
});
