/**
 * @module bench/stream-client
 * A child process of `npm run bench -- stream`: opens stream connections (WebSocket or
 * Server-Sent Events), each watching its own list of users, and reports over IPC what it
 * received and how late (now − the presence's `observed_at`, the moment of the report; both
 * processes read the same wall clock). It can also stop reading on one connection (a stalled
 * subscriber), to show that the others do not wait for it.
 *
 * The many WebSocket connections are read by a lean client here (the handshake over `net`, then
 * every read into one shared buffer with `onread` and its frames parsed in place, pings
 * answered): the clients share the machine's two cores with the server, and `ws` per message (a
 * Buffer, an event, a string) would take a good part of them. The fan-out's load processes can
 * also read in rounds (`rounds`), the probes always as each frame arrives.
 * The resume check uses the `ws` package, as a Node client would.
 *
 * Connections are spread over several loopback source addresses (127.0.0.2, …): each has its own
 * range of ephemeral ports, so tens of thousands of connections opened and closed in one run do
 * not run out of them (a closed one keeps its port in TIME_WAIT for a minute).
 */

import { randomBytes } from 'node:crypto';
import { request, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';

import WebSocket from 'ws';

/** The `open` command (bench/stream.ts sends it to this client and to the C reader alike). */
export interface Open {
  readonly cmd: 'open';
  readonly url: string;
  readonly key: string;
  /** One list of user ids per connection. */
  readonly lists: readonly (readonly string[])[];
  /** Index of a connection that stops reading after its snapshot, or -1. */
  readonly stall?: number;
  readonly transport?: 'ws' | 'sse';
  /** Loopback source addresses to spread the connections over. */
  readonly from?: readonly string[];
  /** Probe connections: every presence message's user, version and arrival time is recorded. */
  readonly probe?: boolean;
}
/** One connection that goes away for `gapMs` and resumes; every version checked to follow the last. */
interface Resume {
  readonly cmd: 'resume';
  readonly url: string;
  readonly key: string;
  readonly list: readonly string[];
  readonly beforeMs: number;
  readonly gapMs: number;
  readonly afterMs: number;
}
type Command =
  | Open
  | Resume
  | { readonly cmd: 'stats' }
  | { readonly cmd: 'reset' }
  | { readonly cmd: 'cpu' }
  | { readonly cmd: 'probes' }
  | { readonly cmd: 'rounds'; readonly ms: number }
  | { readonly cmd: 'close' };

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Connections being opened at once (the server's listen backlog is 511). */
const OPENING = 200;

async function resume(c: Resume): Promise<unknown> {
  const versions = new Map<string, number>();
  let gaps = 0;
  let twice = 0;
  let replayed = 0;
  let outcome: 'resumed' | 'snapshot' | null = null;
  let position = '';
  let phase: 'before' | 'replay' | 'after' = 'before';
  const connect = (since: string | null) =>
    new Promise<WebSocket>((done) => {
      const q = since === null ? '' : `&since=${since}`;
      const ws = new WebSocket(`${c.url}/v1/ws?user_ids=${c.list.join(',')}&access_token=${c.key}${q}`, {
        perMessageDeflate: false,
      });
      ws.on('message', (data: Buffer) => {
        const m = JSON.parse(data.toString('utf8')) as {
          type: string;
          presence?: Record<string, { version: number }>;
          user_id?: string;
          version?: number;
          position?: string;
        };
        if (m.position !== undefined) position = m.position;
        if (m.type === 'snapshot') {
          if (since !== null) outcome = 'snapshot';
          for (const [id, p] of Object.entries(m.presence ?? {})) versions.set(id, p.version);
          done(ws);
        } else if (m.type === 'resumed') {
          outcome = 'resumed';
          phase = 'after';
        } else if (m.type === 'presence') {
          const last = versions.get(m.user_id!) ?? 0;
          if (m.version! <= last) twice += 1;
          else if (m.version !== last + 1) gaps += 1;
          versions.set(m.user_id!, Math.max(last, m.version!));
          if (phase === 'replay') replayed += 1;
        }
      });
      if (since !== null) ws.on('open', () => done(ws));
    });
  const first = await connect(null);
  await wait(c.beforeMs);
  first.terminate();
  const since = position;
  await wait(c.gapMs);
  phase = 'replay';
  const again = await connect(since);
  await wait(c.afterMs);
  again.terminate();
  return { outcome, replayed, gaps, twice };
}

const closers: (() => void)[] = [];
/** This process's CPU use and event-loop delay since the last reset: is the client the bottleneck? */
let cpuFrom = process.cpuUsage();
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
let received = 0;
let resyncs = 0;
/** Latencies in 1 ms buckets up to 60 s (the last bucket holds anything later). */
let histogram = new Uint32Array(60_001);

const OBSERVED = /"observed_at":"([^"]+)"/;

