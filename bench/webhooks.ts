/**
 * @module bench/webhooks
 * Webhook figures (issue 4): change-to-webhook latency at 1,000 changes/s, and deliveries/s with
 * 100 in flight next to the raw undici POST ceiling measured in the same run, against the same
 * local receiver. The receiver runs in a worker thread, so it does not share the event loop it is
 * measuring; both threads stamp times with `performance.timeOrigin + performance.now()`.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';

import { Agent, request } from 'undici';

import { PresenceEngine } from '../src/aggregator/engine';
import { systemClock } from '../src/core/clock';
import { Ladder, type NormalizedState, type Status } from '../src/core/presence';
import { TokenVault } from '../src/oauth/vault';
import { startCheckpointer, type Checkpointer } from '../src/store/checkpointer';
import type { Db } from '../src/store/db';
import { asyncSqlite } from '../src/store/async-sqlite';
import { openSqliteStores } from '../src/store/sqlite';
import { WebhookService } from '../src/webhooks';
import { post, postTarget } from '../src/webhooks/sender';
import { alternate, fmt, median, percentile, ratioOf, ratios, type Figure } from './stats';

const ROUNDS = Number(process.env.PRESENCE_BENCH_ROUNDS ?? 5);
/** How long the latency run measures; longer runs show what the WAL does under steady commits. */
const LATENCY_SECONDS = Number(process.env.PRESENCE_BENCH_WEBHOOK_SECONDS ?? 5);

// Plain JS for the worker: answers 204 at once, counts requests, and stamps the arrival of each
// (user, version) when asked to.
const RECEIVER = `
const { parentPort } = require('node:worker_threads');
const http = require('node:http');
const { performance } = require('node:perf_hooks');
let count = 0;
let stamp = false;
let arrivals = [];
const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    count++;
    if (stamp) {
      const m = /"user_id":"([^"]+)","version":(\\d+)/.exec(Buffer.concat(chunks).toString('utf8'));
      if (m) arrivals.push(m[1] + '#' + m[2], performance.timeOrigin + performance.now());
    }
    res.writeHead(204);
    res.end();
  });
});
server.keepAliveTimeout = 30000;
server.listen(0, '127.0.0.1', () => parentPort.postMessage({ port: server.address().port }));
parentPort.on('message', (m) => {
  if (m === 'count') parentPort.postMessage({ count });
  else if (m === 'stamp') { stamp = true; arrivals = []; parentPort.postMessage({ ok: true }); }
  else if (m === 'arrivals') parentPort.postMessage({ arrivals });
  else if (m === 'close') server.close(() => parentPort.postMessage({ closed: true }));
});
`;

class ReceiverThread {
  private constructor(
    private readonly worker: Worker,
    readonly url: string,
  ) {}

  static async start(): Promise<ReceiverThread> {
    const worker = new Worker(RECEIVER, { eval: true });
    const { port } = await new Promise<{ port: number }>((resolve) =>
      worker.once('message', (m: { port: number }) => resolve(m)),
    );
    return new ReceiverThread(worker, `http://127.0.0.1:${port}/hook`);
  }

  ask<T>(message: string): Promise<T> {
    return new Promise((resolve) => {
      this.worker.once('message', (m: T) => resolve(m));
      this.worker.postMessage(message);
    });
  }

  async count(): Promise<number> {
    return (await this.ask<{ count: number }>('count')).count;
  }

  async close(): Promise<void> {
    await this.ask('close');
    await this.worker.terminate();
  }
}

const absNow = (): number => performance.timeOrigin + performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const state = (status: Status): NormalizedState => ({
  status,
  activity: null,
  customStatus: null,
  source: 'app',
  raw: { availability: status === 'online' ? 'Available' : 'Busy', activity: 'Available' },
  label: status,
});
const ONLINE = state('online');
const BUSY = state('busy');

interface Rig {
  db: Db;
  engine: PresenceEngine;
  webhooks: WebhookService;
  checkpointer: Checkpointer;
}

