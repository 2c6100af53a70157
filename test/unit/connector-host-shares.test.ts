/**
 * The connector host keeps the polling shares: a poll-mode connector's shares are renewed
 * before it starts (its first round polls this node's part), `ctx.polls` answers from the
 * shares, other modes take none, and `stopAll` releases them after stopping the connectors. The
 * shares are a recording fake of the port; the engine a stub with the accounts.
 */

import { ConnectorHost } from '../../src/aggregator/connector-host';
import type { PresenceEngine } from '../../src/aggregator/engine';
import { FakeClock } from '../../src/core/clock';
import type { Connector, ConnectorContext, ConnectorDescriptor } from '../../src/core/connector';
import { accountTarget } from '../../src/core/coordination';
import { silentLog } from '../../src/core/log';
import type { AccountRef, PollShares } from '../../src/core/ports';
import { slack } from '../../connectors/slack/descriptor';
import { discord } from '../../connectors/discord/descriptor';

const accounts: AccountRef[] = [
  { platform: 'slack', workspaceId: 'T1', externalId: 'U1' },
  { platform: 'slack', workspaceId: 'T1', externalId: 'U2' },
];

class RecordingShares implements PollShares {
  readonly ttlMs = 30_000;
  readonly calls: string[] = [];
  held = new Set<string>();
  owns(group: string, target: string): boolean {
    return this.held.has(`${group} ${target}`);
  }
  renew(group: string, targets: readonly string[]): Promise<void> {
    this.calls.push(`renew ${group} ${targets.length}`);
    this.held = new Set([`${group} ${targets[0]}`]); // this node's part: the first target
    return Promise.resolve();
  }
  release(group: string): Promise<void> {
    this.calls.push(`release ${group}`);
    this.held.clear();
    return Promise.resolve();
  }
}

function connector(descriptor: ConnectorDescriptor, calls: string[]): Connector & { ctx?: ConnectorContext } {
  const c: Connector & { ctx?: ConnectorContext } = {
    descriptor,
    start(ctx) {
      calls.push(`start ${descriptor.platform}`);
      c.ctx = ctx;
      return Promise.resolve();
    },
    stop() {
      calls.push(`stop ${descriptor.platform}`);
      return Promise.resolve();
    },
    health: () => ({ state: 'ok', lastSuccessAt: null, lastError: null, nextPollAt: null }),
  };
  return c;
}

const engine = {
  clock: new FakeClock(),
  accountsFor: (platform: string) => accounts.filter((a) => a.platform === platform),
} as unknown as PresenceEngine;

it('renews a polling connector’s shares before it starts, answers polls from them, and releases them at stop', async () => {
  const shares = new RecordingShares();
  const host = new ConnectorHost(engine, silentLog, undefined, shares);
  const s = connector(slack, shares.calls);
  const d = connector(discord, shares.calls); // a gateway: no shares
  await host.start(s);
  await host.start(d);
  expect(shares.calls).toEqual(['renew slack 2', 'start slack', 'start discord']);
  expect(s.ctx!.polls!(accounts[0]!)).toBe(true);
  expect(s.ctx!.polls!(accounts[1]!)).toBe(false);
  expect(shares.owns('slack', accountTarget(accounts[0]!))).toBe(true);

  await host.renewAllShares();
  expect(shares.calls.at(-1)).toBe('renew slack 2');

  await host.stopAll();
  expect(shares.calls.slice(-3)).toEqual(['stop slack', 'stop discord', 'release slack']);
  expect(s.ctx!.polls!(accounts[0]!)).toBe(false);
});

it('a renewal that fails leaves the connector running and is logged, not thrown', async () => {
  const shares = new RecordingShares();
  shares.renew = () => Promise.reject(new Error('Redis at 127.0.0.1:1 is unavailable'));
  const warned: unknown[] = [];
  const log = { ...silentLog, warn: (...args: unknown[]) => void warned.push(args) };
  const host = new ConnectorHost(engine, log, undefined, shares);
  const s = connector(slack, shares.calls);
  await host.start(s);
  expect(shares.calls).toEqual(['start slack']);
  expect(s.ctx!.polls!(accounts[0]!)).toBe(false); // holds nothing: polls nothing
  expect(warned).toHaveLength(1);
  await host.stopAll();
});

it('without shares given, the node alone polls every account', async () => {
  const host = new ConnectorHost(engine, silentLog);
  const s = connector(slack, []);
  await host.start(s);
  expect(accounts.map((a) => s.ctx!.polls!(a))).toEqual([true, true]);
  await host.stopAll();
});
