/**
 * The operations figures on the real service: heartbeats and changes through the API move them,
 * /metrics shows them by their `presence_ops_*` names, and `GET /v1/users` lists the ids the
 * dashboard watches.
 */

import { testApi, type TestApi } from '../helpers/http';

const metric = (text: string, name: string): number => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`${name} is not in /metrics`);
  return Number(line.slice(name.length + 1));
};

describe('operations figures', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await testApi();
  });
  afterAll(() => api.close());

  it('counts users, heartbeats per second, changes per second and stale users', async () => {
    for (const id of ['ann', 'bob', 'cy', 'dee']) {
      const res = await api.call({
        method: 'POST',
        url: '/v1/heartbeats',
        payload: { user_id: id, device_id: 'laptop', ttl_seconds: 30 },
      });
      expect(res.statusCode).toBe(204);
    }
    api.clock.advance(2000);
    api.svc.figures.sample();
    let text = (await api.call({ method: 'GET', url: '/metrics', key: null })).body;
    expect(metric(text, 'presence_ops_tracked_users')).toBe(4);
    expect(metric(text, 'presence_ops_heartbeats_per_second')).toBe(2); // 4 over 2 s
    expect(metric(text, 'presence_ops_changes_per_second')).toBe(2); // each went offline → online
    expect(metric(text, 'presence_ops_stale_ratio')).toBe(0);
    expect(metric(text, 'presence_ops_webhook_backlog')).toBe(0);
    expect(metric(text, 'presence_ops_flaps_total')).toBe(0);

    // Their heartbeats expire: everyone is stale (once the 5 s count has aged), and a return within
    // 30 s of going offline is a flap.
    api.clock.advance(31_000);
    await api.svc.engine.sweep();
    const back = await api.call({
      method: 'POST',
      url: '/v1/heartbeats',
      payload: { user_id: 'ann', device_id: 'laptop' },
    });
    expect(back.statusCode).toBe(204);
    api.svc.figures.sample();
    text = (await api.call({ method: 'GET', url: '/metrics', key: null })).body;
    expect(metric(text, 'presence_ops_stale_ratio')).toBe(0.75);
    expect(metric(text, 'presence_ops_flaps_total')).toBe(1);
    expect(metric(text, 'presence_ops_flaps_recent')).toBe(1);
  });

  it('lists the users a page at a time, in id order', async () => {
    const first = api.json(await api.call({ method: 'GET', url: '/v1/users?limit=3' }));
    expect(first).toEqual({ user_ids: ['ann', 'bob', 'cy'], next: 'cy', total: 4 });
    const rest = api.json(await api.call({ method: 'GET', url: '/v1/users?limit=3&after=cy' }));
    expect(rest).toEqual({ user_ids: ['dee'], next: null, total: 4 });
    expect((await api.call({ method: 'GET', url: '/v1/users', key: api.key.write })).statusCode).toBe(403);
  });
});
