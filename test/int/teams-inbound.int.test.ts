/**
 * `POST /v1/inbound/teams` and `/v1/inbound/teams/lifecycle` mounted on the real service: the
 * validation handshake, clientState on every item, 401 in the contract's shape, 202 at once.
 */

import { join } from 'node:path';

import type { TeamsNotificationSink } from '../../connectors/teams/inbound';
import { teamsInboundRoutes } from '../../src/http/routes/inbound';
import type { GraphChangeNotification, GraphLifecycleNotification } from '../../connectors/teams/types';
import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from '../helpers/engine';
import { expectError } from '../helpers/http';
import { aadId } from '../helpers/fake-graph';

const STATE = 'client-state-secret-0123456789';

class RecordingSink implements TeamsNotificationSink {
  changes: GraphChangeNotification[][] = [];
  lifecycle: GraphLifecycleNotification[][] = [];
  /** When set, processing never finishes: the reply must not wait for it. */
  hang = false;

  verifyClientState(value: unknown): boolean {
    return value === STATE;
  }

  handleChangeNotifications(items: readonly GraphChangeNotification[]): Promise<void> {
    this.changes.push([...items]);
    return this.hang ? new Promise(() => undefined) : Promise.resolve();
  }

  handleLifecycleNotifications(items: readonly GraphLifecycleNotification[]): Promise<void> {
    this.lifecycle.push([...items]);
    return Promise.resolve();
  }
}

const item = (user: string, clientState: unknown = STATE): Record<string, unknown> => ({
  subscriptionId: '37a10357-9c28-4cb8-8a4f-a85a1e9b5a7b',
  clientState,
  changeType: 'updated',
  resource: `communications/presences?$filter=id+in+(%27${user}%27)`,
  subscriptionExpirationDateTime: '2026-11-23T14:58:00.4569264',
  resourceData: {
    '@odata.type': '#Microsoft.Graph.presence',
    '@odata.id': `users/${user}/presence`,
    id: user,
  },
  tenantId: 'fec73c09-5f32-43fd-b767-9181f871fbcf',
});

let svc: Service;
let sink: RecordingSink;
let cleanup: () => void;

beforeEach(async () => {
  const tmp = tmpDir();
  cleanup = tmp.cleanup;
  sink = new RecordingSink();
  svc = await createService(parseEnv({ PRESENCE_DB: join(tmp.dir, 'inbound.db'), LOG_LEVEL: 'silent' }), {
    clock: new FakeClock(),
    logger: false,
    timers: false,
    plugins: [(app) => teamsInboundRoutes(app, { connector: sink })],
  });
});

afterEach(async () => {
  await svc.close();
  cleanup();
});

