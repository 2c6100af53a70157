/**
 * @module stream/workers/pool
 * The main process's side of the stream workers (`PRESENCE_STREAM_WORKERS`): child processes
 * that hold WebSocket connections, so that their socket writes, which bound one process's
 * fan-out, run on more than one core.
 *
 * The main process keeps everything else: the engine, the REST API, SSE and viewer-token
 * connections, the devices connections hold, per-key connection limits, and the hub whose log
 * numbers every change. An API key's WebSocket upgrade is checked here, then its socket is handed
 * to the worker with the fewest connections, which completes the handshake and runs a hub of its
 * own. That hub is fed every change this one logs, at the same offset and in order (`change`),
 * so a position means the same in every process and a client resumes wherever it lands. What a
 * worker's subscribe or resume reads (the snapshot, the versions) it asks for over the same
 * channel; since the answer is sent after every change logged before it, the worker takes it at
 * exactly the position it stands at, as the in-process hub does.
 *
 * A worker that dies takes its connections with it (their clients reconnect and resume); its
 * keys' counts and the devices its connections held are given back, and it is started again.
 * With no worker running, connections stay in this process.
 */

import { fork, type ChildProcess } from 'node:child_process';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';

import { AppError } from '../../core/errors';
import { deviceKey } from '../devices';
import type { Log } from '../../core/log';
import type { StreamRelay, PresenceReader } from '../hub';
import type { ChangeMessage } from '../message';
import type { StreamQuery } from '../protocol';
import type { DeviceSessions } from '../service';
import { emptyStats, type StreamStats } from '../subscriber';
import type { FromWorker, RelayedChange, ToWorker, WireError, WorkerFigures } from './ipc';

/** The headers a worker needs to complete a WebSocket handshake (nothing secret crosses). */
const HANDSHAKE_HEADERS = [
  'upgrade',
  'connection',
  'sec-websocket-key',
  'sec-websocket-version',
  'sec-websocket-protocol',
  'sec-websocket-extensions',
];

const RESPAWN_MS = 1000;
/**
 * A worker that stops taking what it is sent (hung, or stopped by a signal) would make this
 * process hold everything meant for it: past this much unsent, it is killed (its clients
 * reconnect and resume elsewhere) and started again.
 */
export const MAX_UNSENT_BYTES = 64 * 1024 * 1024;
/** How long the service waits for its workers before it listens anyway. */
const READY_WAIT_MS = 15_000;
/** How long drained workers get to close their connections before they are killed. */
const DRAIN_KILL_MS = 3000;

interface Worker {
  readonly n: number;
  readonly child: ChildProcess;
  ready: boolean;
  /** Connections handed to it and not yet closed. */
  connections: number;
  /** Its connections per key, given back if it dies. */
  readonly keys: Map<string, number>;
  /** The devices its connections hold (user, device → holds), released if it dies. */
  readonly devices: Map<string, { userId: string; deviceId: string; holds: number }>;
  figures: WorkerFigures | null;
  /** About how many bytes were sent to it and not yet written to its channel. */
  unsent: number;
}

export interface StreamWorkersOptions {
  readonly count: number;
  readonly log: Log;
  /** The log level the workers log at. */
  readonly logLevel?: string;
  /** Past this much unsent to one worker it is killed and started again (MAX_UNSENT_BYTES). */
  readonly maxUnsentBytes?: number;
}

/** What the pool needs of the main process's stream, given once it exists (`start`). */
export interface MainStream {
  readonly position: () => { epoch: string; offset: number };
  readonly reader: PresenceReader;
  readonly devices: DeviceSessions;
  /** Gives back one connection of the key (StreamService.release). */
  readonly release: (keyId: string) => void;
}

export class StreamWorkers implements StreamRelay {
  private readonly workers = new Map<number, Worker>();
  private readonly log: Log;
  private readonly count: number;
  private readonly logLevel: string;
  private readonly maxUnsent: number;
  private main: MainStream | null = null;
  private pending: RelayedChange[] = [];
  private flushQueued = false;
  private stopping = false;
  private spawned = 0;
  /** The counters of workers that exited, so that the totals never go back. */
  private readonly retired: StreamStats = emptyStats();
  /** Workers started again after dying. */
  restarts = 0;
  private readyWaiters: (() => void)[] = [];

  constructor(options: StreamWorkersOptions) {
    this.log = options.log;
    this.count = options.count;
    this.logLevel = options.logLevel ?? 'info';
    this.maxUnsent = options.maxUnsentBytes ?? MAX_UNSENT_BYTES;
  }

  /** Starts the workers. */
  start(main: MainStream): void {
    this.main = main;
    for (let i = 0; i < this.count; i++) this.spawn();
  }

  /** Resolves once every worker takes connections (until then, connections stay in this process). */
  ready(): Promise<void> {
    if (this.running >= this.count) return Promise.resolve();
    return new Promise((done) => {
      this.readyWaiters.push(done);
      // A worker that cannot start does not hold the service back: it is started again, and
      // connections stay here meanwhile.
      setTimeout(() => {
        if (!this.readyWaiters.includes(done)) return;
        this.log.warn({ running: this.running, wanted: this.count }, 'stream workers are slow to start');
        this.readyWaiters = this.readyWaiters.filter((d) => d !== done);
        done();
      }, READY_WAIT_MS).unref();
    });
  }

