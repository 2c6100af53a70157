/**
 * @module stream/service
 * The stream as the service runs it: the hub fed by committed changes, per-key connection
 * limits, WebSocket and SSE connections (their messages, their keepalive answers), devices held
 * by connections, counters for /metrics, and the drain on shutdown.
 */

import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { RawData, WebSocket } from 'ws';

import type { PresenceChange } from '../core/changes';
import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import { silentLog, type Log } from '../core/log';
import type { Activity, Status } from '../core/presence';
import { errorBody } from '../http/errors';
import type { ExtraGauges } from '../http/metrics';
import { DeviceConnections, type DeviceLease, type DeviceReporter, type HeldDevice } from './devices';
import { StreamHub, type HubOptions, type PresenceReader } from './hub';
import { Outgoing } from './message';
import { parseClientMessage, type StreamQuery } from './protocol';
import type { StreamStats, Subscriber } from './subscriber';
import type { WorkerFigures } from './workers/ipc';
import type { StreamWorkers } from './workers/pool';
import type { Timers } from './timers';
import type { ViewerIdentity } from '../privacy/viewer-tokens';
import { CLOSE_RESTART, SseTransport, WsTransport } from './transports';

export const DEFAULT_MAX_CONNECTIONS_PER_KEY = 5000;

export interface StreamServiceOptions {
  readonly clock: Clock;
  readonly reader: PresenceReader;
  /** How device connections reach the engine (absent only in a stream worker: see `remote`). */
  readonly devices?: DeviceReporter;
  readonly log?: Log;
  readonly timers?: Timers;
  readonly maxConnectionsPerKey?: number;
  readonly deviceGraceMs?: number;
  /** Several-node mode: device connections held here are renewed in Redis (cluster/expiry.ts). */
  readonly deviceLease?: DeviceLease | null;
  /** Device entries connections held before this start (cut to one grace by `start`). */
  readonly heldDevices?: () => readonly HeldDevice[];
  readonly hub?: Partial<Omit<HubOptions, 'clock' | 'reader' | 'timers'>>;
  /** Stream workers to hand API keys' WebSocket connections to (PRESENCE_STREAM_WORKERS). */
  readonly workers?: StreamWorkers | null;
  /**
   * A stream worker's: the devices its connections hold live in the main process (told over
   * IPC) instead of a `DeviceConnections` of its own, and what a subscribe or resume reads is
   * loaded from there first (`loader`); the worker learns when a connection's count is given back.
   */
  readonly remote?: {
    readonly devices: DeviceSessions;
    readonly loader: SnapshotLoader;
    readonly released: (keyId: string) => void;
  };
}

/** What the service does with the devices its connections hold (`DeviceConnections`). */
export type DeviceSessions = Pick<
  DeviceConnections,
  'hold' | 'update' | 'alive' | 'release' | 'stop' | 'restarted' | 'connected'
>;

/**
 * A reader in another process: `load` fetches what the hub will read for exactly these ids
 * (their snapshot body and versions) and calls `done` synchronously when the answer arrives, so
 * that nothing else (a relayed change) runs between the answer and the hub's use of it.
 */
export interface SnapshotLoader {
  load(ids: readonly string[], done: (error: Error | null) => void): void;
}

/** Who opened a connection: the API key's id and whether it may write (identify a device). */
export interface StreamCaller {
  readonly keyId: string;
  readonly canWrite: boolean;
  /** A viewer token's user: the connection sees what they may see, and is only their devices. */
  readonly viewer?: ViewerIdentity | null;
}

export class StreamService {
  readonly hub: StreamHub;
  readonly devices: DeviceSessions;
  private readonly log: Log;
  private readonly reader: PresenceReader;
  private readonly remote: StreamServiceOptions['remote'] | null;
  /** The stream workers, when connections are spread over them (null: all in this process). */
  readonly workers: StreamWorkers | null;
  private readonly maxPerKey: number;
  private readonly perKey = new Map<string, number>();
  private readonly heldDevices: () => readonly HeldDevice[];
  /** Device connections open now (a device reconnecting may briefly have two). */
  deviceConnections = 0;

  constructor(options: StreamServiceOptions) {
    this.log = options.log ?? silentLog;
    this.workers = options.workers ?? null;
    this.hub = new StreamHub({
      clock: options.clock,
      reader: options.reader,
      timers: options.timers,
      ...options.hub,
      ...(this.workers === null ? {} : { relay: this.workers }),
    });
    this.reader = options.reader;
    this.remote = options.remote ?? null;
    if (this.remote === null && options.devices === undefined)
      throw new Error('a stream needs a device reporter (or a worker its remote devices)');
    this.devices =
      this.remote?.devices ??
      new DeviceConnections(options.devices!, options.clock, {
        graceMs: options.deviceGraceMs,
        lease: options.deviceLease ?? null,
      });
    this.maxPerKey = options.maxConnectionsPerKey ?? DEFAULT_MAX_CONNECTIONS_PER_KEY;
    this.heldDevices = options.heldDevices ?? (() => []);
  }

