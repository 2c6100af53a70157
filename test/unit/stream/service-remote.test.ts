/**
 * StreamService as a stream worker runs it (the `remote` option): a WebSocket client's messages
 * run in order per connection, and a subscribe or resume (and the connection's first answer)
 * first loads what the hub will read from the main process, the hub call running only when the
 * load is answered. The loader here is a fake the test answers, shaped like the worker's
 * RemoteReader: while an answer is being taken, it reads the loaded body for exactly the loaded
 * ids and the loaded versions, and nothing at any other time.
 */

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';

import type { WebSocket } from 'ws';

import { FakeClock } from '../../../src/core/clock';
import { AppError } from '../../../src/core/errors';
import type { PresenceReader } from '../../../src/stream/hub';
import type { StreamQuery } from '../../../src/stream/protocol';
import {
  StreamService,
  type DeviceSessions,
  type SnapshotLoader,
  type StreamCaller,
} from '../../../src/stream/service';
import { ManualTimers } from '../../helpers/stream-fakes';

/** One user's presence as the main process's engine holds it. */
interface Held {
  readonly version: number;
  readonly status: string;
}

interface LoadRequest {
  readonly ids: readonly string[];
  readonly done: (error: Error | null) => void;
  answered: boolean;
}

/** A worker's reader and loader in one, like RemoteReader: reads only what the pending answer loaded. */
class FakeLoader implements PresenceReader, SnapshotLoader {
  readonly requests: LoadRequest[] = [];
  /** Reads made outside an answer, or of other ids than the ones loaded (the worker throws there). */
  readonly misreads: string[][] = [];
  private loaded: { ids: readonly string[]; body: Buffer; versions: Map<string, number> } | null = null;

  load(ids: readonly string[], done: (error: Error | null) => void): void {
    this.requests.push({ ids: [...ids], done, answered: false });
  }

  /** The oldest request not answered yet. */
  get pending(): LoadRequest | undefined {
    return this.requests.find((r) => !r.answered);
  }

  /** Answers the oldest pending load as the main process would, from its engine's state. */
  answer(state: ReadonlyMap<string, Held>): void {
    const r = this.take();
    const presence: Record<string, unknown> = {};
    const unknown: string[] = [];
    const versions = new Map<string, number>();
    for (const id of r.ids) {
      const s = state.get(id);
      versions.set(id, s?.version ?? 0);
      if (s === undefined) unknown.push(id);
      else presence[id] = { user_id: id, status: s.status, activity: null, version: s.version };
    }
    this.loaded = { ids: r.ids, body: Buffer.from(JSON.stringify({ presence, unknown })), versions };
    try {
      r.done(null);
    } finally {
      this.loaded = null;
    }
  }

  /** Answers the oldest pending load with an error (the main process could not read). */
  fail(error: Error): void {
    this.take().done(error);
  }

  private take(): LoadRequest {
    const r = this.pending;
    if (r === undefined) throw new Error('no load is pending');
    r.answered = true;
    return r;
  }

  getManyJson(ids: readonly string[]): Buffer {
    const l = this.loaded;
    if (l === null || l.ids.length !== ids.length || l.ids.some((id, k) => id !== ids[k])) {
      this.misreads.push([...ids]);
      throw new Error('a stream worker read presence it had not loaded first');
    }
    return l.body;
  }

  state(userId: string): { readonly version: number } | undefined {
    const version = this.loaded?.versions.get(userId);
    return version === undefined ? undefined : { version };
  }
}

/** What a WebSocket connection's socket was written: unmasked text frames, several to a write. */
class FakeSocket {
  readonly chunks: Buffer[] = [];

  write(chunk: Buffer, cb?: () => void): boolean {
    this.chunks.push(Buffer.from(chunk));
    cb?.();
    return true;
  }

