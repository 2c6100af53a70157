/**
 * @module bench/stream
 * The real-time stream's figures (issue 15), at the issue's scale by default, each printed next
 * to its target:
 * - idle connections: heap and RSS of the server per WebSocket connection watching 50 users
 *   (15,000 connections), and the same over Server-Sent Events;
 * - fan-out: 10,000 subscribers each watching 100 of 10,000 users under 1,000 changes/s; every
 *   message counted (delivered ÷ expected), messages/s delivered, commit → client latency
 *   measured exactly on 100 probe subscribers (PRESENCE_BENCH_STREAM_PROBES) in a client process
 *   of their own, and where the time goes (change → committed → written to every socket), with
 *   the CPU each process used, so that a run shows whether the server or the clients are short;
 * - a stalled subscriber (stops reading): the healthy ones' p99 with it and without, and the
 *   server's heap;
 * - resume after a 10 s disconnect under the same rate: every missed change, in order, none twice.
 * The fan-out runs three contenders in rotating rounds (PRESENCE_BENCH_STREAM_ROUNDS, 2): the
 * product in one process, the product with stream workers (PRESENCE_BENCH_STREAM_WORKERS, 2: a
 * second service, whose figures the targets are judged on; 0 leaves it out), and its reference,
 * a plain `ws` server with no presence logic
 * (bench/stream-reference.ts), on its own port in this process, the same clients, probes and
 * driver; it prints the changes/s it kept, the messages it delivered, its commit → client
 * percentiles and CPU, and the product's p99 and messages/s as ratios to its.
 * The server runs in this process (a real `createService`, SQLite file, `listen` on loopback); the
 * clients run in child processes: two that hold the load's connections (for the fan-out, the C
 * reader bench/stream-load.c unless PRESENCE_BENCH_STREAM_LOAD=node; otherwise
 * bench/stream-client.ts), and for the fan-out a third with the probe subscribers (always
 * stream-client.ts). Scale down with
 * PRESENCE_BENCH_STREAM_IDLE (15000), PRESENCE_BENCH_STREAM_SSE_IDLE (5000),
 * PRESENCE_BENCH_STREAM_SUBSCRIBERS (10000), PRESENCE_BENCH_STREAM_RATE (changes/s, 1000) and
 * PRESENCE_BENCH_STREAM_SECONDS (10); the load processes read in rounds PRESENCE_BENCH_STREAM_LOAD_READ_MS
 * apart (20; 0: as each frame arrives); PRESENCE_BENCH_STREAM_ONLY picks parts (idle, sse, fanout,
 * stall, resume; comma-separated).
 */

