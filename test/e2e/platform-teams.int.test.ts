/**
 * `presence serve` with the Microsoft Teams credentials, as a real process: the real Graph SDK
 * and simple-oauth2 inside the shipped bin get an app token from the loopback fake token
 * endpoint and poll the fake Graph; a change of a linked user's Teams presence moves their
 * presence, read over HTTP, with a signed webhook.
 */

import { systemClock } from '../../src/core/clock';
import { aadId, startFakeGraph, type FakeGraph } from '../helpers/fake-graph';
import { linkUser, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

jest.setTimeout(180_000);

const TENANT = '11111111-2222-4333-8444-555555555555';
const CLIENT_ID = 'c0ffee00-0000-4000-8000-000000000001';
const CLIENT_SECRET = 'teams-e2e-client-secret';

describe('presence serve with the Teams connector configured', () => {
  let graph: FakeGraph;
  let svc: ServeProcess | undefined;
  afterEach(async () => {
    await svc?.stop();
    await graph?.close();
  });

  it('polls getPresencesByUserId with an app token and follows a change in Teams', async () => {
    graph = await startFakeGraph({
      clock: systemClock,
      tenantId: TENANT,
      clientId: CLIENT_ID,
      clientSecret: CLIENT_SECRET,
    });
    const id = aadId(7);
    graph.setPresence(id, 'Available', 'Available');
    svc = await startServe({
      env: {
        MS_TENANT_ID: TENANT,
        MS_CLIENT_ID: CLIENT_ID,
        MS_CLIENT_SECRET: CLIENT_SECRET,
        GRAPH_API_URL: graph.url,
        MS_LOGIN_URL: graph.url,
        TEAMS_POLL_INTERVAL: '2s',
        WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
      },
    });
    const s = svc;
    const hooks = await webhookReceiver(s);
    try {
      await linkUser(s, 'tom', { platform: 'teams', external_id: id, workspace_id: TENANT });
      await hooks.presenceChanged('tom', (c) => c.status === 'online', 'tom online');

      graph.setPresence(id, 'Busy', 'InACall');
      const presence = await until(async () => {
        const r = await s.api('GET', '/v1/presence/tom');
        return r.body?.status === 'busy' ? r.body : null;
      }, 'tom busy');
      expect(presence).toMatchObject({
        activity: 'in_call',
        source: 'app',
        platforms: { teams: { raw: { availability: 'Busy', activity: 'InACall' } } },
      });
      const event = await hooks.presenceChanged('tom', (c) => c.status === 'busy', 'tom busy');
      expect(event.data.previous.status).toBe('online');
      expect(graph.tokenRequests.length).toBeGreaterThan(0);
      const status = await s.connector('teams');
      expect(status).toMatchObject({ enabled: true, mode: 'poll', health: 'ok' });
      expect(typeof status.last_success_at).toBe('string');
    } finally {
      await hooks.close();
    }
  });
});
