/**
 * One token path per app grant: the Teams connector and the connection layer (`connectApp`, the
 * refresh sweep) get the Microsoft client-credentials token from the same source, as `serve`
 * wires them (one `AppGrants`, built once). Against the fake Graph and its token endpoint.
 */

import { join } from 'node:path';

import { TeamsConnector } from '../../connectors/teams/connector';
import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import type { ConnectorContext, ConnectorReport } from '../../src/core/connector';
import { silentLog } from '../../src/core/log';
import type { AccountRef } from '../../src/core/ports';
import { AppGrants } from '../../src/oauth/app-token';
import { ConnectionService } from '../../src/oauth/service';
import { REFRESH_MARGIN_MS, SWEEP_LOOKAHEAD_MS } from '../../src/oauth/token-manager';
import { asyncStoresOn } from '../helpers/promised';
import { migrate, openDb, type Db } from '../../src/store/db';
import { tmpDir } from '../helpers/engine';
import { aadId, startFakeGraph, type FakeGraph } from '../helpers/fake-graph';
import { TEST_SECRET_KEY } from '../helpers/fake-oauth';

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT_ID = 'c0ffee00-0000-4000-8000-000000000001';
const CLIENT_SECRET = 'client-secret-value-that-must-never-be-logged';

const tmp = tmpDir();
const open: { graph: FakeGraph; teams: TeamsConnector; db: Db }[] = [];
afterEach(async () => {
  for (const r of open.splice(0)) {
    await r.teams.stop();
    await r.graph.close();
    r.db.close();
  }
});
afterAll(() => tmp.cleanup());

async function rig(users: number) {
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
  const env = parseEnv({
    PRESENCE_SECRET_KEY: TEST_SECRET_KEY,
    MS_TENANT_ID: TENANT,
    MS_CLIENT_ID: CLIENT_ID,
    MS_CLIENT_SECRET: CLIENT_SECRET,
    MS_LOGIN_URL: graph.url,
  });
  // What the composition root builds once and hands to both.
  const appGrants = new AppGrants(env, { clock });
  const db = openDb(join(tmp.dir, `grant-${open.length}-${Date.now()}.db`));
  migrate(db, undefined, clock);
  const connections = new ConnectionService({
    store: asyncStoresOn(db).connections,
    env,
    clock,
    log: silentLog,
    hasUser: () => false,
    linkAccount: () => ({ linked: true }),
    onEvent: () => undefined,
    appGrants,
    httpTimeoutMs: 30_000,
  });
  const grant = appGrants.for('teams')!;
  const teams = new TeamsConnector({
    tenantId: TENANT,
    graphUrl: graph.url,
    appToken: grant.token,
    clock,
    timers: false,
    random: () => 0,
  });
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
  await teams.start(ctx);
  open.push({ graph, teams, db });
  return { clock, graph, connections, grant, teams, reports };
}

describe('one token path per app grant (Teams)', () => {
  it('the connector and connectApp, asking at once, share one token request and one token', async () => {
    const r = await rig(2);
    const [, view] = await Promise.all([r.teams.tick(), r.connections.connectApp('teams')]);
    expect(r.graph.tokenRequests).toHaveLength(1);
    expect(r.reports).toHaveLength(2);
    expect(r.graph.allCallsAuthenticated()).toBe(true);
    // No second row: connectApp stores the app connection it always stored, and only that one.
    expect(await r.connections.list()).toEqual([
      expect.objectContaining({ id: view.id, kind: 'app', external_id: TENANT }),
    ]);
    // The stored token is the one the connector polls with.
    const stored = await r.connections.getAccessToken(view.id);
    expect(await r.grant.token()).toBe(stored);
    expect(r.graph.tokenRequests).toHaveLength(1);

    // The sweep's refresh ahead of expiry is the grant's new token for the connector too.
    r.clock.set(Date.parse(view.expires_at!) - REFRESH_MARGIN_MS - SWEEP_LOOKAHEAD_MS + 1000);
    expect(await r.connections.sweep()).toMatchObject({ refreshed: 1, failed: 0 });
    expect(r.graph.tokenRequests).toHaveLength(2);
    const refreshed = await r.connections.getAccessToken(view.id);
    expect(refreshed).not.toBe(stored);
    await r.teams.tick();
    expect(r.graph.tokenRequests).toHaveLength(2);
    expect(await r.grant.token()).toBe(refreshed);
    expect(r.graph.allCallsAuthenticated()).toBe(true);
  });

  it("Graph's 401 forces one refresh on the shared path, and every caller gets the new token", async () => {
    // Two batches of 650: the second must use the token the first one's 401 brought.
    const r = await rig(1300);
    const view = await r.connections.connectApp('teams');
    await r.teams.tick();
    expect(r.graph.tokenRequests).toHaveLength(1);
    const before = await r.grant.token();

    r.graph.revokeAppTokens();
    r.clock.advance(60_000);
    await r.teams.tick();
    expect(r.graph.tokenRequests).toHaveLength(2);
    expect(r.reports).toHaveLength(2600);
    expect(r.teams.health().state).toBe('ok');
    const after = await r.grant.token();
    expect(after).not.toBe(before);
    expect(r.graph.tokenRequests).toHaveLength(2);
    // The stored app connection is the same one (no new row for the connector's refresh).
    expect((await r.connections.list()).map((c) => c.id)).toEqual([view.id]);
  });
});
