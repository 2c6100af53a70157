/**
 * Slack polling stays within the per-workspace tier budgets: presence polls are spread evenly
 * over the interval, never more than the Tier 3 rate in any minute; DND goes in batches of 50
 * within Tier 2; each workspace has its own budget. The real WebClient talks to the fake Slack;
 * time is a FakeClock, jumped from one due moment to the next.
 */

import { SlackConnector, type SlackConnectorOptions } from '../../connectors/slack/connector';
import { FakeClock } from '../../src/core/clock';
import type { ConnectorContext, ConnectorReport } from '../../src/core/connector';
import { silentLog } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import { FakeSlack, type FakeSlackCall } from '../helpers/fake-slack';

const MIN = 60_000;

interface Rig {
  clock: FakeClock;
  fake: FakeSlack;
  connector: SlackConnector;
  accounts: AccountRef[];
  reports: ConnectorReport[];
  /** Jumps from one due moment to the next, polling at each, up to `ms` from now. */
  run(ms: number): Promise<void>;
}

const rigs: Rig[] = [];

async function rig(
  users: number,
  options: Partial<SlackConnectorOptions> = {},
  workspaces: Record<string, string> = { 'xoxb-test-token': 'T0TEST' },
): Promise<Rig> {
  const clock = new FakeClock();
  const fake = await FakeSlack.start(clock, workspaces);
  const accounts: AccountRef[] = [];
  for (const team of Object.values(workspaces))
    for (let i = 0; i < users; i++) {
      const id = `U${team}${String(i).padStart(4, '0')}`;
      fake.user(id);
      accounts.push({ platform: 'slack', externalId: id, workspaceId: team });
    }
  const reports: ConnectorReport[] = [];
  const ctx: ConnectorContext = {
    clock,
    log: silentLog,
    report: (r) => {
      reports.push(r);
      return Promise.resolve(true);
    },
    accounts: () => accounts,
  };
  const connector = new SlackConnector({
    token: 'xoxb-test-token',
    apiUrl: fake.apiUrl,
    clock,
    timers: false,
    ...options,
  });
  await connector.start(ctx);
  const r: Rig = {
    clock,
    fake,
    connector,
    accounts,
    reports,
    async run(ms) {
      const until = clock.now() + ms;
      for (let guard = 0; guard < 100_000; guard++) {
        const next = connector.nextDueAt();
        if (next === null || next > until) break;
        if (next > clock.now()) clock.set(next);
        await connector.pollDue();
      }
      clock.set(until);
    },
  };
  rigs.push(r);
  return r;
}

afterEach(async () => {
  for (const r of rigs.splice(0)) {
    await r.connector.stop();
    await r.fake.close();
  }
});

/** The most calls in any half-open window of `windowMs` (windows starting at a call). */
function maxInWindow(calls: readonly FakeSlackCall[], windowMs: number): number {
  const at = calls.map((c) => c.at).sort((a, b) => a - b);
  let most = 0;
  for (let i = 0, j = 0; i < at.length; i++) {
    while (at[j]! < at[i]! - windowMs + 1) j++;
    most = Math.max(most, i - j + 1);
  }
  return most;
}

const gaps = (calls: readonly FakeSlackCall[]): number[] => calls.slice(1).map((c, i) => c.at - calls[i]!.at);

// Each test drives minutes of FakeClock time through hundreds of real loopback calls: how long
// that takes depends on the machine's load, never on the result, so the deadline is generous.
jest.setTimeout(120_000);

describe('Slack connector: rate budget', () => {
  it('spreads a few users evenly over the interval, each once per interval', async () => {
    const r = await rig(10);
    await r.run(5 * MIN);
    const calls = r.fake.callsOf('users.getPresence');
    // 10 users over 60 s: one call every 6 s, no bursts.
    expect(new Set(gaps(calls))).toEqual(new Set([6000]));
    for (const a of r.accounts) {
      const mine = calls.filter((c) => c.params.user === a.externalId);
      expect(mine.length).toBeGreaterThanOrEqual(5);
      expect(new Set(gaps(mine))).toEqual(new Set([MIN]));
    }
  });

  it('never exceeds the Tier 3 rate when there are more users than the budget, and stretches the TTL', async () => {
    const r = await rig(120);
    await r.run(10 * MIN);
    const calls = r.fake.callsOf('users.getPresence');
    expect(maxInWindow(calls, MIN)).toBeLessThanOrEqual(50);
    expect(Math.min(...gaps(calls))).toBeGreaterThanOrEqual(1200);
    // 120 users at 50 a minute: every user polled every 144 s.
    for (const a of r.accounts)
      expect(calls.filter((c) => c.params.user === a.externalId).length).toBeGreaterThanOrEqual(4);
    const ttl = 3 * 120 * 1200;
    expect(r.connector.ttlMs('T0TEST')).toBe(ttl);
    expect(new Set(r.reports.map((x) => x.ttlMs))).toEqual(new Set([ttl]));
  });

  it('takes the tier rate as an option', async () => {
    const r = await rig(30, { tier3PerMinute: 10 });
    await r.run(5 * MIN);
    const calls = r.fake.callsOf('users.getPresence');
    expect(maxInWindow(calls, MIN)).toBeLessThanOrEqual(10);
    expect(calls.length).toBeGreaterThanOrEqual(49);
  });

  it('fetches DND in batches of at most 50 within Tier 2, covering every user each interval', async () => {
    const r = await rig(120);
    await r.run(5 * MIN);
    const calls = r.fake.callsOf('dnd.teamInfo');
    expect(maxInWindow(calls, MIN)).toBeLessThanOrEqual(20);
    for (const c of calls) expect(c.params.users!.split(',').length).toBeLessThanOrEqual(50);
    // Three batches per minute: 50 + 50 + 20.
    const firstMinute = calls.filter((c) => c.at < r.clock.now() - 4 * MIN);
    expect(firstMinute.map((c) => c.params.users!.split(',').length)).toEqual([50, 50, 20]);
    const covered = new Set(firstMinute.flatMap((c) => c.params.users!.split(',')));
    expect(covered.size).toBe(120);
  });

  it('keeps profile reads within Tier 4', async () => {
    const r = await rig(150);
    await r.run(3 * MIN);
    expect(maxInWindow(r.fake.callsOf('users.profile.get'), MIN)).toBeLessThanOrEqual(100);
  });

  it('gives each workspace its own budget and its own token', async () => {
    const tokens: string[] = [];
    const r = await rig(
      60,
      {
        token: undefined,
        tokenFor: (ws) => {
          tokens.push(ws);
          return Promise.resolve(ws === 'T0AAA' ? 'xoxb-aaa' : 'xoxb-bbb');
        },
      },
      { 'xoxb-aaa': 'T0AAA', 'xoxb-bbb': 'T0BBB' },
    );
    await r.run(3 * MIN);
    const calls = r.fake.callsOf('users.getPresence');
    const a = calls.filter((c) => c.token === 'xoxb-aaa');
    const b = calls.filter((c) => c.token === 'xoxb-bbb');
    expect(a.every((c) => c.params.user!.startsWith('UT0AAA'))).toBe(true);
    expect(b.every((c) => c.params.user!.startsWith('UT0BBB'))).toBe(true);
    expect(maxInWindow(a, MIN)).toBeLessThanOrEqual(50);
    expect(maxInWindow(b, MIN)).toBeLessThanOrEqual(50);
    // Together more than one workspace's budget: the budgets are separate.
    expect(maxInWindow(calls, MIN)).toBeGreaterThan(50);
    expect(new Set(tokens)).toEqual(new Set(['T0AAA', 'T0BBB']));
  });
});