  /** Workers running and taking connections. */
  get running(): number {
    let n = 0;
    for (const w of this.workers.values()) if (w.ready) n += 1;
    return n;
  }

  // ------------------------------------------------------------------ the relay (StreamRelay)

  change(offset: number, m: ChangeMessage): void {
    if (this.workers.size === 0) return;
    this.pending.push([offset, m.userId, m.version, m.outgoing.json]);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // After the commit's whole batch is logged: one message per batch, not one per change.
    queueMicrotask(() => this.flush());
  }

  restart(epoch: string, offset: number): void {
    this.flush();
    this.broadcast({ t: 'restart', epoch, offset });
  }

  /** Sends the changes logged so far: before anything else a worker is told. */
  private flush(): void {
    this.flushQueued = false;
    if (this.pending.length === 0) return;
    const changes = this.pending;
    this.pending = [];
    this.broadcast({ t: 'changes', changes });
  }

  private broadcast(message: ToWorker): void {
    for (const w of this.workers.values()) this.send(w, message);
  }

  private send(w: Worker, message: ToWorker): void {
    if (!w.child.connected) return;
    const bytes = sizeOf(message);
    w.unsent += bytes;
    // The callback runs once the message is written to the channel (not before: a worker that
    // does not read leaves it waiting).
    w.child.send(message, undefined, undefined, () => (w.unsent -= bytes));
    if (w.unsent <= this.maxUnsent || w.child.killed) return;
    this.log.error(
      { worker: w.n, unsent: w.unsent },
      'a stream worker stopped taking what it is sent: killing it (its clients resume elsewhere)',
    );
    w.child.kill('SIGKILL');
  }

  // ------------------------------------------------------------------ connections

  /**
   * Hands an upgrade (checked, and counted against its key) to the worker with the fewest
   * connections. False when no worker runs: the caller keeps it.
   */
  handOff(
    req: IncomingMessage,
    socket: Socket,
    head: Buffer,
    keyId: string,
    canWrite: boolean,
    query: StreamQuery,
    requestId: string,
  ): boolean {
    let target: Worker | null = null;
    for (const w of this.workers.values())
      if (w.ready && w.child.connected && (target === null || w.connections < target.connections)) target = w;
    if (target === null || this.stopping) return false;
    const w = target;
    const headers: Record<string, string | string[] | undefined> = {};
    for (const name of HANDSHAKE_HEADERS)
      if (req.headers[name] !== undefined) headers[name] = req.headers[name];
    // The key stays here: the worker gets the ids and options only.
    const { access_token: _token, ...rest } = query;
    w.connections += 1;
    w.keys.set(keyId, (w.keys.get(keyId) ?? 0) + 1);
    const message: ToWorker = {
      t: 'ws',
      method: req.method ?? 'GET',
      headers,
      head: head.toString('base64'),
      keyId,
      canWrite,
      query: rest,
      requestId,
    };
    w.child.send(message, socket, undefined, (error) => {
      if (error === null) return;
      this.closed(w, keyId);
      socket.destroy();
    });
    return true;
  }

  /** A connection of the worker ended (or never reached it): its key's count is given back. */
  private closed(w: Worker, keyId: string): void {
    const n = w.keys.get(keyId);
    if (n === undefined) return;
    if (n <= 1) w.keys.delete(keyId);
    else w.keys.set(keyId, n - 1);
    w.connections -= 1;
    this.main!.release(keyId);
  }

  // ------------------------------------------------------------------ a worker's requests

  private received(w: Worker, m: FromWorker): void {
    switch (m.t) {
      case 'ready':
        w.ready = true;
        if (this.running >= this.count) for (const done of this.readyWaiters.splice(0)) done();
        return;
      case 'load':
        return this.load(w, m.id, m.ids);
      case 'device':
        return this.device(w, m);
      case 'closed':
        return this.closed(w, m.keyId);
      case 'stats':
        w.figures = m.figures;
        return;
    }
  }

  /** A worker's subscribe or resume: what it reads, sent after every change logged so far. */
  private load(w: Worker, id: number, ids: readonly string[]): void {
    this.flush();
    const reader = this.main!.reader;
    try {
      const body = reader.getManyJson(ids).toString('utf8');
      const versions = ids.map((u) => reader.state(u)?.version ?? 0);
      this.send(w, { t: 'loaded', id, body, versions });
    } catch (error) {
      this.send(w, { t: 'done', id, error: wire(error, this.log) });
    }
  }