  /** The change pipeline's `committed` phase. Never throws (a failure is logged). */
  committed(changes: readonly PresenceChange[]): void {
    try {
      this.hub.committed(changes);
    } catch (error) {
      this.log.error({ err: error }, 'the stream could not take committed changes');
    }
  }

  /** Starts the keepalive; devices held before this start go offline one grace from now unless they come back. */
  start(): void {
    this.hub.start();
    this.workers?.start({
      position: () => ({ epoch: this.hub.log.epoch, offset: this.hub.log.offset }),
      reader: this.reader,
      devices: this.devices,
      release: (keyId) => this.release(keyId),
    });
    for (const ack of this.devices.restarted(this.heldDevices()))
      ack.catch((error: unknown) =>
        this.log.warn({ err: error }, 'a held device could not be cut to its grace'),
      );
  }

  /** Shutdown: every client is told to reconnect; devices keep their hold for the next start. */
  drain(): void {
    this.devices.stop();
    this.hub.drain();
    this.workers?.drain();
  }

  /** Open stream connections, here and in the workers (theirs as of their last report). */
  get connections(): number {
    return this.hub.connections + (this.workers?.totals().connections ?? 0);
  }

  /** The stream's counters, here and in the workers. */
  get stats(): StreamStats {
    if (this.workers === null) return this.hub.stats;
    const stats = { ...this.workers.totals().stats };
    for (const k of Object.keys(stats) as (keyof StreamStats)[]) stats[k] += this.hub.stats[k];
    return stats;
  }

  /** What /metrics shows of the stream. */
  metrics(): ExtraGauges {
    const workers = (): WorkerFigures | null => this.workers?.totals() ?? null;
    const stat = (k: keyof StreamStats) => () => this.stats[k];
    return {
      stream_connections: {
        help: 'Open stream connections (SSE and WebSocket)',
        read: () => this.connections,
      },
      stream_subscriptions: {
        help: 'Watched ids over all stream connections',
        read: () => this.hub.subscriptions + (workers()?.subscriptions ?? 0),
      },
      stream_device_connections: {
        help: 'WebSocket connections that are a device (identify)',
        read: () => this.deviceConnections + (workers()?.deviceConnections ?? 0),
      },
      ...(this.workers === null
        ? {}
        : {
            stream_workers: {
              help: 'Stream worker processes running (PRESENCE_STREAM_WORKERS)',
              read: () => this.workers!.running,
            },
            stream_worker_restarts_total: {
              help: 'Stream workers started again after one exited',
              read: () => this.workers!.restarts,
              counter: true,
            },
          }),
      stream_change_log_entries: { help: 'Changes held for resuming', read: () => this.hub.log.size },
      stream_messages_sent_total: {
        help: 'Stream messages written',
        read: stat('messagesSent'),
        counter: true,
      },
      stream_messages_dropped_coalesced_total: {
        help: 'Presence messages not sent because a coalescing window merged or cancelled them',
        read: stat('droppedCoalesced'),
        counter: true,
      },
      stream_messages_dropped_compacted_total: {
        help: 'Queued presence messages dropped for a newer one of the same user (slow consumers)',
        read: stat('droppedCompacted'),
        counter: true,
      },
      stream_resyncs_total: {
        help: 'Slow consumers closed with resync',
        read: stat('resyncs'),
        counter: true,
      },
      stream_resume_hits_total: {
        help: 'Resumes answered from the change log',
        read: stat('resumeHits'),
        counter: true,
      },
      stream_missed_device_pings_total: {
        help: 'Keepalive pings a device connection had not answered when the next one was due',
        read: stat('missedDevicePings'),
        counter: true,
      },
      stream_resume_misses_total: {
        help: 'Resumes answered with a fresh snapshot (recovered: false)',
        read: stat('resumeMisses'),
        counter: true,
      },
    };
  }

  /** Counts a connection against its key's limit, or refuses it (429; 503 while stopping). */
  acquire(keyId: string): void {
    if (!this.hub.accepting)
      throw new AppError('unavailable', 'the service is restarting: reconnect shortly', [], {
        'retry-after': '1',
      });
    const n = this.perKey.get(keyId) ?? 0;
    if (n >= this.maxPerKey)
      throw new AppError(
        'rate_limited',
        `this key has ${n} stream connections open, the most allowed (PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY)`,
        [],
        { 'retry-after': '5' },
      );
    this.perKey.set(keyId, n + 1);
  }

  release(keyId: string): void {
    const n = (this.perKey.get(keyId) ?? 1) - 1;
    if (n <= 0) this.perKey.delete(keyId);
    else this.perKey.set(keyId, n);
    this.remote?.released(keyId);
  }