function late(observedAt: string): void {
  const ms = Math.max(0, Date.now() - Date.parse(observedAt));
  histogram[Math.min(ms, histogram.length - 1)]! += 1;
}

function presence(text: string): void {
  received += 1;
  const at = OBSERVED.exec(text);
  if (at !== null) late(at[1]!);
}

const OBSERVED_KEY = Buffer.from('"observed_at":"');
const SNAPSHOT_START = Buffer.from('{"type":"snapshot"');
/** A pong with no payload, masked (client frames are) with a zero mask. */
const PONG = Buffer.from([0x8a, 0x80, 0, 0, 0, 0]);

function percentiles(): { p50: number; p99: number; max: number } {
  const total = histogram.reduce((n, x) => n + x, 0);
  const at = (q: number): number => {
    const want = Math.ceil(q * total);
    let seen = 0;
    for (let i = 0; i < histogram.length; i++) {
      seen += histogram[i]!;
      if (seen >= want && want > 0) return i;
    }
    return 0;
  };
  let max = 0;
  for (let i = histogram.length - 1; i >= 0; i--)
    if (histogram[i]! > 0) {
      max = i;
      break;
    }
  return { p50: at(0.5), p99: at(0.99), max };
}

/** Probe records since the last reset: "user:version" and the arrival (ms since the epoch, fractional). */
let probeKeys: string[] = [];
let probeAt: number[] = [];
/** A wall clock finer than Date.now(): the process's start on the system clock plus the monotonic time since. */
const wallNow = (): number => performance.timeOrigin + performance.now();

function probed(text: string): void {
  const m = JSON.parse(text) as { user_id: string; version: number };
  probeKeys.push(`${m.user_id}:${m.version}`);
  probeAt.push(wallNow());
}

/**
 * From now on this process reads in rounds: it sleeps `ms` (blocked in a futex, not waiting in
 * epoll), then takes everything that arrived in one pass of the event loop, and again. Waiting in
 * epoll, it would be woken by every frame the server writes, a wakeup in each of the server's
 * writes (bench/stream.ts, PRESENCE_BENCH_STREAM_LOAD_READ_MS).
 */
function readInRounds(ms: number): void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  const round = (): void => {
    Atomics.wait(cell, 0, 0, ms);
    setImmediate(round);
  };
  setImmediate(round);
}

function send(m: unknown): void {
  process.send!(m);
}

/**
 * Every lean WebSocket connection of this process reads into this one buffer (`onread`): no
 * Buffer per read and no Readable stream in between. Reads are handled one at a time, and what a
 * read leaves of an unfinished frame is copied out before the next.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** A WebSocket connection read by hand; resolves once its snapshot is in. */
