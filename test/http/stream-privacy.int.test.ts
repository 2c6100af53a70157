/**
 * The stream with viewer tokens, over its real transports: snapshots and changes through the
 * privacy projection, an invisible change sends nothing, a change of privacy reaches open streams
 * at once (`presence` or `hidden`), and a viewer is only its own user's devices.
 */

import type { AddressInfo } from 'node:net';

import { testApi, type TestApi } from '../helpers/http';
import { openSse, openWs } from '../helpers/stream-clients';

let t: TestApi;
let wsBase: string;
let base: string;

const beat = (
  user: string,
  status: 'online' | 'busy' | 'away' = 'online',
  activity: 'in_meeting' | null = null,
) => t.svc.engine.heartbeat(user, 'laptop', status, activity, 3_600_000);
const put = (url: string, payload: Record<string, unknown>) =>
  t.call({ method: 'PUT', url, payload, key: t.key.write });
const tokenOf = async (userId: string): Promise<string> =>
  t.json(await t.call({ method: 'POST', url: '/v1/viewer-tokens', payload: { user_id: userId } })).token;

beforeEach(async () => {
  t = await testApi();
  await t.svc.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.svc.app.server.address() as AddressInfo;
  wsBase = `ws://127.0.0.1:${port}`;
  base = `http://127.0.0.1:${port}`;
  for (const id of ['alice', 'bob', 'carol']) await beat(id);
});
afterEach(() => t.close());

describe('the stream for viewers', () => {
  it('snapshot through the projection: a hidden user is unknown, like one that does not exist', async () => {
    await put('/v1/users/alice/privacy', { presence: 'nobody' });
    await put('/v1/users/bob/privacy', { last_seen: 'nobody' });
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice,bob,ghost&access_token=${await tokenOf('carol')}`);
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(snap.unknown).toEqual(['alice', 'ghost']);
    expect(snap.presence.bob).toMatchObject({
      status: 'online',
      observed_at: null,
      last_seen_approx: 'recently',
    });
    await c.close();
  });

  it('a change invisible to the viewer sends nothing; a visible one comes reduced', async () => {
    await put('/v1/users/alice/privacy', { details: 'nobody' });
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice`, {
      authorization: `Bearer ${await tokenOf('carol')}`,
    });
    await c.next((m) => m.type === 'snapshot');
    const operator = await openWs(`${wsBase}/v1/ws?user_ids=alice`, {
      authorization: `Bearer ${t.key.read}`,
    });
    await operator.next((m) => m.type === 'snapshot');
    await beat('alice', 'online', 'in_meeting'); // activity only: hidden from Carol
    await operator.next((m) => m.type === 'presence' && m.changed.includes('activity'));
    await beat('alice', 'busy', 'in_meeting'); // the status: visible
    const diff = await c.next((m) => m.type === 'presence');
    expect(diff).toMatchObject({
      user_id: 'alice',
      changed: ['status'],
      previous: { status: 'online', activity: null },
      current: { status: 'busy', activity: null, platforms: {} },
    });
    // The activity-only change before it sent nothing at all.
    expect(c.messages.filter((m) => m.type === 'presence')).toHaveLength(1);
    await c.close();
    await operator.close();
  });

  it('a change of privacy reaches open streams at once: hidden, then back, then reduced', async () => {
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice,bob&access_token=${await tokenOf('carol')}`);
    await c.next((m) => m.type === 'snapshot');
    const hidden = c.messages.length;
    await put('/v1/users/alice/privacy', { presence: 'contacts' });
    expect(await c.next((m) => m.type === 'hidden', 'hidden', hidden)).toEqual({
      type: 'hidden',
      user_id: 'alice',
    });
    // Carol becomes Alice's contact: Alice appears again, in full.
    await t.call({ method: 'POST', url: '/v1/users/alice/contacts/carol' });
    const back = await c.next(
      (m) => m.type === 'presence' && m.user_id === 'alice',
      'alice again',
      hidden + 1,
    );
    expect(back.current).toMatchObject({ user_id: 'alice', status: 'online' });
    expect(back.current.observed_at).not.toBeNull();
    // Bob hides his last seen: reduced.
    const before = c.messages.length;
    await put('/v1/users/bob/privacy', { last_seen: 'nobody' });
    const reduced = await c.next((m) => m.type === 'presence' && m.user_id === 'bob', 'bob reduced', before);
    expect(reduced.current).toMatchObject({ observed_at: null, last_seen_approx: 'recently' });
    // A change that does not change what Carol sees sends nothing.
    const quiet = c.messages.length;
    await put('/v1/users/bob/contacts', { user_ids: ['dave'] });
    await put('/v1/users/alice/privacy', { presence: 'contacts', details: 'everyone' });
    const probe = await openWs(`${wsBase}/v1/ws?user_ids=alice&access_token=${await tokenOf('carol')}`);
    await probe.next((m) => m.type === 'snapshot');
    expect(c.messages.slice(quiet)).toEqual([]);
    await probe.close();
    await c.close();
  });

  it("the viewer's own reciprocal settings re-project what they watch", async () => {
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice&access_token=${await tokenOf('carol')}`);
    await c.next((m) => m.type === 'snapshot');
    await put('/v1/users/carol/privacy', { last_seen: 'nobody', reciprocal: true });
    const m = await c.next((x) => x.type === 'presence' && x.user_id === 'alice');
    expect(m.current).toMatchObject({ observed_at: null, last_seen_hidden_by_own_settings: true });
    await c.close();
  });

  it('over SSE with ?access_token= too', async () => {
    await put('/v1/users/alice/privacy', { presence: 'nobody' });
    const s = await openSse(`${base}/v1/stream?user_ids=alice,bob&access_token=${await tokenOf('carol')}`);
    expect(s.status).toBe(200);
    const snap = await s.next((e) => e.event === 'snapshot');
    expect(snap.data.unknown).toEqual(['alice']);
    await put('/v1/users/alice/privacy', {});
    const back = await s.next((e) => e.event === 'presence' && e.data.user_id === 'alice');
    expect(back.data.current.status).toBe('online');
    s.close();
  });

  it('identify: a viewer is only its own devices; a bad or revoked token is refused at the door', async () => {
    const token = await tokenOf('carol');
    const c = await openWs(`${wsBase}/v1/ws?access_token=${token}`);
    c.send({ type: 'identify', user_id: 'alice', device_id: 'phone' });
    const refused = await c.next((m) => m.type === 'error');
    expect(refused.error.code).toBe('forbidden');
    c.send({ type: 'identify', user_id: 'carol', device_id: 'phone' });
    await c.next((m) => m.type === 'identified');
    expect(
      t.json(await t.call({ method: 'GET', url: '/v1/presence/carol' })).platforms.device.devices,
    ).toHaveProperty('phone');
    await c.close();
    await t.call({ method: 'DELETE', url: '/v1/users/carol/viewer-tokens' });
    await expect(openWs(`${wsBase}/v1/ws?access_token=${token}`)).rejects.toMatchObject({
      status: 401,
      body: { error: { code: 'unauthorized' } },
    });
  });
});