  /** Every message written so far, parsed from the frames. */
  messages(): any[] {
    const all = Buffer.concat(this.chunks);
    const out: any[] = [];
    let at = 0;
    while (at < all.length) {
      expect(all[at]).toBe(0x81); // FIN, text
      const n = all[at + 1]!;
      let header = 2;
      let length = n;
      if (n === 126) {
        header = 4;
        length = all.readUInt16BE(at + 2);
      } else if (n === 127) {
        header = 10;
        length = all.readUInt32BE(at + 6);
      }
      out.push(JSON.parse(all.toString('utf8', at + header, at + header + length)));
      at += header + length;
    }
    return out;
  }
}

class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  pings = 0;
  closedWith: [number | undefined, string | undefined] | null = null;
  terminated = false;

  ping(): void {
    this.pings += 1;
  }

  close(code?: number, reason?: string): void {
    this.closedWith = [code, reason];
  }

  terminate(): void {
    this.terminated = true;
  }

  /** A client's message, as `ws` delivers a text frame. */
  send(message: Record<string, unknown>): void {
    this.emit('message', Buffer.from(JSON.stringify(message)), false);
  }
}

const quietDevices: DeviceSessions = {
  connected: 0,
  hold: () => Promise.resolve(),
  update: () => Promise.resolve(),
  alive: () => undefined,
  release: () => Promise.resolve(),
  stop: () => undefined,
  restarted: () => [],
};

/** The `presence` message JSON the main process relays, as its hub made it. */
function presenceJson(offset: number, userId: string, version: number, status: string): string {
  return JSON.stringify({
    type: 'presence',
    user_id: userId,
    version,
    previous: { status: 'online', activity: null, custom_status: null },
    current: { user_id: userId, status, activity: null, custom_status: null, version },
    changed: ['status'],
    position: `ep:${offset}`,
  });
}

function setup(hub: { maxIdsPerConnection?: number } = {}) {
  const clock = new FakeClock();
  const timers = new ManualTimers(clock);
  const loader = new FakeLoader();
  const released: string[] = [];
  const service = new StreamService({
    clock,
    timers,
    reader: loader,
    hub: { epoch: 'ep', defer: (run) => run(), ...hub },
    remote: { devices: quietDevices, loader, released: (keyId) => released.push(keyId) },
  });
  // The main process's log stood at offset 10 when the worker started.
  service.hub.restart('ep', 10);
  let offset = 10;
  /** The main process's engine state: what a load's answer carries. */
  const state = new Map<string, Held>([
    ['alice', { version: 3, status: 'online' }],
    ['bob', { version: 7, status: 'away' }],
  ]);
  /** A change the main hub logged and relayed here (`version` defaults to the next one). */
  const relay = (userId: string, status = 'busy', version?: number): number => {
    const v = version ?? (state.get(userId)?.version ?? 0) + 1;
    if (v > (state.get(userId)?.version ?? 0)) state.set(userId, { version: v, status });
    offset += 1;
    service.hub.relayed(offset, userId, v, presenceJson(offset, userId, v, status));
    return offset;
  };
  const caller: StreamCaller = { keyId: 'key-1', canWrite: false };
  const open = (query: StreamQuery = {}) => {
    const ws = new FakeWs();
    const socket = new FakeSocket();
    service.openWs(ws as unknown as WebSocket, socket as unknown as Duplex, caller, query, 'req-1');
    return { ws, socket };
  };
  return { service, loader, released, state, relay, open };
}

const presenceOf = (messages: any[]) =>
  messages.filter((m) => m.type === 'presence').map((m) => [m.user_id, m.version, m.position]);