async function rig(dir: string, name: string, inFlight: number): Promise<Rig> {
  const stores = openSqliteStores(join(dir, name));
  const db = stores.db;
  // As the service runs it: the WAL is checkpointed by a worker thread, not inside commits.
  const checkpointer = startCheckpointer(db);
  const async = asyncSqlite(stores);
  const engine = new PresenceEngine({
    clock: systemClock,
    store: async.presence,
    ladder: new Ladder(),
  });
  const webhooks = await WebhookService.open({
    store: async.webhooks,
    vault: TokenVault.fromSecrets(randomBytes(32).toString('base64')), // secrets at rest, as the service runs
    engine,
    clock: systemClock,
    allowPrivateTargets: true,
    maxInFlightPerEndpoint: inFlight,
    pruneSchedule: null,
  });
  await engine.load();
  return { db, engine, webhooks, checkpointer };
}

const RAW_HEADERS = {
  'content-type': 'application/json',
  'user-agent': 'presence-aggregator-webhooks/1',
  'webhook-id': 'msg_01JDAVQ2Z3ABCDEFGHJKMNPQRS',
  'webhook-timestamp': '1795442400',
  'webhook-signature': 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

/** `n` POSTs of the same body and headers a delivery sends, `inFlight` at a time; requests/s. */
async function ceiling(inFlight: number, n: number, once: () => Promise<void>): Promise<number> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      next += 1;
      await once();
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker)); // warm the connections
  next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: inFlight }, worker));
  return n / ((performance.now() - t0) / 1000);
}

/** The plain `undici.request` POST, response body dumped: the ceiling the issue compares with. */
async function rawRequest(url: string, body: Buffer, n: number, inFlight: number): Promise<number> {
  const agent = new Agent({ headersTimeout: 15_000, bodyTimeout: 15_000, connect: { timeout: 15_000 } });
  const rate = await ceiling(inFlight, n, async () => {
    const res = await request(url, { method: 'POST', headers: RAW_HEADERS, body, dispatcher: agent });
    await res.body.dump();
  });
  await agent.close();
  return rate;
}

/** The same POST through `dispatch` with the dispatcher's discarding handler, without the outbox. */
async function rawDispatch(url: string, body: Buffer, n: number, inFlight: number): Promise<number> {
  const agent = new Agent({ headersTimeout: 15_000, bodyTimeout: 15_000, connect: { timeout: 15_000 } });
  const target = postTarget(url);
  const rate = await ceiling(inFlight, n, async () => {
    const r = await post(agent, target, RAW_HEADERS, body);
    if (r.statusCode !== 204) throw new Error(`raw POST answered ${r.statusCode}`);
  });
  await agent.close();
  return rate;
}

interface Throughput {
  rates: number[];
  rawRequests: number[];
  rawDispatch: number;
}

/** 1,000 users × 20 changes queued for one endpoint, webhooks not yet started. */
async function queued(dir: string, name: string, receiver: ReceiverThread): Promise<Rig & { total: number }> {
  const r = await rig(dir, name, 100);
  await r.webhooks.createEndpoint({ url: receiver.url });
  const users = 1000;
  const rounds = 20;
  for (let k = 0; k < rounds; k++) {
    const acks: Promise<void>[] = [];
    for (let u = 0; u < users; u++) {
      const id = `user-${u}`;
      r.engine.ensureUser(id);
      acks.push(
        r.engine.report(id, { platform: 'teams', ttlMs: 3_600_000, state: k % 2 === 0 ? ONLINE : BUSY }),
      );
    }
    await Promise.all(acks);
  }
  return { ...r, total: users * rounds };
}

/**
 * 20,000 deliveries queued for one endpoint (1,000 users × 20 changes, so half of them wait in
 * SQLite past the in-memory window), then sent 100 at a time: signing, per-user ordering, and
 * every outcome written to the delivery log. Rounds alternate with the raw undici `request()`
 * POST of the same body, headers and count (the queueing is outside the timed part).
 */
async function throughput(dir: string, receiver: ReceiverThread): Promise<Throughput> {
  let rounds = 0;
  let body: Buffer | null = null;
  const deliveries = async (): Promise<number> => {
    const { db, engine, webhooks, checkpointer, total } = await queued(
      dir,
      `throughput-${++rounds}.db`,
      receiver,
    );
    body ??= Buffer.from(db.prepare('SELECT payload FROM webhook_events LIMIT 1').pluck().get() as string);
    const before = await receiver.count();
    const t0 = performance.now();
    webhooks.start();
    for (;;) {
      const s = webhooks.stats();
      if (s.queued === 0 && s.in_flight === 0 && s.spilled_endpoints === 0) break;
      await sleep(2);
    }
    const elapsed = performance.now() - t0;
    const delivered = (await receiver.count()) - before;
    if (delivered < total) throw new Error(`only ${delivered} of ${total} webhooks arrived`);
    await webhooks.stop();
    await engine.stop();
    await checkpointer.stop();
    db.close();
    return total / (elapsed / 1000);
  };
  await deliveries(); // warm-up, and the body the raw POSTs send
  const [rates, rawRequests] = await alternate(ROUNDS, [
    deliveries,
    () => rawRequest(receiver.url, body!, 20_000, 100),
  ]);
  const rawDis = await rawDispatch(receiver.url, body!, 20_000, 100);
  return { rates: rates!, rawRequests: rawRequests!, rawDispatch: rawDis };
}

