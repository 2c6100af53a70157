/**
 * Stream workers (PRESENCE_STREAM_WORKERS) in the real `bin/presence.js serve` process: the
 * connections live in the worker processes (killing the workers cuts them), snapshot then diffs
 * through them, the client library resuming every missed change when its worker dies, the key's
 * connection counts and the device a dead worker held given back, and the workers started again.
 */

import { readFileSync } from 'node:fs';

import WebSocket from 'ws';

import type { WebSocketConstructor } from '../../src/client';
import type { Presence } from '../../src/types';
import {
  heartbeatVia,
  presenceClients,
  processAlive,
  startServe,
  until,
  type ServeProcess,
} from './serve-process';

jest.setTimeout(180_000);

const Ws = WebSocket as unknown as WebSocketConstructor;
const MAX_PER_KEY = 6;
let serve: ServeProcess;
const { client, closeAll } = presenceClients(() => serve, {
  WebSocket: Ws,
  reconnect: { minMs: 50, maxMs: 300 },
});
const beat = (user: string, status: string): Promise<void> => heartbeatVia(serve, user, status);

/** The serve process's children: its stream workers. */
const workerPids = (): number[] => {
  const pid = serve.child.pid!;
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
    .trim()
    .split(/\s+/)
    .filter((s) => s !== '')
    .map(Number);
};

