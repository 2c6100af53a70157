import type { PresenceChange } from '../../src/core/changes';
import { expectError, testApi, type TestApi } from '../helpers/http';

describe('POST /v1/signals', () => {
  let api: TestApi;
  const changes: PresenceChange[] = [];
  beforeEach(async () => {
    api = await testApi();
    await api.svc.engine.putUser('ana', {});
    await api.svc.engine.linkAccount('ana', { platform: 'linkedin', workspaceId: '', externalId: 'li-ana' });
    changes.length = 0;
    api.svc.engine.changes.add({ committed: (c) => changes.push(...c) });
  });
  afterEach(() => api.close());
  const iso = (offsetMs = 0) => new Date(api.clock.now() + offsetMs).toISOString();

  it('by user_id: inferred presence that fades online → idle → away → offline', async () => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/signals',
      key: api.key.write,
      payload: { user_id: 'ana', platform: 'slack', kind: 'typing', at: iso() },
    });
    expect(res.statusCode).toBe(202);
    expect(api.json(res)).toEqual({ user_id: 'ana', applied: true });
    expect(api.svc.engine.get('ana')).toMatchObject({ status: 'online', source: 'inferred' });
    expect(changes).toHaveLength(1);
    const seen = [];
    for (const minutes of [3, 8, 50]) {
      api.clock.advance(minutes * 60_000);
      seen.push(api.svc.engine.get('ana')?.status);
    }
    expect(seen).toEqual(['idle', 'away', 'offline']);
  });

  it('by (platform, external_id) of a linked account', async () => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/signals',
      payload: { platform: 'linkedin', external_id: 'li-ana', kind: 'message', at: iso(-5 * 60_000) },
    });
    expect(api.json(res)).toEqual({ user_id: 'ana', applied: true });
    expect(api.svc.engine.get('ana')).toMatchObject({
      status: 'idle',
      platforms: { linkedin: { source: 'inferred', raw: { kind: 'message' } } },
    });
  });

  it('a signal older than the whole decay is accepted but changes nothing', async () => {
    const res = await api.call({
      method: 'POST',
      url: '/v1/signals',
      payload: { user_id: 'ana', platform: 'slack', kind: 'active', at: iso(-2 * 3600_000) },
    });
    expect(api.json(res)).toEqual({ user_id: 'ana', applied: false });
    expect(api.svc.engine.get('ana')?.version).toBe(0);
  });

  it.each([
    [{ platform: 'slack', kind: 'active', at: '2026-11-23T14:00:00Z' }, 'neither user nor account'],
    [
      { user_id: 'ana', platform: 'slack', external_id: 'U1', kind: 'active', at: '2026-11-23T14:00:00Z' },
      'both',
    ],
    [{ user_id: 'ana', platform: 'slack', kind: 'waving', at: '2026-11-23T14:00:00Z' }, 'unknown kind'],
    [{ user_id: 'ana', platform: 'fax', kind: 'active', at: '2026-11-23T14:00:00Z' }, 'unknown platform'],
    [{ user_id: 'ana', platform: 'slack', kind: 'active', at: 'now' }, 'at not a time'],
    [{ user_id: 'ana', platform: 'slack', kind: 'active', at: '2026-11-23T15:00:00Z' }, 'at in the future'],
    [{ user_id: 'ana', platform: 'slack', kind: 'active' }, 'no at'],
  ])('%j → 400 (%s), nothing changes', async (payload, _why) => {
    expectError(await api.call({ method: 'POST', url: '/v1/signals', payload }), 400, 'invalid_request');
    expect(changes).toEqual([]);
  });

  it('an unknown user or unlinked account → 404', async () => {
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/signals',
        payload: { user_id: 'zed', platform: 'slack', kind: 'active', at: iso() },
      }),
      404,
      'not_found',
    );
    expectError(
      await api.call({
        method: 'POST',
        url: '/v1/signals',
        payload: { platform: 'slack', external_id: 'nobody', kind: 'active', at: iso() },
      }),
      404,
      'not_found',
    );
    expect(api.svc.engine.userCount).toBe(1);
  });

  it('needs the write scope', async () => {
    expectError(
      await api.call({ method: 'POST', url: '/v1/signals', key: api.key.read, payload: {} }),
      403,
      'forbidden',
    );
    expectError(
      await api.call({ method: 'POST', url: '/v1/signals', key: null, payload: {} }),
      401,
      'unauthorized',
    );
  });
});