import { execFileSync, fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { writeHeapSnapshot } from 'node:v8';

import WebSocket from 'ws';

import { parseEnv } from '../src/config/env';
import type { PresenceChange } from '../src/core/changes';
import type { Status } from '../src/core/presence';
import { createService, type Service } from '../src/main';
import { WsTransport } from '../src/stream/transports';
import { alternate, fmt, processCpu, ratioOf, type Figure } from './stats';
import type { Open } from './stream-client';
import { startReference, type Reference } from './stream-reference';

const num = (name: string, fallback: number): number => Number(process.env[name] ?? fallback);
const IDLE = num('PRESENCE_BENCH_STREAM_IDLE', 15_000);
const SSE_IDLE = num('PRESENCE_BENCH_STREAM_SSE_IDLE', 5000);
const SUBSCRIBERS = num('PRESENCE_BENCH_STREAM_SUBSCRIBERS', 10_000);
const RATE = num('PRESENCE_BENCH_STREAM_RATE', 1000);
const SECONDS = num('PRESENCE_BENCH_STREAM_SECONDS', 10);
const USERS = 10_000;
/** Ids each idle connection watches (the issue's figure is for 50). */
const IDLE_IDS = num('PRESENCE_BENCH_STREAM_IDLE_IDS', 50);
const CHILDREN = 2;
/**
 * Subscribers of the fan-out measured exactly, in a third client process of their own that has
 * little else to do: each presence message they get is matched with the moment the hub took its
 * change after the commit, so "commit → client" is that, not the wait for the commit, nor the
 * queueing in a busy load process. The other subscribers only count (and give the coarser
 * report → client figure).
 */
const PROBES = num('PRESENCE_BENCH_STREAM_PROBES', 100);
/** Rounds of the fan-out, each the product's stream and the plain ws reference (bench/stream-reference.ts). */
const ROUNDS = num('PRESENCE_BENCH_STREAM_ROUNDS', 2);
/** Stream workers of the fan-out's second contender (0: the product in one process only). */
const WORKERS = num('PRESENCE_BENCH_STREAM_WORKERS', 2);
/**
 * The fan-out's load processes read in rounds this far apart (0: as each frame arrives), as a
 * client busy with other work does. On loopback the kernel wakes a waiting reader inside the
 * server's write call, so a reader woken for every frame adds a wakeup to each of the server's
 * writes (~12% of the server's time in a profile), which a server writing to a network does not
 * pay. Their messages are counted, not timed for the target: the probes read each frame at once.
 */
const LOAD_READ_MS = num('PRESENCE_BENCH_STREAM_LOAD_READ_MS', 20);
const ONLY = new Set((process.env.PRESENCE_BENCH_STREAM_ONLY ?? 'idle,sse,fanout,stall,resume').split(','));
/** A heap snapshot of the server with its idle connections open, for finding what each costs. */
const SNAPSHOT = process.env.PRESENCE_BENCH_STREAM_HEAP_SNAPSHOT;
/** A CPU profile of the server while the fan-out runs (the first run), for finding its costs. */
const CPU_PROFILE = process.env.PRESENCE_BENCH_STREAM_CPU_PROFILE;
/** Loopback source addresses the clients spread over (each with its own ephemeral ports). */
const FROM = Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`);

/** A client process, asked one command at a time (stream-client.ts's commands). */
interface Child {
  ask<T = unknown>(m: unknown): Promise<T>;
}

function child(): Promise<Child> {
  const proc = fork(join(__dirname, 'stream-client.ts'), [], { execArgv: ['--require', 'tsx/cjs'] });
  let waiting: ((m: unknown) => void) | null = null;
  proc.on('message', (m) => {
    const w = waiting;
    waiting = null;
    w?.(m);
  });
  const ask = <T>(m: unknown): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      waiting = (answer) => {
        const error = (answer as { error?: string }).error;
        if (error === undefined) resolve(answer as T);
        else reject(new Error(error));
      };
      proc.send(m as object);
    });
  return new Promise((resolve) => {
    waiting = () => resolve({ ask });
  });
}

/**
 * The fan-out's load readers: in C (bench/stream-load.c, built with the machine's `cc` when the
 * bench starts), or in Node (stream-client.ts) with PRESENCE_BENCH_STREAM_LOAD=node. A Node
 * reader costs ~5 µs a message, ~0.5 of the machine's two cores at this load, which the server
 * then does not have; the C one reads the same sockets with epoll and read(2), so the figures are
 * the server's, as with its clients on other machines. The probes are always the Node client.
 */
const LOAD = process.env.PRESENCE_BENCH_STREAM_LOAD ?? 'c';
/** The C reader's executable, once built (null: Node readers). */
let loadReader: string | null = null;

function buildLoadReader(dir: string): string | null {
  if (LOAD === 'node') return null;
  const out = join(dir, 'stream-load');
  try {
    execFileSync('cc', ['-O2', '-o', out, join(__dirname, 'stream-load.c')], { stdio: 'pipe' });
  } catch (error) {
    throw new Error(
      `the stream bench builds its load reader with cc (${String(error).split('\n')[0]}): install a C compiler, or run it with PRESENCE_BENCH_STREAM_LOAD=node`,
    );
  }
  return out;
}

/**
 * A C load reader as a Child: `open` starts it with its connections' lists, the other commands
 * are lines on its standard input, each answered by one JSON line.
 */
function cReader(binary: string): Child {
  let stdin: NodeJS.WritableStream | null = null;
  let closing = false;
  const waiting: ((line: string) => void)[] = [];
  return {
    async ask<T>(m: unknown): Promise<T> {
      const c = m as { cmd: string; ms?: number };
      if (c.cmd === 'open') {
        const o = m as Open;
        const url = new URL(o.url);
        const proc = spawn(
          binary,
          [url.hostname, url.port, o.key, (o.from ?? []).join(','), String(o.stall ?? -1)],
          {
            stdio: ['pipe', 'pipe', 'inherit'],
          },
        );
        createInterface({ input: proc.stdout }).on('line', (line) => waiting.shift()?.(line));
        // It exits once closed, maybe before its last line is read.
        proc.on('exit', (code) => {
          const line = JSON.stringify(
            closing ? { closed: true } : { error: `the load reader exited (${code})` },
          );
          for (const w of waiting.splice(0)) w(line);
        });
        stdin = proc.stdin;
        stdin.write(`${o.lists.map((l) => l.join(',')).join('\n')}\n\n`);
      } else if (stdin === null) return { closed: true } as T;
      else {
        closing = c.cmd === 'close';
        stdin.write(c.cmd === 'rounds' ? `rounds ${c.ms}\n` : `${c.cmd}\n`);
      }
      const answer = JSON.parse(await new Promise<string>((r) => waiting.push(r))) as { error?: string };
      if (answer.error !== undefined) throw new Error(answer.error);
      return answer as T;
    },
  };
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = (n: number): string[] => {
  const out = new Set<string>();
  while (out.size < n) out.add(`u${Math.floor(Math.random() * USERS)}`);
  return [...out];
};
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

async function memory(): Promise<{ heap: number; rss: number }> {
  for (let i = 0; i < 3; i++) {
    gc();
    await sleep(100);
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

/** Opens `count` connections over the children, spread evenly; resolves once every snapshot is in. */
async function openAll(
  children: readonly Child[],
  url: string,
  key: string,
  count: number,
  ids: number,
  extra: { transport?: 'ws' | 'sse'; stall?: boolean; probe?: boolean } = {},
): Promise<string[][]> {
  const per = Math.ceil(count / children.length);
  const lists = children.map(() => Array.from({ length: per }, () => pick(ids)));
  await Promise.all(
    children.map((c, i) =>
      c.ask({
        cmd: 'open',
        url,
        key,
        lists: lists[i],
        stall: extra.stall === true && i === 0 ? 0 : -1,
        transport: extra.transport ?? 'ws',
        from: FROM.filter((_, j) => j % children.length === i),
        probe: extra.probe === true,
      }),
    ),
  );
  return lists.flat();
}

/** How many of the lists watch each user: the messages a change of that user is expected to make. */
function watchers(lists: readonly (readonly string[])[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const list of lists) for (const id of list) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

/** A stream worker's CPU seconds so far (processCpu), or none once it is gone. */
function workerCpu(pid: number): { user: number; system: number } {
  try {
    return processCpu(pid);
  } catch {
    return { user: 0, system: 0 };
  }
}

/** Latencies in 1 ms buckets up to 60 s (the last bucket holds anything later). */
class Histogram {
  private readonly counts = new Uint32Array(60_001);
  private n = 0;
  add(ms: number): void {
    this.counts[Math.min(Math.max(0, Math.round(ms)), this.counts.length - 1)]! += 1;
    this.n += 1;
  }
  at(q: number): number {
    const want = Math.ceil(q * this.n);
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= want && want > 0) return i;
    }
    return 0;
  }
}

/**
 * Changes at `rate`/s for `seconds`, each made by `change` (which returns how many subscribers it
 * should reach); returns how many changes and messages that made, and how far behind the rate's
 * schedule each change was made (the driver shares this process's event loop with the server).
 */
async function drive(
  change: () => number,
  rate: number,
  seconds: number,
): Promise<{ changes: number; expected: number; behind: Histogram }> {
  let changes = 0;
  let expected = 0;
  const behind = new Histogram();
  const tickMs = 10;
  const start = performance.now();
  for (;;) {
    const elapsed = performance.now() - start;
    if (elapsed >= seconds * 1000) break;
    // As many changes as are due by now: a late tick catches up, the rate holds.
    const due = Math.floor((elapsed / 1000) * rate) + 1;
    for (; changes < due; changes++) {
      behind.add(performance.now() - start - (changes * 1000) / rate);
      expected += change();
    }
    await sleep(tickMs);
  }
  return { changes, expected, behind };
}

/**
 * A change of the product: a heartbeat of a random user that flips its status; it should reach
 * every connection watching the user (`counts`, from the lists the clients were given).
 */
function productChange(svc: Service, counts: ReadonlyMap<string, number>): () => number {
  const statuses: Status[] = ['online', 'busy'];
  return () => {
    const user = `u${Math.floor(Math.random() * USERS)}`;
    const version = svc.engine.state(user)?.version ?? 0;
    void svc.engine.heartbeat(user, 'd', statuses[version % 2]!, null, 3_600_000);
    return counts.get(user) ?? 0;
  };
}

/**
 * Where a change's time goes in the server, measured on every change: from the change (its `at`,
 * the report's moment) to the hub taking it after the commit, and to the end of the flush pass
 * that wrote it to every subscriber's socket. What the clients add on top is the socket and their
 * own reading.
 */
function budget(svc: Service): {
  commit: Histogram;
  flushed: Histogram;
  /** "user:version" → when the hub took the change (ms since the epoch, fractional). */
  committedAt: Map<string, number>;
  writes(): number;
  stop(): void;
} {
  const hub = svc.stream.hub as unknown as {
    committed: (changes: readonly PresenceChange[]) => void;
    defer: (run: () => void) => void;
  };
  const commit = new Histogram();
  const flushed = new Histogram();
  const committed = hub.committed;
  const defer = hub.defer;
  let pending: number[] = [];
  const committedAt = new Map<string, number>();
  let writes = 0;
  const proto = WsTransport.prototype as {
    write: (this: WsTransport, ...args: Parameters<WsTransport['write']>) => void;
  };
  const write = proto.write;
  proto.write = function (...args) {
    writes += 1;
    write.apply(this, args);
  };
  hub.committed = function (changes) {
    const now = Date.now();
    const precise = performance.timeOrigin + performance.now();
    for (const c of changes) {
      commit.add(now - c.at);
      pending.push(c.at);
      committedAt.set(`${c.userId}:${c.version}`, precise);
    }
    committed.call(this, changes);
  };
  hub.defer = (run) =>
    defer(() => {
      run();
      const now = Date.now();
      for (const at of pending) flushed.add(now - at);
      pending = [];
    });
  return {
    commit,
    flushed,
    committedAt,
    writes: () => writes,
    stop: () => {
      proto.write = write;
      hub.committed = committed;
      hub.defer = defer;
    },
  };
}

interface FanOut {
  delivered: number;
  expected: number;
  changes: number;
  /** Changes made per second of the driving (the rate, unless the driver fell behind it). */
  kept: number;
  /** How far behind the rate's schedule changes were made: p50 / p99, ms. */
  behind: [number, number];
  p50: number;
  p99: number;
  resyncs: number;
  heapMax: number;
  seconds: number;
  /** The server's event-loop delay while changes were driven (p99, ms). */
  lagP99: number;
  /** Commit → client, exactly, over the probe subscribers' messages (ms; n messages). */
  exact: { p50: number; p99: number; max: number; n: number; unmatched: number };
  /** CPU s/s of the probe process. */
  probeCpu: number;
  /** The product only: change → hub (after the commit), change → written to every socket: p50 / p99, ms. */
  commit: [number, number] | null;
  flushed: [number, number] | null;
  /** CPU seconds per second of the run: the server (its workers included), each client process, each stream worker. */
  cpu: { server: number; serverSystem: number; clients: number[]; workers: number[] };
  /** The product in one process only: socket writes of presence messages. */
  writes: number | null;
  /** Stream worker processes the server ran (0: every connection in its own process). */
  workers: number;
  /** The client processes' own event-loop delay p99 (ms): how far behind their reading is. */
  clientLag: number[];
}

/** Whether the CPU profile (PRESENCE_BENCH_STREAM_CPU_PROFILE) was taken: of the first product run only. */
let profiled = false;

/**
 * One fan-out run: the subscribers connect (to the product at `url`, or to the plain ws
 * reference when `ref` is given), changes are driven at RATE for SECONDS, and every message is
 * counted. The probes' messages are matched with the moment the product's hub took the
 * committed change, or the reference took its change.
 */
async function fanOut(
  svc: Service,
  url: string,
  key: string,
  stall: boolean,
  ref: Reference | null = null,
): Promise<FanOut> {
  const reader = loadReader;
  const load =
    reader === null
      ? await Promise.all(Array.from({ length: CHILDREN }, () => child()))
      : Array.from({ length: CHILDREN }, () => cReader(reader));
  const prober = await child();
  const children = [...load, prober];
  const to = ref?.url ?? url;
  const lists = await openAll(load, to, key, SUBSCRIBERS - PROBES, 100, { stall });
  lists.push(...(await openAll([prober], to, key, PROBES, 100, { probe: true })));
  const counts = watchers(lists);
  if (LOAD_READ_MS > 0) await Promise.all(load.map((c) => c.ask({ cmd: 'rounds', ms: LOAD_READ_MS })));
  await sleep(1000);
  gc();
  // Before the reset: every message a probe counts from here on is of a change the budget saw.
  const probe = ref === null ? budget(svc) : null;
  const takenAt = probe?.committedAt ?? new Map<string, number>();
  const change =
    ref === null
      ? productChange(svc, counts)
      : () => {
          const taken = ref.change(`u${Math.floor(Math.random() * USERS)}`);
          takenAt.set(taken.key, taken.at);
          return taken.sent;
        };
  await Promise.all(children.map((c) => c.ask({ cmd: 'reset' })));
  let heapMax = 0;
  const sampler = setInterval(() => (heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)), 200);
  const sent0 = svc.stream.stats.messagesSent;
  const pids = ref === null ? (svc.stream.workers?.pids() ?? []) : [];
  const workerCpu0 = pids.map(workerCpu);
  const session = CPU_PROFILE === undefined || stall || ref !== null || profiled ? null : new Session();
  if (session !== null) {
    profiled = true;
    session.connect();
    await new Promise((r) => session.post('Profiler.enable', () => session.post('Profiler.start', r)));
  }
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const { changes, expected, behind } = await drive(change, RATE, SECONDS);
  const cpu = process.cpuUsage(cpu0);
  const driven = (performance.now() - started) / 1000;
  const workersCpu = pids.map((pid, i) => {
    const now = workerCpu(pid);
    return { user: now.user - workerCpu0[i]!.user, system: now.system - workerCpu0[i]!.system };
  });
  const clientCpu = await Promise.all(
    children.map((c) => c.ask<{ cpu: number; lag: number }>({ cmd: 'cpu' })),
  );
  lag.disable();
  if (session !== null)
    await new Promise<void>((r) =>
      session.post('Profiler.stop', (_e, { profile }) => {
        writeFileSync(CPU_PROFILE!, JSON.stringify(profile));
        session.disconnect();
        r();
      }),
    );
  // The stalled subscriber's share is never delivered: the healthy ones' is what must arrive.
  const n = Math.ceil((SUBSCRIBERS - PROBES) / CHILDREN) * CHILDREN + PROBES;
  const stalledShare = stall ? Math.round(expected / n) : 0;
  let stats: { received: number; resyncs: number; p50: number; p99: number }[] = [];
  const until = performance.now() + 30_000;
  for (;;) {
    stats = await Promise.all(children.map((c) => c.ask<(typeof stats)[number]>({ cmd: 'stats' })));
    const got = stats.reduce((n, s) => n + s.received, 0);
    if (got >= expected - stalledShare || performance.now() > until) break;
    await sleep(100);
  }
  const seconds = (performance.now() - started) / 1000;
  probe?.stop();
  const exact = new Histogram();
  const records = await prober.ask<{ keys: string[]; at: number[] }>({ cmd: 'probes' });
  let unmatched = 0;
  records.keys.forEach((k, i) => {
    const at = takenAt.get(k);
    if (at === undefined) unmatched += 1;
    else exact.add(records.at[i]! - at);
  });
  clearInterval(sampler);
  await sleep(1100); // the workers' counters reach this process once a second
  const sent = svc.stream.stats.messagesSent - sent0;
  await Promise.all(children.map((c) => c.ask({ cmd: 'close' })));
  await sleep(1000);
  return {
    delivered: stats.reduce((n, s) => n + s.received, 0),
    expected: stall ? Math.min(expected - stalledShare, sent) : expected,
    changes,
    kept: changes / driven,
    behind: [behind.at(0.5), behind.at(0.99)],
    p50: Math.max(...stats.map((s) => s.p50)),
    p99: Math.max(...stats.map((s) => s.p99)),
    resyncs: stats.reduce((n, s) => n + s.resyncs, 0),
    heapMax,
    seconds,
    lagP99: lag.percentile(99) / 1e6,
    exact: { p50: exact.at(0.5), p99: exact.at(0.99), max: exact.at(1), n: records.keys.length, unmatched },
    probeCpu: clientCpu.at(-1)!.cpu / driven,
    commit: probe === null ? null : [probe.commit.at(0.5), probe.commit.at(0.99)],
    flushed: probe === null || pids.length > 0 ? null : [probe.flushed.at(0.5), probe.flushed.at(0.99)],
    writes: probe === null || pids.length > 0 ? null : probe.writes(),
    workers: pids.length,
    cpu: {
      server:
        ((cpu.user + cpu.system) / 1e6 + workersCpu.reduce((a, w) => a + w.user + w.system, 0)) / driven,
      serverSystem: (cpu.system / 1e6 + workersCpu.reduce((a, w) => a + w.system, 0)) / driven,
      clients: clientCpu.slice(0, -1).map((c) => c.cpu / driven),
      workers: workersCpu.map((w) => (w.user + w.system) / driven),
    },
    clientLag: clientCpu.slice(0, -1).map((c) => c.lag),
  };
}

/**
 * One real `presence` message of the product's stream, as a client gets it: a `ws` client
 * watches u0 and u0's status flips. The reference's messages are made in its shape.
 */
async function recordPresence(svc: Service, url: string, key: string): Promise<string> {
  const ws = new WebSocket(`${url}/v1/ws?user_ids=u0&access_token=${key}`, { perMessageDeflate: false });
  try {
    return await new Promise<string>((resolve, reject) => {
      ws.on('error', reject);
      ws.on('message', (data: Buffer) => {
        const text = data.toString('utf8');
        const type = (JSON.parse(text) as { type: string }).type;
        if (type === 'snapshot') {
          const version = svc.engine.state('u0')?.version ?? 0;
          void svc.engine.heartbeat('u0', 'd', version % 2 === 0 ? 'online' : 'busy', null, 3_600_000);
        } else if (type === 'presence') resolve(text);
      });
    });
  } finally {
    ws.terminate();
  }
}

/**
 * Heap and RSS of the server per idle connection (each watching IDLE_IDS users): connections are
 * opened in five steps of count/5, each step measured after full collections, and the figure is
 * the slope of the last four (least squares). It leaves out what grows once with the first
 * connections (new space, code, caches), which a single before/after difference would spread
 * over them.
 */
async function idle(
  svc: Service,
  url: string,
  key: string,
  count: number,
  transport: 'ws' | 'sse',
): Promise<{ heap: number; rss: number; n: number; whole: { heap: number; rss: number } }> {
  const steps = 5;
  const children = await Promise.all(Array.from({ length: CHILDREN }, () => child()));
  const start = await memory();
  const points: { n: number; heap: number; rss: number }[] = [];
  for (let i = 0; i < steps; i++) {
    await openAll(children, url, key, count / steps, IDLE_IDS, { transport });
    await sleep(300);
    const m = await memory();
    points.push({ n: svc.stream.hub.connections, ...m });
  }
  if (SNAPSHOT !== undefined) writeHeapSnapshot(`${SNAPSHOT}.${transport}`);
  await Promise.all(children.map((c) => c.ask({ cmd: 'close' })));
  await sleep(1000);
  const last = points.at(-1)!;
  const whole = { heap: (last.heap - start.heap) / last.n, rss: (last.rss - start.rss) / last.n };
  points.shift();
  const slope = (of: 'heap' | 'rss'): number => {
    const mx = points.reduce((a, p) => a + p.n, 0) / points.length;
    const my = points.reduce((a, p) => a + p[of], 0) / points.length;
    const sxy = points.reduce((a, p) => a + (p.n - mx) * (p[of] - my), 0);
    const sxx = points.reduce((a, p) => a + (p.n - mx) ** 2, 0);
    return sxy / sxx;
  };
  return { heap: slope('heap'), rss: slope('rss'), n: last.n, whole };
}

/**
 * The open-file limit this process runs under (Linux: /proc/self/limits), or null elsewhere. Node
 * raises its soft limit to the hard one as it starts, so this is what the server may hold.
 */
function openFilesLimit(): number | null {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('Max open files'));
    const soft = line?.split(/\s{2,}/)[1];
    return soft === undefined || soft === 'unlimited' ? null : Number(soft);
  } catch {
    return null;
  }
}

export async function benchStream(): Promise<Figure[]> {
  // Each connection is a file in the server (and one in a client process): say so up front
  // rather than fail with EMFILE halfway.
  const limit = openFilesLimit();
  const needed = Math.max(ONLY.has('idle') ? IDLE : 0, SUBSCRIBERS) + 500;
  if (limit !== null && limit < needed)
    throw new Error(
      `the stream bench needs ~${needed} open files and this process may hold ${limit}: raise the hard limit (ulimit -Hn), or scale it down (PRESENCE_BENCH_STREAM_IDLE, PRESENCE_BENCH_STREAM_SUBSCRIBERS)`,
    );
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-stream-'));
  if (ONLY.has('fanout') || ONLY.has('stall')) loadReader = buildLoadReader(dir);
  const servers: Server[] = [];
  const figures: Figure[] = [];
  try {
    const main = await startServer(dir, 'bench', 0);
    servers.push(main);
    const { svc, url, key } = main;
    if (ONLY.has('idle')) {
      const ws = await idle(svc, url, key, IDLE, 'ws');
      figures.push(
        {
          name: `heap per idle WebSocket connection (${fmt(ws.n)} connections, ${IDLE_IDS} users each)`,
          value: kb(ws.heap),
          target: '≤ 8 KB at 15,000 connections',
          met: ws.heap <= 8 * 1024 && ws.n >= 15_000,
        },
        {
          name: `RSS per idle WebSocket connection (${fmt(ws.n)} connections)`,
          value: kb(ws.rss),
          target: '≤ 12 KB',
          met: ws.rss <= 12 * 1024 && ws.n >= 15_000,
          note: `slopes from ${fmt(ws.n / 5)} to ${fmt(ws.n)} connections; from none to ${fmt(ws.n)}, one-off growth included: ${kb(ws.whole.heap)} heap, ${kb(ws.whole.rss)} RSS`,
        },
      );
    }
    if (ONLY.has('sse')) {
      const sse = await idle(svc, url, key, SSE_IDLE, 'sse');
      figures.push({
        name: `heap / RSS per idle SSE connection (${fmt(sse.n)} connections, ${IDLE_IDS} users each)`,
        value: `${kb(sse.heap)} / ${kb(sse.rss)}`,
        note: `from none: ${kb(sse.whole.heap)} / ${kb(sse.whole.rss)}`,
      });
    }

    let healthy: FanOut | null = null;
    if (ONLY.has('fanout')) {
      // The product in one process, the product with its stream workers (a service of its own)
      // and the plain ws reference, in alternating rounds (who goes first rotates too): the
      // machine's load swings, so they are compared round by round.
      const split = WORKERS > 0 ? await startServer(dir, 'workers', WORKERS) : null;
      if (split !== null) servers.push(split);
      const ref = await startReference(await recordPresence(svc, url, key));
      let runs: FanOut[][];
      try {
        runs = await alternate(ROUNDS, [
          () => fanOut(svc, url, key, false),
          ...(split === null ? [] : [() => fanOut(split.svc, split.url, split.key, false)]),
          () => fanOut(svc, url, key, false, ref),
        ]);
      } finally {
        await ref.close();
      }
      const ones = runs[0]!;
      const references = runs.at(-1)!;
      const splits = split === null ? null : runs[1]!;
      // The figures with targets are of the product as it is meant to run them: with its workers.
      const products = splits ?? ones;
      const rounds = products.map((product, i) => ({ product, one: ones[i]!, reference: references[i]! }));
      healthy = ones[0]!;
      const head = products[0]!;
      const how =
        split === null
          ? 'in one process'
          : `with ${WORKERS} stream workers (PRESENCE_STREAM_WORKERS=${WORKERS})`;
      const fellBehind = (f: FanOut): boolean => f.kept < 0.95 * RATE;
      const p99Ratio = ratioOf(rounds.map((r) => r.product.exact.p99 / Math.max(1, r.reference.exact.p99)));
      const behindRounds = rounds.filter((r) => fellBehind(r.reference)).length;
      const cpuOf = (f: FanOut): string =>
        `${f.cpu.server.toFixed(2)} CPU s/s (${f.cpu.serverSystem.toFixed(2)} in the kernel${f.workers > 0 ? `; workers ${f.cpu.workers.map((c) => c.toFixed(2)).join(', ')}` : ''})`;
      const rate = (f: FanOut): number => f.delivered / f.seconds;
      figures.push(
        {
          name: `delivered ${how} (${fmt(SUBSCRIBERS)} subscribers × 100 of ${fmt(USERS)} users, ${fmt(head.changes / SECONDS)} changes/s for ${SECONDS} s)`,
          value: `${fmt(head.delivered)} of ${fmt(head.expected)} expected, ${head.resyncs} resyncs`,
          target: 'every message, no subscriber dropped',
          met: rounds.every((r) => r.product.delivered === r.product.expected && r.product.resyncs === 0),
          note:
            rounds.length > 1
              ? `this and the next figures: the first round (the target: in every round, ${rounds.map((r) => `${fmt(r.product.delivered)} of ${fmt(r.product.expected)}`).join('; ')})`
              : undefined,
        },
        {
          name: `messages/s delivered ${how}`,
          value: fmt(rate(head)),
          target: '~100,000/s (10,000 subscribers × 100 ids × 1,000 changes/s ÷ 10,000 users)',
          note: 'delivered ÷ (the run + the time the last message took to arrive)',
          reference: {
            name: 'plain ws in the same run (product ÷ plain ws, per round)',
            value: `product ${rounds.map((r) => fmt(rate(r.product))).join(', ')}/s; plain ws ${rounds.map((r) => fmt(rate(r.reference))).join(', ')}/s`,
            ratio: ratioOf(rounds.map((r) => rate(r.product) / rate(r.reference))),
          },
        },
        {
          name: `commit → client latency ${how} (${fmt(PROBES)} probe subscribers, ${fmt(head.exact.n)} messages)`,
          value: `p50 ${head.exact.p50} ms, p99 ${head.exact.p99} ms, max ${head.exact.max} ms; p99 per round ${rounds.map((r) => r.product.exact.p99).join(', ')} ms`,
          target: 'p99 ≤ 100 ms',
          met: rounds.every(
            (r) => r.product.exact.p99 <= 100 && r.product.exact.unmatched === 0 && r.product.exact.n > 0,
          ),
          reference: {
            name: `plain ws in the same run (product p99 ÷ its p99, per round: lower is better here)${behindRounds > 0 ? `; in ${behindRounds} of ${rounds.length} rounds it FELL BEHIND the rate, so its p99 there is of a lighter load than the product's` : ''}`,
            value: `product p99 ${rounds.map((r) => r.product.exact.p99).join(', ')} ms; plain ws p99 ${rounds.map((r) => r.reference.exact.p99).join(', ')} ms`,
            ratio: p99Ratio,
          },
          note: `from the main process's hub taking the committed change to the probe client reading it (a process of its own, CPU ${head.probeCpu.toFixed(2)} s/s; the load readers ${loadReader === null ? 'in Node (stream-client.ts)' : 'in C (stream-load.c)'}, reading in rounds ${LOAD_READ_MS} ms apart)${head.exact.unmatched > 0 ? `; ${head.exact.unmatched} messages not matched to a commit` : ''}; the main process's event-loop delay p99 ${head.lagP99.toFixed(0)} ms; server ${cpuOf(head)}; client processes ${head.cpu.clients.map((c) => c.toFixed(2)).join(', ')} CPU s/s`,
        },
        {
          name: 'report → client latency, every subscriber',
          value: `p50 ${head.p50} ms, p99 ${head.p99} ms`,
          note: "from the report (observed_at) to the client, the worst client process's percentiles: includes the wait for the group commit and the load processes' own queueing",
        },
      );
      if (split !== null)
        figures.push({
          name: 'the same in one process (PRESENCE_STREAM_WORKERS=0), per round',
          value: rounds
            .map(
              (r) =>
                `${fmt(r.one.delivered)} of ${fmt(r.one.expected)} delivered, ${fmt(rate(r.one))}/s, commit → client p50 ${r.one.exact.p50} ms, p99 ${r.one.exact.p99} ms, server ${cpuOf(r.one)}`,
            )
            .join('; '),
          reference: {
            name: `with ${WORKERS} workers ÷ in one process, commit → client p99 per round (lower is better)`,
            ratio: ratioOf(rounds.map((r) => r.product.exact.p99 / Math.max(1, r.one.exact.p99))),
          },
        });
      figures.push({
        name: 'where it goes in one process (p50 / p99)',
        value: `change → hub (committed) ${healthy.commit![0]} / ${healthy.commit![1]} ms, change → written to every socket ${healthy.flushed![0]} / ${healthy.flushed![1]} ms`,
        note: `${fmt(healthy.writes!)} socket writes (${(healthy.delivered / healthy.writes!).toFixed(2)} messages each); CPU s/s while driven: server ${healthy.cpu.server.toFixed(2)} (${healthy.cpu.serverSystem.toFixed(2)} in the kernel), client processes ${healthy.cpu.clients.map((c) => c.toFixed(2)).join(', ')}${loadReader === null ? ` (their event-loop delay p99 ${healthy.clientLag.map((l) => l.toFixed(0)).join(', ')} ms)` : ''}; changes made behind the rate's schedule p50 / p99 ${healthy.behind[0]} / ${healthy.behind[1]} ms`,
      });
      rounds.forEach(({ product, reference }, i) => {
        figures.push({
          name: `plain ws reference, round ${i + 1} of ${rounds.length}: the same clients and probes, no presence logic, one ws.send per message per subscriber`,
          value: `${fellBehind(reference) ? 'FELL BEHIND the rate: ' : ''}kept ${fmt(reference.kept)} changes/s of ${fmt(RATE)}; ${fmt(reference.delivered)} of ${fmt(reference.expected)} messages delivered (${fmt(rate(reference))}/s); commit → client p50 ${reference.exact.p50} ms, p99 ${reference.exact.p99} ms, max ${reference.exact.max} ms (${fmt(reference.exact.n)} probe messages); server ${cpuOf(reference)}`,
          note: `"commit" here is the moment the reference took the change${reference.exact.unmatched > 0 ? ` (${reference.exact.unmatched} probe messages not matched)` : ''}; changes made behind the rate's schedule p50 / p99 ${reference.behind[0]} / ${reference.behind[1]} ms, this process's event-loop delay p99 ${reference.lagP99.toFixed(0)} ms; client processes ${reference.cpu.clients.map((c) => c.toFixed(2)).join(', ')} CPU s/s, probes ${reference.probeCpu.toFixed(2)}. The product ${how} this round: kept ${fmt(product.kept)} changes/s, ${fmt(product.delivered)} of ${fmt(product.expected)} delivered, commit → client p50 ${product.exact.p50} ms, p99 ${product.exact.p99} ms, server ${cpuOf(product)}; p99 ${(product.exact.p99 / Math.max(1, reference.exact.p99)).toFixed(1)}× the reference's`,
        });
      });
    }
    if (ONLY.has('stall')) {
      const stalled = await fanOut(svc, url, key, true);
      const without = healthy === null ? '' : ` (without it ${healthy.exact.p99} ms)`;
      figures.push({
        name: 'one subscriber stops reading: the healthy ones',
        value: `commit → client p99 ${stalled.exact.p99} ms${without}, ${fmt(stalled.delivered)} of ${fmt(stalled.expected)} delivered, ${stalled.resyncs} resyncs; server heap peak ${(stalled.heapMax / 2 ** 20).toFixed(0)} MiB${healthy === null ? '' : ` (without ${(healthy.heapMax / 2 ** 20).toFixed(0)} MiB)`}`,
        target: 'never delays the others; memory bounded by its cap (4 MiB unsent)',
        note: "expected excludes the stalled subscriber's share, estimated as the average one",
        met: stalled.exact.p99 <= Math.max(100, (healthy?.exact.p99 ?? 50) * 2),
      });
    }

    // Resume after a 10 s disconnect under load: every missed change replayed, in order, none twice.
    if (ONLY.has('resume')) {
      const c = await child();
      const [answer] = await Promise.all([
        c.ask<{ outcome: string; replayed: number; gaps: number; twice: number }>({
          cmd: 'resume',
          url,
          key,
          list: pick(100),
          beforeMs: 2000,
          gapMs: 10_000,
          afterMs: 2000,
        }),
        drive(productChange(svc, new Map()), RATE, 14.5),
      ]);
      await c.ask({ cmd: 'close' });
      figures.push({
        name: `resume after a 10 s disconnect at ${fmt(RATE)} changes/s (100 users watched)`,
        value: `${answer.outcome}: ${fmt(answer.replayed)} changes replayed, ${answer.gaps} gaps, ${answer.twice} twice`,
        target: 'every missed change replayed, in order, none twice',
        met: answer.outcome === 'resumed' && answer.gaps === 0 && answer.twice === 0 && answer.replayed > 0,
        note: "each user's versions checked to rise by exactly one, through the replay and after it",
      });
    }
  } finally {
    for (const server of servers) await server.svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

interface Server {
  readonly svc: Service;
  readonly url: string;
  readonly key: string;
}

/**
 * A service on its own SQLite file, listening on loopback, with USERS users whose presence JSON
 * is made first (the read cache), so that the figures are what the connections cost, not the
 * cache their snapshots would fill.
 */
async function startServer(dir: string, name: string, workers: number): Promise<Server> {
  const svc = await createService(
    parseEnv({
      PRESENCE_DB: join(dir, `${name}.db`),
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      LOG_LEVEL: 'silent',
      PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY: '1000000',
      PRESENCE_STREAM_WORKERS: String(workers),
    }),
    { logger: false },
  );
  const key = encodeURIComponent((await svc.keys.create(['read'], 'bench')).key);
  await svc.app.listen({ port: 0, host: '127.0.0.1' });
  const url = `ws://127.0.0.1:${(svc.app.server.address() as AddressInfo).port}`;
  for (let i = 0; i < USERS; i++) void svc.engine.heartbeat(`u${i}`, 'd', 'online', null, 3_600_000);
  await svc.engine.heartbeat('u0', 'd', 'online', null, 3_600_000);
  for (let i = 0; i < USERS; i += 1000)
    svc.engine.getManyJson(Array.from({ length: 1000 }, (_, j) => `u${i + j}`));
  return { svc, url, key };
}
