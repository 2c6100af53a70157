/**
 * `syncEndpoints`: a second webhook service on the same store (as a second node is on the shared
 * PostgreSQL) takes in the endpoints the first created, changed, disabled and deleted, and the
 * outbox of its engine writes events for exactly the endpoints it knows.
 */

import { join } from 'node:path';

import { FakeClock } from '../../src/core/clock';
import { WebhookService } from '../../src/webhooks';
import { testEngine, tmpDir, type TestEngine } from '../helpers/engine';
import { reportTeams, webhookService } from '../helpers/webhooks';
import { testVault } from '../helpers/webhook-vault';

const tmp = tmpDir();
afterAll(() => tmp.cleanup());

let t: TestEngine;
/** The node that manages the endpoints. */
let admin: WebhookService;
/** The node whose engine commits the changes, following the endpoints. */
let follower: WebhookService;

beforeEach(async () => {
  t = await testEngine(join(tmp.dir, `follow-${Date.now()}.db`), { clock: new FakeClock(Date.now()) });
  follower = await webhookService(t);
  admin = await WebhookService.open({
    store: t.stores.webhooks,
    vault: testVault,
    clock: t.clock,
    allowPrivateTargets: true,
    pruneSchedule: null,
  });
});

afterEach(async () => {
  await admin.stop();
  await follower.stop();
  t.close();
});

const events = (): number => t.db.prepare('SELECT count(*) FROM webhook_events').pluck().get() as number;

it('takes in an endpoint another node created, changed, disabled and deleted', async () => {
  const ep = await admin.createEndpoint({ url: 'http://127.0.0.1:9/hook' });
  // Not known yet: the follower's commits write no event for it.
  await reportTeams(t, 'ana', 'online');
  expect(events()).toBe(0);
  expect(follower.listEndpoints()).toEqual([]);

  await follower.syncEndpoints();
  expect(follower.listEndpoints().map((e) => e.id)).toEqual([ep.id]);
  await reportTeams(t, 'ana', 'busy');
  expect(events()).toBe(1);

  t.clock.advance(1000);
  await admin.updateEndpoint(ep.id, { events: ['connector.degraded'] });
  await follower.syncEndpoints();
  expect(follower.getEndpoint(ep.id).events).toEqual(['connector.degraded']);
  await reportTeams(t, 'ana', 'away');
  expect(events()).toBe(1); // it no longer takes presence changes

  t.clock.advance(1000);
  await admin.updateEndpoint(ep.id, { enabled: false, events: null });
  await follower.syncEndpoints();
  expect(follower.getEndpoint(ep.id)).toMatchObject({ enabled: false, disabled_reason: 'manual' });
  await reportTeams(t, 'ana', 'online');
  expect(events()).toBe(1);

  await admin.deleteEndpoint(ep.id);
  await follower.syncEndpoints();
  expect(follower.listEndpoints()).toEqual([]);
});

it('keeps its own newer write when a sync read the row before it', async () => {
  const ep = await follower.createEndpoint({ url: 'http://127.0.0.1:9/hook' });
  const reading = follower.syncEndpoints(); // reads the endpoints as they are now
  t.clock.advance(1000);
  await follower.updateEndpoint(ep.id, { coalesce_ms: 500 });
  await reading;
  expect(follower.getEndpoint(ep.id).coalesce_ms).toBe(500);
  await follower.syncEndpoints();
  expect(follower.getEndpoint(ep.id).coalesce_ms).toBe(500);
});