  /** A Server-Sent Events stream on a hijacked response; the caller already counted it. */
  openSse(
    res: ServerResponse,
    caller: StreamCaller,
    query: StreamQuery,
    lastEventId: string | undefined,
  ): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Proxies that buffer responses (nginx) would hold the events back.
      'x-accel-buffering': 'no',
    });
    const sub = this.hub.open(new SseTransport(res), query.coalesce_ms ?? 0, caller.viewer ?? null);
    res.on('close', () => {
      this.hub.close(sub);
      this.release(caller.keyId);
    });
    this.begin(sub, query, lastEventId ?? query.since);
  }

  /** The first answer of a connection: a resume when it names a position, otherwise a snapshot. */
  private begin(sub: Subscriber, query: StreamQuery, since: string | undefined): void {
    const ids = query.user_ids ?? [];
    if (since !== undefined) this.hub.resume(sub, since, ids);
    else this.hub.subscribe(sub, ids);
  }

  /**
   * Runs a WebSocket client's subscribe, unsubscribe or resume (or its first answer). In this
   * process at once; in a stream worker in order with the connection's others of these, a
   * subscribe or resume once what it reads is loaded from the main process (`reads`: the exact
   * ids the hub will read, see SnapshotLoader).
   */
  private inOrder(peer: WsPeer, step: Step): void {
    if (this.remote === null) {
      this.attempt(peer, step);
      return;
    }
    (peer.queue ??= []).push(step);
    if (peer.queue.length === 1) this.next(peer);
  }

  /** Runs the connection's queued steps until one must wait for a load. */
  private next(peer: WsPeer): void {
    const queue = peer.queue!;
    while (queue.length > 0) {
      const step = queue[0]!;
      let reads: readonly string[] | null;
      try {
        reads = peer.sub.closed ? null : (step.reads?.() ?? null);
      } catch (error) {
        queue.shift();
        this.reply(peer, error);
        continue;
      }
      if (reads !== null) {
        if (step.resume === true) this.hub.holdBack(peer.sub);
        this.remote!.loader.load(reads, (error) => {
          queue.shift();
          if (error !== null) {
            this.reply(peer, error);
            // Live changes were held back for the resume: going on would skip them, so the
            // client is told to resume again (`resync`), from the position it still has.
            if (step.resume === true) peer.sub.transport.resync();
          } else if (!peer.sub.closed) this.attempt(peer, step);
          if (queue.length > 0) this.next(peer);
          else peer.queue = null;
        });
        return;
      }
      queue.shift();
      if (!peer.sub.closed) this.attempt(peer, step);
    }
    peer.queue = null;
  }

  private attempt(peer: WsPeer, step: Step): void {
    try {
      step.run();
    } catch (error) {
      this.reply(peer, error);
    }
  }

  /** A subscribe of `ids`: it reads the ids not watched yet (and throws past the limit). */
  private subscribeStep(sub: Subscriber, ids: readonly string[], coalesceMs?: number): Step {
    return {
      reads: () => this.hub.added(sub, ids),
      run: () => {
        if (coalesceMs !== undefined) sub.coalesceMs = coalesceMs;
        this.hub.subscribe(sub, ids);
      },
    };
  }

  /** A resume from `since`: should it miss, it reads every id watched once the new ones are. */
  private resumeStep(sub: Subscriber, since: string, ids: readonly string[]): Step {
    return {
      reads: () => sub.ids.concat(this.hub.added(sub, ids)),
      resume: true,
      run: () => this.hub.resume(sub, since, ids),
    };
  }

  /** A WebSocket connection, upgraded; the caller already counted it. */
  openWs(ws: WebSocket, socket: Duplex, caller: StreamCaller, query: StreamQuery, requestId: string): void {
    if (!this.hub.accepting) {
      ws.close(CLOSE_RESTART, 'restarting: reconnect and resume');
      this.release(caller.keyId);
      return;
    }
    const sub = this.hub.open(new WsTransport(ws, socket), query.coalesce_ms ?? 0, caller.viewer ?? null);
    // The connection's state lives in one object; its listeners are functions shared by every
    // connection (an idle connection costs no closures of its own).
    const peer = new WsPeer(this, sub, caller, requestId);
    (ws as PeerSocket)[PEER] = peer;
    ws.on('pong', onPong);
    ws.on('message', onMessage);
    ws.on('close', onClose);
    ws.on('error', ignoreError); // a reset peer: 'close' follows
    const ids = query.user_ids ?? [];
    this.inOrder(
      peer,
      query.since !== undefined ? this.resumeStep(sub, query.since, ids) : this.subscribeStep(sub, ids),
    );
  }

  /** Answers a bad client message with the REST error body; the connection stays. */
  private reply(peer: WsPeer, error: unknown): void {
    const e =
      error instanceof AppError ? error : new AppError('internal', 'the message could not be handled');
    if (!(error instanceof AppError)) this.log.error({ err: error }, 'a stream message failed');
    peer.sub.send(Outgoing.of('error', { ...errorBody(e.code, e.message, peer.requestId, e.details) }));
  }

  /** @internal A WebSocket's pong (the keepalive's answer). */
  wsPong(peer: WsPeer): void {
    peer.sub.unansweredPings = 0;
    const device = peer.device;
    if (device !== null) this.devices.alive(device.userId, device.deviceId);
  }

  /** @internal A WebSocket's message. */
  wsMessage(peer: WsPeer, data: RawData, isBinary: boolean): void {
    const { sub, caller } = peer;
    try {
      if (isBinary) throw new AppError('invalid_request', 'messages are JSON text frames');
      const text = Array.isArray(data)
        ? Buffer.concat(data).toString('utf8')
        : Buffer.from(data as ArrayBuffer).toString('utf8');
      const m = parseClientMessage(text);
      switch (m.type) {
        case 'subscribe':
          this.inOrder(peer, this.subscribeStep(sub, m.user_ids, m.coalesce_ms));
          break;
        case 'unsubscribe':
          this.inOrder(peer, { run: () => this.hub.unsubscribe(sub, m.user_ids) });
          break;
        case 'resume':
          this.inOrder(peer, this.resumeStep(sub, m.since, m.user_ids ?? []));
          break;
        case 'ping':
          sub.send(Outgoing.of('pong', {}));
          break;
        case 'pong':
          sub.unansweredPings = 0;
          break;
        case 'identify': {
          if (caller.viewer != null) {
            if (m.user_id !== caller.viewer.userId)
              throw new AppError('forbidden', "a viewer token acts only for its own user's devices");
          } else if (!caller.canWrite)
            throw new AppError('forbidden', 'identify needs the write scope; the key has read');
          const status: Status = m.status ?? 'online';
          const activity: Activity | null = m.activity ?? null;
          const device = peer.device;
          if (device !== null) void this.devices.release(device.userId, device.deviceId);
          else this.deviceConnections += 1;
          peer.device = { userId: m.user_id, deviceId: m.device_id };
          sub.holdsDevice = true;
          this.devices.hold(m.user_id, m.device_id, status, activity).then(
            () => sub.send(Outgoing.of('identified', { user_id: m.user_id, device_id: m.device_id, status })),
            (error: unknown) => this.reply(peer, error),
          );
          break;
        }
        case 'status': {
          const device = peer.device;
          if (device === null) throw new AppError('invalid_request', 'send identify before status');
          this.devices
            .update(device.userId, device.deviceId, m.status, m.activity ?? null)
            .catch((error: unknown) => this.reply(peer, error));
          break;
        }
      }
    } catch (error) {
      this.reply(peer, error);
    }
  }

  /** @internal A WebSocket closed (by either side, or found dead). */
  wsClosed(peer: WsPeer): void {
    this.hub.close(peer.sub);
    this.release(peer.caller.keyId);
    const device = peer.device;
    if (device !== null) {
      this.deviceConnections -= 1;
      this.devices
        .release(device.userId, device.deviceId)
        .catch((error: unknown) =>
          this.log.warn({ err: error }, 'a device connection could not be released'),
        );
    }
  }
}

