/**
 * @module stream/workers/worker
 * A stream worker's process (forked by pool.ts): a hub and the WebSocket connections the main
 * process hands it, fed by the main hub's relayed changes. What its subscribes and resumes read
 * and what its device connections report go to the main process over the IPC channel.
 */

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

import pino from 'pino';
import { WebSocketServer } from 'ws';

import { systemClock } from '../../core/clock';
import { AppError, type ErrorCode, type ErrorDetail } from '../../core/errors';
import type { Activity, Status } from '../../core/presence';
import type { PresenceReader } from '../hub';
import { MAX_FRAME_BYTES } from '../protocol';
import { StreamService, type DeviceSessions, type SnapshotLoader } from '../service';
import type { FromWorker, ToWorker, WireError } from './ipc';

const STATS_MS = 1000;
/** How long a drained worker waits for its clients to take the close before it exits. */
const DRAIN_EXIT_MS = 1500;

type Answer = Extract<ToWorker, { t: 'loaded' } | { t: 'done' }>;

/** Requests to the main process, each answered once, by id. */
class Channel {
  private seq = 0;
  private readonly waiting = new Map<number, (answer: Answer) => void>();

  constructor(private readonly post: (m: FromWorker) => void) {}

  send(m: FromWorker): void {
    this.post(m);
  }

  /** Sends what `make` builds with a fresh id; `answered` gets the reply, synchronously as it arrives. */
  ask(make: (id: number) => FromWorker, answered: (answer: Answer) => void): void {
    const id = ++this.seq;
    this.waiting.set(id, answered);
    this.post(make(id));
  }

  answer(m: Answer): void {
    const answered = this.waiting.get(m.id);
    if (answered === undefined) return;
    this.waiting.delete(m.id);
    answered(m);
  }
}

function appError(e: WireError): AppError {
  return new AppError(e.code as ErrorCode, e.message, e.details as ErrorDetail[]);
}

/** The presence reader of a worker: what the main process loaded for the hub's next read. */
class RemoteReader implements PresenceReader, SnapshotLoader {
  private loaded: { ids: readonly string[]; body: Buffer; versions: Map<string, number> } | null = null;

  constructor(private readonly channel: Channel) {}

  load(ids: readonly string[], done: (error: Error | null) => void): void {
    this.channel.ask(
      (id) => ({ t: 'load', id, ids }),
      (answer) => {
        if (answer.t === 'done') return done(answer.error === null ? null : appError(answer.error));
        const versions = new Map<string, number>();
        ids.forEach((u, k) => versions.set(u, answer.versions[k]!));
        this.loaded = { ids, body: Buffer.from(answer.body, 'utf8'), versions };
        try {
          done(null);
        } finally {
          this.loaded = null;
        }
      },
    );
  }

  getManyJson(ids: readonly string[]): Buffer {
    const l = this.loaded;
    if (l === null || l.ids.length !== ids.length || l.ids.some((id, k) => id !== ids[k]))
      throw new Error('a stream worker read presence it had not loaded first');
    return l.body;
  }

  state(userId: string): { readonly version: number } | undefined {
    const version = this.loaded?.versions.get(userId);
    return version === undefined ? undefined : { version };
  }
}

/** The devices a worker's connections hold, kept by the main process's DeviceConnections. */
class RemoteDevices implements DeviceSessions {
  connected = 0;

  constructor(private readonly channel: Channel) {}

  private call(
    op: 'hold' | 'update' | 'release',
    userId: string,
    deviceId: string,
    status: Status | null,
    activity: Activity | null,
  ): Promise<void> {
    return new Promise((resolve, reject) =>
      this.channel.ask(
        (id) => ({ t: 'device', id, op, userId, deviceId, status, activity }),
        (answer) => {
          if (answer.t === 'done' && answer.error !== null) reject(appError(answer.error));
          else resolve();
        },
      ),
    );
  }

  hold(userId: string, deviceId: string, status: Status, activity: Activity | null): Promise<void> {
    this.connected += 1;
    return this.call('hold', userId, deviceId, status, activity);
  }

  update(userId: string, deviceId: string, status: Status, activity: Activity | null): Promise<void> {
    return this.call('update', userId, deviceId, status, activity);
  }

  release(userId: string, deviceId: string): Promise<void> {
    this.connected -= 1;
    return this.call('release', userId, deviceId, null, null);
  }

  alive(userId: string, deviceId: string): void {
    this.channel.send({ t: 'device', id: 0, op: 'alive', userId, deviceId, status: null, activity: null });
  }

  /** The main process stops its own DeviceConnections, and cuts held devices at its start. */
  stop(): void {}

  restarted(): Promise<void>[] {
    return [];
  }
}

export function runWorker(): void {
  const log = pino({ level: process.env.LOG_LEVEL ?? 'info' }).child({
    stream_worker: process.argv[2] ?? '?',
  });
  const post = (m: FromWorker): void => {
    if (process.connected) process.send!(m, undefined, undefined, () => undefined);
  };
  const channel = new Channel(post);
  const reader = new RemoteReader(channel);
  const stream = new StreamService({
    clock: systemClock,
    reader,
    log,
    // The main process counts connections against their keys before it hands them here.
    maxConnectionsPerKey: Number.MAX_SAFE_INTEGER,
    remote: {
      devices: new RemoteDevices(channel),
      loader: reader,
      released: (keyId) => post({ t: 'closed', keyId }),
    },
  });
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });

  const upgrade = (m: Extract<ToWorker, { t: 'ws' }>, socket: Socket | undefined): void => {
    if (socket === undefined) return post({ t: 'closed', keyId: m.keyId });
    try {
      stream.acquire(m.keyId);
    } catch {
      socket.destroy(); // draining: the client reconnects to a process that takes it
      return post({ t: 'closed', keyId: m.keyId });
    }
    // A handshake `ws` refuses ends the socket without the callback: its count is given back then.
    const giveBack = (): void => stream.release(m.keyId);
    socket.once('close', giveBack);
    const req = { method: m.method, headers: m.headers } as unknown as IncomingMessage;
    wss.handleUpgrade(req, socket, Buffer.from(m.head, 'base64'), (ws) => {
      socket.removeListener('close', giveBack);
      stream.openWs(ws, socket, { keyId: m.keyId, canWrite: m.canWrite }, m.query, m.requestId);
    });
  };

  const drain = (): void => {
    stream.drain();
    wss.close();
    setTimeout(() => {
      for (const ws of wss.clients) ws.terminate();
      process.exit(0);
    }, DRAIN_EXIT_MS).unref();
  };

  process.on('message', (m: ToWorker, handle?: Socket) => {
    switch (m.t) {
      case 'init':
        stream.hub.restart(m.epoch, m.offset);
        stream.start();
        post({ t: 'ready' });
        return;
      case 'changes':
        for (const [offset, userId, version, json] of m.changes)
          stream.hub.relayed(offset, userId, version, json);
        return;
      case 'restart':
        stream.hub.restart(m.epoch, m.offset);
        return;
      case 'ws':
        return upgrade(m, handle);
      case 'loaded':
      case 'done':
        return channel.answer(m);
      case 'drain':
        return drain();
    }
  });
  // The main process is gone: so are its connections' reason to be here.
  process.on('disconnect', () => process.exit(0));

  setInterval(() => {
    post({
      t: 'stats',
      figures: {
        connections: stream.hub.connections,
        subscriptions: stream.hub.subscriptions,
        deviceConnections: stream.deviceConnections,
        stats: stream.hub.stats,
      },
    });
  }, STATS_MS).unref();
}

if (require.main === module) runWorker();