function openWs(c: Open, list: readonly string[], stall: boolean, from: string | undefined): Promise<void> {
  const probe = c.probe === true;
  const url = new URL(c.url);
  return new Promise((done, fail) => {
    let upgraded = false;
    let ready = false;
    /** The unfinished frame (or response head) the last read ended with, copied out of READ_BUFFER. */
    let rest: Buffer | null = null;
    const read = (n: number, into: Buffer): boolean => {
      let buf = rest === null ? into.subarray(0, n) : Buffer.concat([rest, into.subarray(0, n)]);
      rest = null;
      if (!upgraded) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) {
          rest = Buffer.from(buf);
          return true;
        }
        if (!buf.subarray(0, 13).toString('latin1').includes(' 101')) {
          fail(new Error(`upgrade refused: ${buf.subarray(0, end).toString('latin1')}`));
          return false;
        }
        upgraded = true;
        buf = buf.subarray(end + 4);
      }
      let off = 0;
      while (buf.length - off >= 2) {
        const opcode = buf[off]! & 0x0f;
        let length = buf[off + 1]! & 0x7f;
        let header = 2;
        if (length === 126) {
          if (buf.length - off < 4) break;
          length = buf.readUInt16BE(off + 2);
          header = 4;
        } else if (length === 127) {
          if (buf.length - off < 10) break;
          length = buf.readUInt32BE(off + 6);
          header = 10;
        }
        if (buf.length - off < header + length) break;
        const start = off + header;
        const end = start + length;
        off = end;
        if (opcode === 1) {
          if (!ready && buf.indexOf(SNAPSHOT_START, start) === start) {
            ready = true;
            done();
            if (stall) return false; // stops reading for good: the stalled subscriber
            continue;
          }
          if (buf[start + 9] !== 0x70) continue; // {"type":"p… — presence; anything else is not counted
          received += 1;
          if (probe) probed(buf.toString('utf8', start, end));
          const at = buf.indexOf(OBSERVED_KEY, start);
          if (at >= 0 && at < end)
            late(buf.toString('latin1', at + OBSERVED_KEY.length, at + OBSERVED_KEY.length + 24));
        } else if (opcode === 9) socket.write(PONG);
        else if (opcode === 8 && length >= 2 && buf.readUInt16BE(start) === 4008) resyncs += 1;
      }
      if (off < buf.length) rest = Buffer.from(buf.subarray(off));
      return true;
    };
    const socket = connect({
      host: url.hostname,
      port: Number(url.port),
      localAddress: from,
      onread: { buffer: READ_BUFFER, callback: read },
    });
    closers.push(() => socket.destroy());
    socket.on('error', fail);
    socket.write(
      `GET /v1/ws?user_ids=${list.join(',')}&access_token=${c.key} HTTP/1.1\r\nHost: ${url.host}\r\n` +
        `Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n\r\n`,
    );
  });
}

/** A Server-Sent Events connection; resolves once its snapshot is in. */
function openSse(c: Open, list: readonly string[], stall: boolean, from: string | undefined): Promise<void> {
  const url = new URL(`${c.url.replace(/^ws/, 'http')}/v1/stream?user_ids=${list.join(',')}`);
  return new Promise((done, fail) => {
    const req = request(url, {
      headers: { authorization: `Bearer ${decodeURIComponent(c.key)}`, accept: 'text/event-stream' },
      localAddress: from,
      agent: false,
    });
    req.on('error', fail);
    req.on('response', (res: IncomingMessage) => {
      if (res.statusCode !== 200) {
        fail(new Error(`SSE answered ${res.statusCode}`));
        return;
      }
      closers.push(() => res.destroy());
      res.setEncoding('latin1');
      let buffer = '';
      let ready = false;
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (block.startsWith('event: snapshot')) {
            if (!ready) {
              ready = true;
              if (stall) res.pause();
              done();
            }
          } else if (block.startsWith('event: presence')) presence(block);
          else if (block.startsWith('event: resync')) resyncs += 1;
        }
      });
    });
    req.end();
  });
}

async function open(c: Open): Promise<void> {
  const from = c.from ?? [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < c.lists.length) {
      const i = next++;
      const via = from.length === 0 ? undefined : from[i % from.length];
      const stall = i === c.stall;
      await (c.transport === 'sse' ? openSse : openWs)(c, c.lists[i]!, stall, via);
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPENING, c.lists.length) }, worker));
}

process.on('message', (m: Command) => {
  void (async () => {
    switch (m.cmd) {
      case 'open':
        try {
          await open(m);
          send({ ready: closers.length });
        } catch (error) {
          send({ error: String(error) });
        }
        break;
      case 'resume':
        send(await resume(m));
        break;
      case 'stats':
        send({ received, resyncs, ...percentiles() });
        break;
      case 'cpu': {
        const used = process.cpuUsage(cpuFrom);
        send({ cpu: (used.user + used.system) / 1e6, lag: loopDelay.percentile(99) / 1e6 });
        break;
      }
      case 'probes':
        send({ keys: probeKeys, at: probeAt });
        break;
      case 'rounds':
        readInRounds(m.ms);
        send({ ok: true });
        break;
      case 'reset':
        received = 0;
        probeKeys = [];
        probeAt = [];
        histogram = new Uint32Array(histogram.length);
        cpuFrom = process.cpuUsage();
        loopDelay.reset();
        send({ ok: true });
        break;
      case 'close':
        for (const close of closers.splice(0)) close();
        send({ closed: true });
        setTimeout(() => process.exit(0), 100);
    }
  })();
});
send({ started: true });