interface Latency {
  sorted: number[];
  /** The WAL file's size at the end: it never shrinks, so this is the furthest it grew. */
  walBytes: number;
  /** Checkpoint rounds the main thread finished (the WAL started over after each). */
  finished: number;
}

async function latency(dir: string, receiver: ReceiverThread): Promise<Latency> {
  const { db, engine, webhooks, checkpointer } = await rig(dir, 'latency.db', 100);
  await webhooks.createEndpoint({ url: receiver.url });
  webhooks.start();
  const users = 1000;
  for (let u = 0; u < users; u++) engine.ensureUser(`user-${u}`);
  const rate = 1000;
  const sent = new Map<string, number>();
  const run = async (ms: number, measure: boolean): Promise<void> => {
    const t0 = performance.now();
    let issued = 0;
    while (performance.now() - t0 < ms) {
      const due = Math.floor(((performance.now() - t0) / 1000) * rate);
      for (; issued < due; issued++) {
        const id = `user-${issued % users}`;
        const at = absNow();
        const next = engine.state(id)!.status === 'online' ? BUSY : ONLINE;
        void engine.report(id, { platform: 'teams', ttlMs: 3_600_000, state: next });
        if (measure) sent.set(`${id}#${engine.state(id)!.version}`, at);
      }
      await sleep(1);
    }
  };
  await run(1000, false); // warm-up
  await sleep(200);
  await receiver.ask('stamp');
  await run(LATENCY_SECONDS * 1000, true);
  for (let i = 0; i < 200; i++) {
    const s = webhooks.stats();
    if (s.queued === 0 && s.in_flight === 0) break;
    await sleep(10);
  }
  const { arrivals } = await receiver.ask<{ arrivals: (string | number)[] }>('arrivals');
  const latencies: number[] = [];
  for (let i = 0; i < arrivals.length; i += 2) {
    const start = sent.get(arrivals[i] as string);
    if (start !== undefined) latencies.push((arrivals[i + 1] as number) - start);
  }
  if (latencies.length < sent.size)
    throw new Error(`only ${latencies.length} of ${sent.size} changes arrived`);
  const walBytes = statSync(`${db.name}-wal`).size;
  const { finished } = checkpointer;
  await webhooks.stop();
  await engine.stop();
  await checkpointer.stop();
  db.close();
  return { sorted: latencies.sort((a, b) => a - b), walBytes, finished };
}

export async function benchWebhooks(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-webhooks-'));
  const receiver = await ReceiverThread.start();
  try {
    const lat = await latency(dir, receiver);
    const t = await throughput(dir, receiver);
    const ratio = ratioOf(ratios(t.rates, t.rawRequests));
    return [
      {
        name: `change-to-webhook latency at 1,000 changes/s for ${LATENCY_SECONDS} s, p50 / p99`,
        value: `${percentile(lat.sorted, 50).toFixed(1)} / ${percentile(lat.sorted, 99).toFixed(1)} ms`,
        target: 'p99 ≤ 50 ms',
        met: percentile(lat.sorted, 99) <= 50,
      },
      {
        name: "  WAL file at the end (SQLite's safety net is at ~40 MB), checkpoint rounds finished",
        value: `${(lat.walBytes / 1e6).toFixed(1)} MB, ${lat.finished}`,
      },
      {
        name: 'webhook deliveries, 100 in flight (signed, ordered, logged)',
        value: `${fmt(median(t.rates))}/s`,
        reference: {
          name: 'raw undici request() POST, same body, 100 in flight',
          value: `${fmt(median(t.rawRequests))}/s`,
          ratio,
        },
        target: '≥ 0.6×',
        met: ratio.median >= 0.6,
      },
      { name: '  raw POST through dispatch(), body discarded', value: `${fmt(t.rawDispatch)}/s` },
    ];
  } finally {
    await receiver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