const metric = async (name: string): Promise<number> => {
  const text = await (await fetch(`${serve.base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? Number.NaN : Number(line.split(' ')[1]);
};

/** Opens a raw WebSocket on the key; resolves with its first message, or the refusal's status. */
const rawOpen = (ids: string): Promise<{ ws: WebSocket; status: number; first: any }> =>
  new Promise((done) => {
    const ws = new WebSocket(`${serve.base.replace('http', 'ws')}/v1/ws?user_ids=${ids}`, {
      headers: { authorization: `Bearer ${serve.key}` },
    });
    ws.once('message', (d: Buffer) => done({ ws, status: 101, first: JSON.parse(d.toString()) }));
    ws.once('unexpected-response', (_req, res) => done({ ws, status: res.statusCode ?? 0, first: null }));
  });

/** Opens a raw WebSocket with `query` and collects its messages up to the one `last` picks. */
const collect = (query: string, last: (m: any) => boolean): Promise<any[]> =>
  new Promise((done) => {
    const ws = new WebSocket(`${serve.base.replace('http', 'ws')}/v1/ws?${query}`, {
      headers: { authorization: `Bearer ${serve.key}` },
    });
    const got: any[] = [];
    ws.on('message', (d: Buffer) => {
      const m = JSON.parse(d.toString());
      got.push(m);
      if (!last(m)) return;
      ws.terminate();
      done(got);
    });
  });

beforeEach(async () => {
  serve = await startServe({
    env: {
      PRESENCE_STREAM_WORKERS: '2',
      PRESENCE_DEVICE_GRACE_MS: '500',
      PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY: String(MAX_PER_KEY),
      // One test changes a user as fast as the service takes it.
      PRESENCE_RATE_LIMIT: '1000000',
    },
  });
});

afterEach(async () => {
  closeAll();
  await serve.stop();
});

describe('presence serve with two stream workers', () => {
  it('holds API keys connections in the workers: snapshot then diffs, and /metrics counts them', async () => {
    expect(workerPids()).toHaveLength(2);
    await until(async () => (await metric('stream_workers')) === 2, 'two workers running');
    await beat('alice', 'online');
    const watchers = [0, 1, 2, 3].map(() => client({ userIds: ['alice', 'bob'] }));
    const synced = watchers.map(() => 0);
    watchers.forEach((c, k) => c.onSync(() => (synced[k] = synced[k]! + 1)));
    for (const c of watchers) c.connect();
    await until(() => synced.every((n) => n === 1), 'every watcher in sync');
    expect(watchers.map((c) => c.presence.get('alice')?.status)).toEqual([
      'online',
      'online',
      'online',
      'online',
    ]);
    await beat('bob', 'busy');
    await beat('alice', 'away');
    await until(
      () =>
        watchers.every(
          (c) => c.presence.get('bob')?.status === 'busy' && c.presence.get('alice')?.status === 'away',
        ),
      'every watcher has both changes',
    );
    await until(async () => (await metric('stream_connections')) === 4, 'four connections counted');
    expect(await metric('stream_subscriptions')).toBe(8);

    // The connections are in the workers: with both killed, every client loses its connection.
    const lost = watchers.map(() => 0);
    watchers.forEach((c, k) => c.onSync(() => (lost[k] = lost[k]! + 1)));
    for (const pid of workerPids()) process.kill(pid, 'SIGKILL');
    await until(() => lost.every((n) => n >= 1), 'every watcher cut off and in sync again');
    await until(async () => (await metric('stream_workers')) === 2, 'the workers started again');
    expect(await metric('stream_worker_restarts_total')).toBe(2);
  });

  it('a worker dying: its clients resume every missed change in order, its key counts and its device are given back', async () => {
    await until(async () => (await metric('stream_workers')) === 2, 'two workers running');
    for (const u of ['u1', 'u2', 'u3']) await beat(u, 'online');
    const watcher = client({ userIds: ['u1', 'u2', 'u3'] });
    const syncs: boolean[] = [];
    const seen: string[] = [];
    watcher.onSync((recovered) => syncs.push(recovered));
    watcher.onChange((id, p: Presence | undefined) => seen.push(`${id}:${p?.status}`));
    watcher.connect();
    // A device on a raw connection, which does not come back once cut.
    const device = await rawOpen('');
    const identified = new Promise((done) =>
      device.ws.on('message', (d: Buffer) => d.toString().includes('identified') && done(null)),
    );
    device.ws.send(JSON.stringify({ type: 'identify', user_id: 'dana', device_id: 'phone' }));
    await identified;
    await until(() => syncs.length === 1, 'the watcher in sync');
    const get = async (id: string) => (await serve.api('GET', `/v1/presence/${id}`)).body;
    await until(async () => (await get('dana')).status === 'online', 'dana online through her connection');
    // Four more connections take the key to its limit; one more is refused.
    const extra = await Promise.all([0, 1, 2, 3].map(() => rawOpen('u1')));
    expect(extra.map((e) => e.first?.type)).toEqual(['snapshot', 'snapshot', 'snapshot', 'snapshot']);
    expect((await rawOpen('u1')).status).toBe(429);
    seen.length = 0;

    // Both workers die (neither process keeps a connection); changes are made while the clients are away.
    for (const pid of workerPids()) process.kill(pid, 'SIGKILL');
    await beat('u1', 'busy');
    await beat('u2', 'away');
    await beat('u1', 'idle');
    await until(() => syncs.length >= 2, 'the watcher back');
    expect(syncs[1]).toBe(true); // resumed from the log: nothing missed
    await until(() => seen.length >= 3, 'the missed changes');
    expect(seen).toEqual(['u1:busy', 'u2:away', 'u1:idle']);
    expect(watcher.presence.get('u3')?.status).toBe('online');

    // The dead workers' connections were given back: the key may open as many as before.
    for (const e of [...extra, device]) e.ws.terminate();
    await until(async () => (await metric('stream_workers')) === 2, 'the workers started again');
    const again = await Promise.all([0, 1, 2, 3].map(() => rawOpen('u2')));
    expect(again.map((e) => e.first?.type)).toEqual(['snapshot', 'snapshot', 'snapshot', 'snapshot']);
    for (const e of again) e.ws.terminate();
    // A resume in a (new) worker: every change after the position, in order, then `resumed`.
    await beat('u3', 'away');
    await until(() => watcher.presence.get('u3')?.status === 'away', 'a change after the restart');
    const since = watcher.lastPosition!;
    await beat('u2', 'busy');
    await beat('u3', 'online');
    const resumed = await collect(`user_ids=u2,u3&since=${since}`, (m) => m.type === 'resumed');
    expect(resumed.map((m) => `${m.type}:${m.user_id ?? ''}:${m.current?.status ?? ''}`)).toEqual([
      'presence:u2:busy',
      'presence:u3:online',
      'resumed::',
    ]);
    const missed = await collect('user_ids=u2&since=gone:1', (m) => m.type === 'snapshot');
    expect(missed).toEqual([expect.objectContaining({ type: 'snapshot', recovered: false })]);
    expect(missed[0].presence.u2.status).toBe('busy');
    // And the device the dead worker held went offline one grace later.
    await until(async () => (await get('dana')).status === 'offline', 'dana offline after the grace');
    expect(serve.logs.some((l) => l.includes('a stream worker exited'))).toBe(true);
    expect(serve.logs.join('\n')).not.toContain(serve.key);
  });

  it('while a user changes without pause, every snapshot and resume in a worker is followed by each later version once, in order', async () => {
    await until(async () => (await metric('stream_workers')) === 2, 'two workers running');
    let changing = true;
    const churn = (async () => {
      for (let i = 0; changing; i++) await beat('flip', i % 2 === 0 ? 'online' : 'busy');
    })();
    // The connections wait for changes: should the changes stop (a refused heartbeat), fail now.
    const changed = <T>(waiting: Promise<T>): Promise<T> =>
      Promise.race([waiting, churn.then(() => Promise.reject(new Error('the changes stopped')))]);
    /** The versions of `flip` a connection saw, less `from`: 1, 2, 3… when none is missed or repeated. */
    const versionsAfter = (got: any[], from: number): number[] =>
      got.filter((m) => m.type === 'presence' && m.user_id === 'flip').map((m) => m.version - from);
    /** A connection held until it has seen at least three changes of `flip` (and its first answer). */
    const watch = (query: string): Promise<any[]> =>
      new Promise((done, fail) => {
        const ws = new WebSocket(`${serve.base.replace('http', 'ws')}/v1/ws?${query}`, {
          headers: { authorization: `Bearer ${serve.key}` },
        });
        ws.on('error', fail);
        const got: any[] = [];
        ws.on('message', (d: Buffer) => {
          got.push(JSON.parse(d.toString()));
          if (versionsAfter(got, 0).length < 3) return;
          ws.terminate();
          done(got);
        });
      });
    try {
      await until(async () => (await serve.api('GET', '/v1/presence/flip')).status === 200, 'flip exists');
      const seen = await changed(
        // Five at once (the key's limit here is six), while the user changes.
        Promise.all(Array.from({ length: 5 }, () => watch('user_ids=flip'))),
      );
      for (const got of seen) {
        expect(got[0]).toMatchObject({ type: 'snapshot' });
        const v0 = got[0].presence.flip.version as number;
        const after = versionsAfter(got, v0);
        expect(after).toEqual(after.map((_, i) => i + 1)); // 1, 2, 3 (a frame may bring one more)
      }
      // Resumes from the last position each connection saw: each replay starts right after it
      // (once the closed connections are given back: the key may hold six).
      await until(async () => (await metric('stream_connections')) === 0, 'the connections closed');
      await Promise.all(
        seen.map(async (got) => {
          const last = got.filter((m) => m.type === 'presence').at(-1);
          const resumed = await changed(watch(`user_ids=flip&since=${last.position}`));
          expect(resumed.some((m) => m.type === 'resumed')).toBe(true);
          const after = versionsAfter(resumed, last.version as number);
          expect(after).toEqual(after.map((_, i) => i + 1));
        }),
      );
    } finally {
      changing = false;
      await churn;
    }
  });

  it('shutdown: the workers tell their clients to reconnect (1012) and exit with the service', async () => {
    await until(async () => (await metric('stream_workers')) === 2, 'two workers running');
    const pids = workerPids();
    const opened = await Promise.all([0, 1].map(() => rawOpen('u1')));
    const codes = opened.map((o) => new Promise<number>((done) => o.ws.on('close', (code) => done(code))));
    serve.child.kill('SIGTERM');
    expect(await Promise.all(codes)).toEqual([1012, 1012]);
    expect(await serve.exited).toBe(0);
    await until(() => pids.every((pid) => !processAlive(pid)), 'the workers gone');
  });
});
