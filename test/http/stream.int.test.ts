/**
 * The stream over its real transports (a listening server, the `ws` package, node:http for SSE):
 * snapshot then diffs, subscribe/unsubscribe, resume hit and miss, bad client messages, auth,
 * the per-key connection limit, and the drain on shutdown.
 */

import type { AddressInfo } from 'node:net';

import { testApi, type TestApi } from '../helpers/http';
import { openSse, openWs } from '../helpers/stream-clients';
import { waitUntil } from '../helpers/wait';

let t: TestApi;
let base: string;
let wsBase: string;

async function start(env: Record<string, string> = {}): Promise<void> {
  t = await testApi(env);
  await t.svc.app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = t.svc.app.server.address() as AddressInfo;
  base = `http://127.0.0.1:${port}`;
  wsBase = `ws://127.0.0.1:${port}`;
}

const auth = (key: string) => ({ authorization: `Bearer ${key}` });
const beat = (user: string, status: 'online' | 'busy' | 'away' = 'online') =>
  t.svc.engine.heartbeat(user, 'laptop', status, null, 3_600_000);

afterEach(async () => {
  await t.close();
});

describe('WebSocket stream', () => {
  beforeEach(() => start());

  it('sends a snapshot, then a presence message per change of the watched ids, with positions', async () => {
    await beat('alice');
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice,ghost`, auth(t.key.read));
    const snap = await c.next((m) => m.type === 'snapshot');
    expect(snap.presence.alice).toMatchObject({ user_id: 'alice', status: 'online', version: 1 });
    expect(snap.unknown).toEqual(['ghost']);
    expect(snap.position).toMatch(/^[0-9a-f]+:\d+$/);
    await beat('alice', 'busy');
    await beat('bob', 'busy'); // not watched
    const diff = await c.next((m) => m.type === 'presence');
    expect(diff).toMatchObject({
      user_id: 'alice',
      version: 2,
      previous: { status: 'online', activity: null, custom_status: null },
      current: { user_id: 'alice', status: 'busy', version: 2 },
      changed: ['status'],
    });
    const [epoch, offset] = (snap.position as string).split(':');
    expect(diff.position).toBe(`${epoch}:${Number(offset) + 1}`);
    // The same data as the presence.changed webhook.
    expect(Object.keys(diff).sort()).toEqual(
      ['type', 'user_id', 'version', 'previous', 'current', 'changed', 'position'].sort(),
    );
    await beat('alice', 'away');
    await c.next((m) => m.type === 'presence' && m.version === 3);
    expect(c.messages.filter((m) => m.user_id === 'bob')).toEqual([]);
    await c.close();
  });

  it('subscribe answers with a snapshot of the new ids; unsubscribe stops their messages', async () => {
    const c = await openWs(`${wsBase}/v1/ws`, auth(t.key.read));
    const empty = await c.next((m) => m.type === 'snapshot');
    expect(empty.presence).toEqual({});
    await beat('bob');
    c.send({ type: 'subscribe', user_ids: ['bob'] });
    const snap = await c.next((m) => m.type === 'snapshot' && 'bob' in m.presence, 'snapshot of bob');
    expect(snap.presence.bob.status).toBe('online');
    await beat('bob', 'busy');
    await c.next((m) => m.type === 'presence' && m.user_id === 'bob');
    c.send({ type: 'unsubscribe', user_ids: ['bob'] });
    c.send({ type: 'ping' }); // answered after the unsubscribe was handled
    await c.next((m) => m.type === 'pong');
    await beat('bob', 'away');
    c.send({ type: 'ping' });
    await c.next(
      (m, i = c.messages.indexOf(m)) =>
        m.type === 'pong' && i > c.messages.findIndex((x) => x.type === 'pong'),
    );
    expect(c.messages.filter((m) => m.type === 'presence')).toHaveLength(1);
    expect(t.svc.stream.hub.subscriptions).toBe(0);
    await c.close();
  });

  it('resume: every missed change of the watched ids in order, then resumed; a lost position is a fresh snapshot', async () => {
    await beat('alice');
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice`, auth(t.key.read));
    const snap = await c.next((m) => m.type === 'snapshot');
    await c.close();
    await beat('alice', 'busy');
    await beat('carol', 'busy');
    await beat('alice', 'away');
    const again = await openWs(`${wsBase}/v1/ws?user_ids=alice&since=${snap.position}`, auth(t.key.read));
    const resumed = await again.next((m) => m.type === 'resumed');
    expect(resumed.recovered).toBe(true);
    expect(again.messages.map((m) => [m.type, m.version])).toEqual([
      ['presence', 2],
      ['presence', 3],
      ['resumed', undefined],
    ]);
    // The resume message on an open connection; a position of another epoch is a miss.
    again.send({ type: 'resume', since: 'feedbeef:1' });
    const fresh = await again.next((m) => m.type === 'snapshot');
    expect(fresh).toMatchObject({ recovered: false, presence: { alice: { version: 3, status: 'away' } } });
    await again.close();
    expect(t.svc.stream.hub.stats).toMatchObject({ resumeHits: 1, resumeMisses: 1 });
  });

  it('resume with user_ids (ids too many for a URL): watches them and replays their missed changes', async () => {
    await beat('alice');
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice`, auth(t.key.read));
    const snap = await c.next((m) => m.type === 'snapshot');
    await c.close();
    await beat('alice', 'busy');
    await beat('carol', 'busy');
    const bare = await openWs(`${wsBase}/v1/ws`, auth(t.key.read));
    bare.send({ type: 'resume', since: snap.position, user_ids: ['alice'] });
    await bare.next((m) => m.type === 'resumed');
    // The connection's own (empty) snapshot, then the replay of the ids the resume named.
    expect(bare.messages[0]).toMatchObject({ type: 'snapshot', presence: {} });
    expect(bare.messages.slice(1).map((m) => [m.type, m.user_id, m.version])).toEqual([
      ['presence', 'alice', 2],
      ['resumed', undefined, undefined],
    ]);
    await beat('alice', 'away');
    expect(await bare.next((m) => m.type === 'presence' && m.version === 3)).toMatchObject({
      user_id: 'alice',
    });
    await bare.close();
  });

  it('a bad message gets an error with the REST error body; the connection stays and nothing changes', async () => {
    const c = await openWs(`${wsBase}/v1/ws?user_ids=alice`, auth(t.key.read));
    await c.next((m) => m.type === 'snapshot');
    const bad = [
      'not json',
      { type: 'dance' },
      { type: 'subscribe', user_ids: ['ok', 'bad id!'] },
      { type: 'subscribe', user_ids: ['x'], extra: 1 },
      { type: 'subscribe', user_ids: ['x'], coalesce_ms: 9000 },
      { type: 'subscribe', user_ids: Array.from({ length: 10_001 }, (_, i) => `u${i}`) },
      { type: 'identify', user_id: 'alice', device_id: 'phone' }, // read-only key
      { type: 'status', status: 'busy' }, // before identify
    ];
    for (const m of bad) c.send(m);
    await c.next(
      (m) => m.type === 'error' && c.messages.filter((x) => x.type === 'error').length === bad.length,
    );
    const errors = c.messages.filter((m) => m.type === 'error');
    for (const e of errors) {
      expect(Object.keys(e.error).sort()).toEqual(['code', 'details', 'message', 'request_id']);
      expect(typeof e.error.message).toBe('string');
    }
    expect(errors.map((e) => e.error.code)).toEqual([
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'invalid_request',
      'forbidden',
      'invalid_request',
    ]);
    expect(errors[2].error.details[0].path).toEqual(['user_ids', 1]);
    expect([...t.svc.stream.hub.subscribersOf('alice')!].map((s) => [...s.watching.keys()])).toEqual([
      ['alice'],
    ]);
    expect(t.svc.engine.hasUser('alice')).toBe(false);
    c.send({ type: 'ping' });
    await c.next((m) => m.type === 'pong');
    await c.close();
  });

  it('more than 10,000 ids in all on one connection is refused, the earlier ones kept', async () => {
    const c = await openWs(`${wsBase}/v1/ws`, auth(t.key.read));
    await c.next((m) => m.type === 'snapshot');
    c.send({ type: 'subscribe', user_ids: Array.from({ length: 9_999 }, (_, i) => `u${i}`) });
    await c.next((m) => m.type === 'snapshot' && m.unknown.length === 9_999, 'the big snapshot');
    c.send({ type: 'subscribe', user_ids: ['a', 'b'] });
    const e = await c.next((m) => m.type === 'error');
    expect(e.error.message).toMatch(/at most 10000 ids/);
    expect(t.svc.stream.hub.subscriptions).toBe(9_999);
    await c.close();
  });
});

describe('stream metrics', () => {
  beforeEach(() => start());

  it('/metrics counts connections, subscriptions, messages sent and resume hits and misses', async () => {
    const metric = async (name: string): Promise<number> => {
      const text = (await t.call({ method: 'GET', url: '/metrics', key: null })).body;
      const line = text.split('\n').find((l) => l.startsWith(`${name} `));
      return Number(line?.split(' ')[1]);
    };
    expect(await metric('stream_connections')).toBe(0);
    const c = await openWs(`${wsBase}/v1/ws?user_ids=a,b`, auth(t.key.read));
    await c.next((m) => m.type === 'snapshot');
    expect(await metric('stream_connections')).toBe(1);
    expect(await metric('stream_subscriptions')).toBe(2);
    await beat('a');
    await c.next((m) => m.type === 'presence');
    expect(await metric('stream_messages_sent_total')).toBe(2);
    c.send({ type: 'resume', since: 'nope:1' });
    await c.next((m) => m.type === 'snapshot' && m.recovered === false);
    expect(await metric('stream_resume_misses_total')).toBe(1);
    expect(await metric('stream_resume_hits_total')).toBe(0);
    await c.close();
    await waitUntil(() => t.svc.stream.hub.connections === 0, 'the close seen');
    expect(await metric('stream_connections')).toBe(0);
    expect(await metric('stream_subscriptions')).toBe(0);
  });
});

describe('SSE stream', () => {
  beforeEach(() => start());

  it('sends event: snapshot, then event: presence with id: <position>', async () => {
    await beat('alice');
    const s = await openSse(`${base}/v1/stream?user_ids=alice`, auth(t.key.read));
    expect(s.status).toBe(200);
    expect(s.headers['content-type']).toMatch(/^text\/event-stream/);
    const snap = await s.next((e) => e.event === 'snapshot');
    expect(snap.data).toMatchObject({ type: 'snapshot', presence: { alice: { status: 'online' } } });
    await beat('alice', 'busy');
    const diff = await s.next((e) => e.event === 'presence');
    expect(diff.id).toBe(diff.data.position);
    expect(diff.data).toMatchObject({ user_id: 'alice', version: 2, current: { status: 'busy' } });
    s.close();
  });

  it('resumes from Last-Event-ID: the missed changes, then resumed; from a lost position: recovered false', async () => {
    await beat('alice');
    const s = await openSse(`${base}/v1/stream?user_ids=alice`, auth(t.key.read));
    await beat('alice', 'busy');
    const seen = await s.next((e) => e.event === 'presence');
    s.close();
    await beat('alice', 'away');
    await beat('alice', 'online');
    const again = await openSse(`${base}/v1/stream?user_ids=alice`, {
      ...auth(t.key.read),
      'last-event-id': seen.id!,
    });
    await again.next((e) => e.event === 'resumed');
    expect(again.events.map((e) => [e.event, e.data.version])).toEqual([
      ['presence', 3],
      ['presence', 4],
      ['resumed', undefined],
    ]);
    again.close();
    const lost = await openSse(`${base}/v1/stream?user_ids=alice&since=0000:1`, auth(t.key.read));
    const snap = await lost.next((e) => e.event === 'snapshot');
    expect(snap.data.recovered).toBe(false);
    lost.close();
  });

  it('refuses a bad query with the error body before any event', async () => {
    const s = await openSse(`${base}/v1/stream?user_ids=bad%20id`, auth(t.key.read));
    expect(s.status).toBe(400);
    const none = await openSse(`${base}/v1/stream`, auth(t.key.read));
    expect(none.status).toBe(400);
    const coalesce = await openSse(`${base}/v1/stream?user_ids=a&coalesce_ms=5001`, auth(t.key.read));
    expect(coalesce.status).toBe(400);
  });
});

describe('stream auth and limits', () => {
  it('takes the key as a bearer header or ?access_token=; refuses none, a bad one, a key without read', async () => {
    await start();
    await expect(openWs(`${wsBase}/v1/ws`)).rejects.toMatchObject({
      status: 401,
      body: { error: { code: 'unauthorized' } },
    });
    await expect(openWs(`${wsBase}/v1/ws?access_token=nope`)).rejects.toMatchObject({ status: 401 });
    await expect(openWs(`${wsBase}/v1/ws`, auth(t.key.write))).rejects.toMatchObject({
      status: 403,
      body: { error: { code: 'forbidden' } },
    });
    await expect(openWs(`${wsBase}/v1/ws?user_ids=bad%20id`, auth(t.key.read))).rejects.toMatchObject({
      status: 400,
      body: { error: { code: 'invalid_request' } },
    });
    await expect(openWs(`${wsBase}/v1/elsewhere`, auth(t.key.read))).rejects.toMatchObject({ status: 404 });
    const byToken = await openWs(`${wsBase}/v1/ws?access_token=${encodeURIComponent(t.key.read)}`);
    await byToken.next((m) => m.type === 'snapshot');
    await byToken.close();
    expect((await openSse(`${base}/v1/stream?user_ids=a`)).status).toBe(401);
    const sse = await openSse(`${base}/v1/stream?user_ids=a&access_token=${encodeURIComponent(t.key.read)}`);
    expect(sse.status).toBe(200);
    sse.close();
    // A plain GET of the WebSocket route says what it needs.
    const plain = await t.call({ method: 'GET', url: '/v1/ws', key: t.key.read });
    expect(plain.statusCode).toBe(400);
    expect(t.json(plain).error.message).toMatch(/WebSocket upgrade/);
  });

  it('limits the connections one key holds open (PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY)', async () => {
    await start({ PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY: '2' });
    const a = await openWs(`${wsBase}/v1/ws`, auth(t.key.read));
    const b = await openSse(`${base}/v1/stream?user_ids=x`, auth(t.key.read));
    await expect(openWs(`${wsBase}/v1/ws`, auth(t.key.read))).rejects.toMatchObject({
      status: 429,
      body: { error: { code: 'rate_limited' } },
    });
    expect((await openSse(`${base}/v1/stream?user_ids=x`, auth(t.key.read))).status).toBe(429);
    const other = await openWs(`${wsBase}/v1/ws`, auth(t.key.all)); // another key
    await other.close();
    await a.close();
    await (async () => {
      const c = await openWs(`${wsBase}/v1/ws`, auth(t.key.read)); // a slot is free again
      await c.close();
    })();
    b.close();
  });

  it('on shutdown, tells every client to reconnect (WS close 1012, SSE event: reconnect)', async () => {
    await start();
    const ws = await openWs(`${wsBase}/v1/ws`, auth(t.key.read));
    const sse = await openSse(`${base}/v1/stream?user_ids=a`, auth(t.key.read));
    await sse.next((e) => e.event === 'snapshot');
    await t.svc.app.close();
    expect((await ws.closed).code).toBe(1012);
    await sse.ended;
    expect(sse.events.at(-1)?.event).toBe('reconnect');
  });

  it('while draining, a new connection is refused with 503 and Retry-After', async () => {
    await start();
    t.svc.stream.drain();
    await expect(openWs(`${wsBase}/v1/ws`, auth(t.key.read))).rejects.toMatchObject({
      status: 503,
      body: { error: { code: 'unavailable' } },
    });
    const sse = await openSse(`${base}/v1/stream?user_ids=a`, auth(t.key.read));
    expect(sse.status).toBe(503);
    expect(sse.headers['retry-after']).toBe('1');
  });
});