describe('stream service in a stream worker (remote loads)', () => {
  it('the first answer waits for its load of exactly the fresh ids, then snapshots what was loaded at the current position, suppressing changes it already had', () => {
    const { service, loader, state, relay, open } = setup();
    const { socket } = open({ user_ids: ['alice', 'bob', 'alice', 'carol'] });

    expect(loader.requests.map((r) => r.ids)).toEqual([['alice', 'bob', 'carol']]);
    // A change relayed while the load is under way: the main process's answer will include it.
    relay('alice', 'busy'); // alice v4 at ep:11
    expect(socket.messages()).toEqual([]);
    expect(service.hub.subscriptions).toBe(0);

    loader.answer(state);
    expect(loader.misreads).toEqual([]);
    expect(socket.messages()).toEqual([
      {
        type: 'snapshot',
        presence: {
          alice: { user_id: 'alice', status: 'busy', activity: null, version: 4 },
          bob: { user_id: 'bob', status: 'away', activity: null, version: 7 },
        },
        unknown: ['carol'],
        position: 'ep:11',
      },
    ]);
    expect(service.hub.subscriptions).toBe(3);

    // Diff suppression against the loaded versions: not newer, not sent; newer, sent.
    relay('alice', 'away', 4); // ep:12, the version the snapshot had
    relay('bob', 'online', 6); // ep:13, older than the snapshot's
    relay('bob', 'online', 8); // ep:14
    relay('carol', 'online', 1); // ep:15, unknown before (loaded version 0)
    expect(presenceOf(socket.messages())).toEqual([
      ['bob', 8, 'ep:14'],
      ['carol', 1, 'ep:15'],
    ]);
    expect(loader.requests).toHaveLength(1);
  });

  it('an unsubscribe sent while a subscribe of the same id is loading runs after the subscribe', () => {
    const { service, loader, state, relay, open } = setup();
    const { ws, socket } = open();
    expect(loader.requests.map((r) => r.ids)).toEqual([[]]);
    loader.answer(state);
    expect(socket.messages()).toEqual([{ type: 'snapshot', presence: {}, unknown: [], position: 'ep:10' }]);

    ws.send({ type: 'subscribe', user_ids: ['bob'] });
    ws.send({ type: 'unsubscribe', user_ids: ['bob'] });
    expect(loader.requests.map((r) => r.ids)).toEqual([[], ['bob']]);
    expect(socket.messages()).toHaveLength(1);

    loader.answer(state);
    expect(loader.misreads).toEqual([]);
    expect(socket.messages().at(-1)).toEqual({
      type: 'snapshot',
      presence: { bob: { user_id: 'bob', status: 'away', activity: null, version: 7 } },
      unknown: [],
      position: 'ep:10',
    });
    // The unsubscribe ran last: bob is not watched.
    expect(service.hub.subscriptions).toBe(0);
    expect(service.hub.subscribersOf('bob')).toBeUndefined();
    relay('bob', 'online');
    expect(presenceOf(socket.messages())).toEqual([]);
    expect(loader.requests).toHaveLength(2);
    expect(ws.closedWith).toBeNull();
  });

  it('a pending resume holds live changes back, then replays every change after `since` once, in order, then resumed', () => {
    const { service, loader, state, relay, open } = setup();
    const { ws, socket } = open({ user_ids: ['alice', 'bob'] });
    loader.answer(state);
    relay('alice', 'busy'); // alice v4 at ep:11, live
    const since = socket.messages().at(-1).position as string;
    expect(since).toBe('ep:11');
    relay('bob', 'online'); // bob v8 at ep:12, live
    expect(presenceOf(socket.messages())).toEqual([
      ['alice', 4, 'ep:11'],
      ['bob', 8, 'ep:12'],
    ]);

    // The client resumes from ep:11 (say it missed ep:12) and watches carol from now on.
    ws.send({ type: 'resume', since, user_ids: ['carol'] });
    expect(loader.requests.map((r) => r.ids)).toEqual([
      ['alice', 'bob'],
      ['alice', 'bob', 'carol'],
    ]);
    relay('alice', 'away'); // v5 at ep:13
    relay('dave', 'online'); // ep:14, not watched
    relay('bob', 'busy'); // v9 at ep:15
    relay('carol', 'online'); // v1 at ep:16
    relay('alice', 'online'); // v6 at ep:17
    // Nothing live while the resume waits: it replays these from the log.
    const before = socket.messages().length;
    expect(before).toBe(3);

    loader.answer(state);
    expect(loader.misreads).toEqual([]);
    const got = socket.messages().slice(before);
    expect(got.map((m) => [m.type, m.user_id, m.version, m.position])).toEqual([
      ['presence', 'bob', 8, 'ep:12'],
      ['presence', 'alice', 5, 'ep:13'],
      ['presence', 'bob', 9, 'ep:15'],
      ['presence', 'carol', 1, 'ep:16'],
      ['presence', 'alice', 6, 'ep:17'],
      ['resumed', undefined, undefined, 'ep:17'],
    ]);
    expect(got.at(-1)).toEqual({ type: 'resumed', recovered: true, position: 'ep:17' });
    expect(service.hub.stats.resumeHits).toBe(1);
    expect(service.hub.subscriptions).toBe(3);

    // Live again after it, once per change.
    relay('carol', 'away'); // v2 at ep:18
    relay('alice', 'busy'); // v7 at ep:19
    expect(presenceOf(socket.messages().slice(before + got.length))).toEqual([
      ['carol', 2, 'ep:18'],
      ['alice', 7, 'ep:19'],
    ]);
  });

  it('a resume the log cannot answer is a snapshot of every watched id as loaded, at the current position', () => {
    const { service, loader, state, relay, open } = setup();
    const { ws, socket } = open({ user_ids: ['alice'] });
    loader.answer(state);
    ws.send({ type: 'resume', since: 'other-epoch:3', user_ids: ['bob'] });
    expect(loader.pending?.ids).toEqual(['alice', 'bob']);
    relay('alice', 'busy'); // v4 at ep:11: held back; the snapshot will hold it
    expect(socket.messages()).toHaveLength(1);

    loader.answer(state);
    expect(loader.misreads).toEqual([]);
    expect(socket.messages().slice(1)).toEqual([
      {
        type: 'snapshot',
        presence: {
          alice: { user_id: 'alice', status: 'busy', activity: null, version: 4 },
          bob: { user_id: 'bob', status: 'away', activity: null, version: 7 },
        },
        unknown: [],
        position: 'ep:11',
        recovered: false,
      },
    ]);
    expect(service.hub.stats.resumeMisses).toBe(1);
    relay('alice', 'away', 4); // not newer than the snapshot's
    relay('bob', 'online'); // v8
    expect(presenceOf(socket.messages())).toEqual([['bob', 8, 'ep:13']]);
  });

  it('a load answered with an error is an error message; the connection stays and the messages behind it run', () => {
    const { service, loader, state, relay, open } = setup();
    const { ws, socket } = open({ user_ids: ['alice'] });
    loader.answer(state);

    ws.send({ type: 'subscribe', user_ids: ['bob'] });
    ws.send({ type: 'unsubscribe', user_ids: ['alice'] }); // queued behind the failing load
    loader.fail(new AppError('invalid_request', 'the main process could not read bob'));
    expect(socket.messages().slice(1)).toEqual([
      {
        type: 'error',
        error: {
          code: 'invalid_request',
          message: 'the main process could not read bob',
          request_id: 'req-1',
          details: [],
        },
      },
    ]);
    expect(ws.closedWith).toBeNull();
    expect(ws.terminated).toBe(false);
    // The subscribe changed nothing; the unsubscribe behind it ran.
    expect(service.hub.subscriptions).toBe(0);
    expect(service.hub.subscribersOf('alice')).toBeUndefined();

    // Later messages still run.
    ws.send({ type: 'subscribe', user_ids: ['bob'] });
    expect(loader.pending?.ids).toEqual(['bob']);
    loader.answer(state);
    expect(socket.messages().at(-1)).toMatchObject({ type: 'snapshot', unknown: [], position: 'ep:10' });
    expect(Object.keys(socket.messages().at(-1).presence)).toEqual(['bob']);
    relay('bob', 'online'); // v8 at ep:11
    relay('alice', 'busy'); // not watched any more
    expect(presenceOf(socket.messages())).toEqual([['bob', 8, 'ep:11']]);

    // An error that is not an AppError is answered as `internal`.
    ws.send({ type: 'subscribe', user_ids: ['carol'] });
    loader.fail(new Error('the channel broke'));
    expect(socket.messages().at(-1)).toMatchObject({ type: 'error', error: { code: 'internal' } });
    expect(service.hub.subscribersOf('carol')).toBeUndefined();
  });

  it('a resume whose load fails: an error, then a close with resync, since the changes held back meanwhile were not sent', () => {
    const { loader, state, relay, open } = setup();
    const { ws, socket } = open({ user_ids: ['alice'] });
    loader.answer(state);
    ws.send({ type: 'resume', since: 'ep:10' });
    expect(loader.pending?.ids).toEqual(['alice']);
    relay('alice', 'busy'); // v4 at ep:11, held back for the resume
    loader.fail(new AppError('unavailable', 'the main process is restarting'));
    expect(socket.messages().at(-1)).toMatchObject({ type: 'error', error: { code: 'unavailable' } });
    // Going on live would skip the change held back: the client is told to resume again instead.
    expect(ws.closedWith).toEqual([4008, 'resync']);
    expect(presenceOf(socket.messages())).toEqual([]);
  });

  it('a connection that closes while its load is pending: the answer adds nothing, and its key is released', () => {
    const { service, loader, released, state, relay, open } = setup();
    const { ws, socket } = open({ user_ids: ['alice', 'bob'] });
    ws.send({ type: 'subscribe', user_ids: ['carol'] }); // queued behind the first answer
    expect(loader.requests).toHaveLength(1);
    expect(service.hub.connections).toBe(1);

    ws.emit('close', 1000, Buffer.from(''));
    expect(released).toEqual(['key-1']);
    expect(service.hub.connections).toBe(0);

    loader.answer(state);
    expect(loader.misreads).toEqual([]);
    expect(socket.messages()).toEqual([]);
    expect(service.hub.subscriptions).toBe(0);
    for (const id of ['alice', 'bob', 'carol'])
      expect(service.hub.subscribersOf(id) ?? new Set()).toEqual(new Set());
    // The subscribe queued behind it is not loaded for a closed connection.
    expect(loader.requests).toHaveLength(1);
    relay('alice', 'busy');
    expect(socket.messages()).toEqual([]);
    expect(released).toEqual(['key-1']);
  });

  it('more ids than a connection may watch: an error, and nothing is loaded', () => {
    const { service, loader, state, relay, open } = setup({ maxIdsPerConnection: 3 });
    const { ws, socket } = open({ user_ids: ['a', 'b', 'c', 'd'] });
    expect(loader.requests).toEqual([]);
    expect(socket.messages()).toEqual([
      {
        type: 'error',
        error: expect.objectContaining({
          code: 'invalid_request',
          message: expect.stringMatching(/at most 3 ids/),
        }),
      },
    ]);
    expect(service.hub.subscriptions).toBe(0);

    // The connection stays: a subscribe within the limit loads and runs.
    ws.send({ type: 'subscribe', user_ids: ['alice', 'bob'] });
    expect(loader.requests.map((r) => r.ids)).toEqual([['alice', 'bob']]);
    loader.answer(state);
    expect(socket.messages().at(-1)).toMatchObject({ type: 'snapshot' });

    ws.send({ type: 'subscribe', user_ids: ['c', 'd'] });
    ws.send({ type: 'resume', since: 'ep:10', user_ids: ['c', 'd'] });
    expect(loader.requests).toHaveLength(1);
    const errors = socket.messages().filter((m) => m.type === 'error');
    expect(errors).toHaveLength(3);
    expect(errors.every((m) => /at most 3 ids/.test(m.error.message))).toBe(true);
    expect([...service.hub.subscribersOf('alice')!]).toHaveLength(1);
    expect(service.hub.subscriptions).toBe(2);
    // The refused resume did not hold live changes back.
    relay('alice', 'busy');
    expect(presenceOf(socket.messages())).toEqual([['alice', 4, 'ep:11']]);
  });
});