const post = (url: string, body: unknown, contentType = 'application/json') =>
  svc.app.inject({
    method: 'POST',
    url,
    headers: { 'content-type': contentType },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('Teams inbound: validation handshake', () => {
  const token =
    'Validation: Testing client application reachability for subscription Request-Id: 7f3c 1+2=3 & ü';

  it.each(['/v1/inbound/teams', '/v1/inbound/teams/lifecycle'])(
    '%s echoes the URL-decoded token as text/plain, without an API key',
    async (path) => {
      const res = await post(
        `${path}?validationToken=${encodeURIComponent(token)}`,
        '',
        'text/plain; charset=utf-8',
      );
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toMatch(/^text\/plain/);
      expect(res.body).toBe(token);
      expect(sink.changes).toHaveLength(0);
    },
  );

  it('answers the handshake whatever body and content type come with it', async () => {
    const res = await post(
      `/v1/inbound/teams?validationToken=abc%2Fdef%3D%3D`,
      '{not json',
      'application/json',
    );
    expect(res.statusCode).toBe(200);
    expect(res.body).toBe('abc/def==');
  });
});

describe('Teams inbound: notifications', () => {
  it('checks clientState on every item: only matching items are processed, 202', async () => {
    const res = await post('/v1/inbound/teams', {
      value: [item(aadId(1)), item(aadId(2), 'forged'), item(aadId(3), null), { clientState: 42 }, 'junk'],
    });
    expect(res.statusCode).toBe(202);
    expect(res.body).toBe('');
    expect(sink.changes).toHaveLength(1);
    expect(sink.changes[0]!.map((i) => i.resourceData?.id)).toEqual([aadId(1)]);
  });

  it('401 in the contract shape when no item has the clientState, nothing processed', async () => {
    const res = await post('/v1/inbound/teams', {
      value: [item(aadId(1), 'forged'), item(aadId(2), STATE.slice(1))],
    });
    expectError(res, 401, 'unauthorized');
    expect(JSON.parse(res.body).error.message).not.toContain(STATE);
    expect(sink.changes).toHaveLength(0);

    expectError(await post('/v1/inbound/teams', { value: [] }), 401, 'unauthorized');
    expectError(
      await post('/v1/inbound/teams/lifecycle', { value: [{ lifecycleEvent: 'missed' }] }),
      401,
      'unauthorized',
    );
  });

  it('400 for a body that is not a notification collection', async () => {
    expectError(await post('/v1/inbound/teams', { nope: true }), 400, 'invalid_request');
    expectError(await post('/v1/inbound/teams', '{broken', 'application/json'), 400, 'invalid_request');
    expectError(await post('/v1/inbound/teams', 'hello', 'text/plain'), 400, 'invalid_request');
  });

  it('replies 202 at once while processing has not finished', async () => {
    // The sink never finishes: a reply that waited for it would never come (no stopwatch needed).
    sink.hang = true;
    const res = await post('/v1/inbound/teams', { value: [item(aadId(1))] });
    expect(res.statusCode).toBe(202);
    expect(sink.changes).toHaveLength(1);
  });

  it.each<[string, Record<string, unknown>]>([
    ['resourceData is a string', { ...item(aadId(1)), resourceData: `users/${aadId(1)}/presence` }],
    ['resourceData.id is a number', { ...item(aadId(1)), resourceData: { id: 7 } }],
    ['resourceData.@odata.id is an object', { ...item(aadId(1)), resourceData: { '@odata.id': {} } }],
    ['resource is an array', { ...item(aadId(1)), resource: [aadId(1)] }],
    ['changeType is a number', { ...item(aadId(1)), changeType: 1 }],
    ['subscriptionId is an object', { ...item(aadId(1)), subscriptionId: { id: 'x' } }],
  ])(
    'a correctly stated item of the wrong shape (%s) is dropped: 202, nothing passed on',
    async (_why, bad) => {
      const res = await post('/v1/inbound/teams', { value: [bad, item(aadId(2))] });
      expect(res.statusCode).toBe(202);
      expect(sink.changes.map((batch) => batch.map((i) => i.resourceData?.id))).toEqual([[aadId(2)]]);
      const alone = await post('/v1/inbound/teams', { value: [bad] });
      expect(alone.statusCode).toBe(202);
      expect(sink.changes.at(-1)).toEqual([]);
    },
  );

  it('lifecycle items of the wrong shape are dropped, as are unknown events passed on as text', async () => {
    const res = await post('/v1/inbound/teams/lifecycle', {
      value: [
        { lifecycleEvent: 5, subscriptionId: 'a', clientState: STATE },
        { lifecycleEvent: 'missed', subscriptionId: ['a'], clientState: STATE },
        { lifecycleEvent: 'somethingNew', subscriptionId: 'b', clientState: STATE },
      ],
    });
    expect(res.statusCode).toBe(202);
    expect(sink.lifecycle).toEqual([[expect.objectContaining({ lifecycleEvent: 'somethingNew' })]]);
  });

  it('passes lifecycle events on, clientState checked', async () => {
    const res = await post('/v1/inbound/teams/lifecycle', {
      value: [
        {
          lifecycleEvent: 'reauthorizationRequired',
          subscriptionId: 'e3898f08-5cd0-4a6a-80fc-6addbfb73b7b',
          subscriptionExpirationDateTime: '2026-11-23T14:52:45.9696658+00:00',
          clientState: STATE,
          tenantId: '84bd8158-6d4d-4958-8b9f-9d6445542f95',
        },
        { lifecycleEvent: 'subscriptionRemoved', subscriptionId: 'x', clientState: 'forged' },
      ],
    });
    expect(res.statusCode).toBe(202);
    expect(sink.lifecycle).toEqual([
      [expect.objectContaining({ lifecycleEvent: 'reauthorizationRequired' })],
    ]);
  });
});