/** A client's message as the service runs it (see inOrder). */
interface Step {
  /** The ids it reads from the presence reader, when it reads any (subscribe, resume). */
  readonly reads?: () => readonly string[];
  /** A resume: live changes wait while its load is under way. */
  readonly resume?: true;
  readonly run: () => void;
}

/** Where a WebSocket keeps its connection's state (see openWs). */
const PEER = Symbol('stream peer');
type PeerSocket = WebSocket & { [PEER]?: WsPeer };

/** @internal One WebSocket connection's state: its subscriber, who opened it, the device it is (if any). */
export class WsPeer {
  device: { userId: string; deviceId: string } | null = null;
  /** A stream worker's: the connection's messages waiting for an earlier one's load. */
  queue: Step[] | null = null;

  constructor(
    readonly service: StreamService,
    readonly sub: Subscriber,
    readonly caller: StreamCaller,
    readonly requestId: string,
  ) {}
}

function onPong(this: PeerSocket): void {
  const peer = this[PEER]!;
  peer.service.wsPong(peer);
}

function onMessage(this: PeerSocket, data: RawData, isBinary: boolean): void {
  const peer = this[PEER]!;
  peer.service.wsMessage(peer, data, isBinary);
}

function onClose(this: PeerSocket): void {
  const peer = this[PEER]!;
  peer.service.wsClosed(peer);
}

function ignoreError(): void {}