  private device(w: Worker, m: Extract<FromWorker, { t: 'device' }>): void {
    const devices = this.main!.devices;
    const key = deviceKey(m.userId, m.deviceId);
    let done: Promise<void>;
    switch (m.op) {
      case 'alive':
        devices.alive(m.userId, m.deviceId);
        return;
      case 'hold': {
        const held = w.devices.get(key) ?? { userId: m.userId, deviceId: m.deviceId, holds: 0 };
        held.holds += 1;
        w.devices.set(key, held);
        done = devices.hold(m.userId, m.deviceId, m.status ?? 'online', m.activity);
        break;
      }
      case 'update':
        done = devices.update(m.userId, m.deviceId, m.status ?? 'online', m.activity);
        break;
      case 'release': {
        const held = w.devices.get(key);
        if (held !== undefined && --held.holds <= 0) w.devices.delete(key);
        done = devices.release(m.userId, m.deviceId);
        break;
      }
    }
    done.then(
      () => this.send(w, { t: 'done', id: m.id, error: null }),
      (error: unknown) => this.send(w, { t: 'done', id: m.id, error: wire(error, this.log) }),
    );
  }

  // ------------------------------------------------------------------ life

  private spawn(): void {
    const main = this.main!;
    // Under tsx (a checkout) the worker runs from its TypeScript source, compiled from dist/.
    const source = __filename.endsWith('.ts');
    const entry = join(__dirname, source ? 'worker.ts' : 'worker.js');
    const n = ++this.spawned;
    // Its number (for its log lines) as its argument.
    const child = fork(entry, [String(n)], {
      execArgv: source ? ['--require', 'tsx/cjs'] : [],
      env: { ...process.env, LOG_LEVEL: this.logLevel },
      serialization: 'json',
    });
    const w: Worker = {
      n,
      child,
      ready: false,
      connections: 0,
      keys: new Map(),
      devices: new Map(),
      figures: null,
      unsent: 0,
    };
    this.workers.set(n, w);
    // It takes the changes logged after this position: earlier ones went to the others.
    this.flush();
    const { epoch, offset } = main.position();
    this.send(w, { t: 'init', epoch, offset });
    child.on('message', (m: FromWorker) => this.received(w, m));
    child.on('error', (error) => this.log.error({ err: error, worker: n }, 'a stream worker failed'));
    child.once('exit', (code, signal) => this.exited(w, code, signal));
  }

  private exited(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(w.n);
    const main = this.main!;
    for (const [keyId, n] of w.keys) for (let i = 0; i < n; i++) main.release(keyId);
    for (const { userId, deviceId, holds } of w.devices.values())
      for (let i = 0; i < holds; i++)
        main.devices
          .release(userId, deviceId)
          .catch((error: unknown) =>
            this.log.warn({ err: error }, 'a device connection could not be released'),
          );
    if (w.figures !== null) addStats(this.retired, w.figures.stats);
    if (this.stopping) return;
    this.log.error(
      { worker: w.n, code, signal, connections: w.connections },
      'a stream worker exited: its clients reconnect and resume; starting another',
    );
    this.restarts += 1;
    setTimeout(() => {
      if (!this.stopping) this.spawn();
    }, RESPAWN_MS).unref();
  }

  /** Shutdown: every worker tells its clients to reconnect and exits. */
  drain(): void {
    this.stopping = true;
    this.flush();
    for (const w of this.workers.values()) {
      this.send(w, { t: 'drain' });
      setTimeout(() => w.child.kill('SIGKILL'), DRAIN_KILL_MS).unref();
    }
  }

  /** Resolves once every worker has exited. */
  async stopped(): Promise<void> {
    await Promise.all(
      [...this.workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.child.exitCode !== null || w.child.signalCode !== null) resolve();
            else w.child.once('exit', () => resolve());
          }),
      ),
    );
  }

  // ------------------------------------------------------------------ figures

  /** The workers' figures summed (each as of its last report, about a second old at most). */
  totals(): WorkerFigures {
    let connections = 0;
    let subscriptions = 0;
    let deviceConnections = 0;
    const stats = { ...this.retired };
    for (const w of this.workers.values()) {
      if (w.figures === null) continue;
      connections += w.figures.connections;
      subscriptions += w.figures.subscriptions;
      deviceConnections += w.figures.deviceConnections;
      addStats(stats, w.figures.stats);
    }
    return { connections, subscriptions, deviceConnections, stats };
  }

  /** The workers' process ids (the bench reads their CPU). */
  pids(): number[] {
    return [...this.workers.values()].flatMap((w) => (w.child.pid === undefined ? [] : [w.child.pid]));
  }
}

/** About the bytes a message takes on the channel: what dominates it (the changes' JSON, a snapshot body). */
function sizeOf(message: ToWorker): number {
  if (message.t === 'changes') return message.changes.reduce((n, c) => n + c[3].length + 64, 0);
  if (message.t === 'loaded') return message.body.length + message.versions.length * 8;
  return 256;
}

function addStats(into: StreamStats, more: StreamStats): void {
  for (const k of Object.keys(into) as (keyof StreamStats)[]) into[k] += more[k];
}

/** An error as a worker's client is told it: an AppError as it is, anything else as `internal`. */
function wire(error: unknown, log: Log): WireError {
  if (error instanceof AppError) return { code: error.code, message: error.message, details: error.details };
  log.error({ err: error }, 'a stream worker request failed');
  return { code: 'internal', message: 'the request could not be handled', details: [] };
}
