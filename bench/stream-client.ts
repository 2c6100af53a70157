/**
 * @module bench/stream-client
 * A child process of `npm run bench -- stream`: opens WebSocket stream connections (the `ws`
 * package, as a Node client would), each watching its own list of users, and reports over IPC
 * what it received and how late (now − the presence's `observed_at`, the moment of the report;
 * both processes read the same wall clock). It can also stop reading on one connection (a
 * stalled subscriber), to show that the others do not wait for it.
 */

import WebSocket from 'ws';

interface Open {
  readonly cmd: 'open';
  readonly url: string;
  readonly key: string;
  /** One list of user ids per connection. */
  readonly lists: readonly (readonly string[])[];
  /** Index of a connection that stops reading after its snapshot, or -1. */
  readonly stall?: number;
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
  Open | Resume | { readonly cmd: 'stats' } | { readonly cmd: 'reset' } | { readonly cmd: 'close' };

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

const sockets: WebSocket[] = [];
let received = 0;
let latencies: number[] = [];
let resyncs = 0;

function send(m: unknown): void {
  process.send!(m);
}

async function open(c: Open): Promise<void> {
  let ready = 0;
  await new Promise<void>((done, fail) => {
    c.lists.forEach((list, i) => {
      const ws = new WebSocket(`${c.url}/v1/ws?user_ids=${list.join(',')}&access_token=${c.key}`, {
        perMessageDeflate: false,
      });
      sockets.push(ws);
      ws.on('error', fail);
      ws.on('close', (code) => {
        if (code === 4008) resyncs += 1;
      });
      ws.on('message', (data: Buffer) => {
        const text = data.toString('utf8');
        if (text.startsWith('{"type":"snapshot"')) {
          if (i === c.stall) (ws as unknown as { _socket: { pause(): void } })._socket.pause();
          if (++ready === c.lists.length) done();
          return;
        }
        received += 1;
        const at = /"observed_at":"([^"]+)"/.exec(text);
        if (at !== null) latencies.push(Date.now() - Date.parse(at[1]!));
      });
    });
  });
}

process.on('message', (m: Command) => {
  void (async () => {
    switch (m.cmd) {
      case 'open':
        await open(m);
        send({ ready: sockets.length });
        break;
      case 'resume':
        send(await resume(m));
        break;
      case 'stats': {
        const sorted = latencies.slice().sort((a, b) => a - b);
        const p = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
        send({ received, resyncs, p50: p(0.5), p99: p(0.99), max: sorted.at(-1) ?? 0 });
        break;
      }
      case 'reset':
        received = 0;
        latencies = [];
        send({ ok: true });
        break;
      case 'close':
        for (const ws of sockets) ws.terminate();
        send({ closed: true });
        process.exit(0);
    }
  })();
});
send({ started: true });
