/**
 * @module webhooks/dispatcher
 * The delivery worker. The outbox in SQLite is the truth; this keeps a window of it in memory so
 * that sending needs no SELECT per delivery, and writes outcomes back in batches.
 *
 * Shape of the state, per endpoint (independent of every other endpoint):
 * - one FIFO per ordering key (`u:<user_id>` for presence, `k:<platform>` for connectors,
 *   ...). Only the head of a FIFO is ever in flight, so a later event for a user is never sent
 *   before an earlier one that is still being retried (head-of-line per endpoint and user), while
 *   other users' FIFOs carry on.
 * - a min-heap of idle FIFOs by the time their head may be tried (retry time, coalescing window);
 * - at most `maxInFlightPerEndpoint` requests at once, so one slow endpoint holds only its own
 *   slots; a dead one's retries wait in its own heap;
 * - at most `maxQueuedPerEndpoint` deliveries in memory. Past that the endpoint "spills": new
 *   deliveries stay only in SQLite and are loaded, in id order, as the window drains. The window is
 *   always a prefix (by id) of the endpoint's pending deliveries, so the order within each FIFO stays exact.
 *
 * Time comes from the injected Clock. `runDue()` does one round by hand (tests with FakeClock);
 * `start()` adds the production drive: a pump on the next tick after every commit and completion,
 * and a timer for the next retry.
 */

import { STATUS_CODES } from 'node:http';
import { performance } from 'node:perf_hooks';

import { Agent } from 'undici';

import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import { parseRetryAfter } from '../core/retry-after';
import { mergePresenceChanges } from './coalesce';
import { post, postTarget, type PostResult, type PostTarget } from './sender';
import { newMessageId } from './ids';
import { retryDelay } from './retry';
import type { EventType } from './schema';
import { secretKey, signatureHeader } from './sign';
import { guardedLookup, literalTargetRefusal } from './ssrf';
import type { AttemptRecord, EndpointRecord, PendingRow, WebhookStore } from '../core/ports';

/** A delivery row just written, handed over after its transaction committed. */
export interface StagedDelivery {
  readonly endpointId: string;
  readonly id: number;
  readonly eventSeq: number;
  readonly msgId: string;
  readonly type: EventType;
  /** The exact bytes sent (and signed). */
  readonly body: Buffer;
  /** Deliveries with the same key are sent one at a time, in id order (see `orderKeyOf`). */
  readonly orderKey: string;
  /** End of the coalescing window (the commit time when there is none). */
  readonly notBefore: number;
  /** When the first attempt is due. */
  readonly nextAt: number;
  readonly createdAt: number;
  readonly replay: boolean;
}

export interface DispatcherOptions {
  readonly store: WebhookStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly retrySchedule: readonly number[];
  readonly jitter: number;
  readonly random: () => number;
  readonly timeoutMs: number;
  readonly maxInFlightPerEndpoint: number;
  readonly maxQueuedPerEndpoint: number;
  readonly disableAfterMs: number;
  readonly allowPrivateTargets: boolean;
  readonly userAgent: string;
  /** Called when an endpoint must be disabled (410, or failing too long). */
  readonly onDisable: (endpoint: EndpointRecord, reason: 'gone' | 'failing', detail: string) => void;
}

class Item {
  attempts: number;
  nextAt: number;
  /** Its row was deleted while it was in flight (its user was deleted): never record or retry it. */
  forgotten = false;

  constructor(
    readonly id: number,
    public eventSeq: number,
    public msgId: string,
    readonly type: EventType,
    public body: Buffer,
    readonly orderKey: string,
    readonly notBefore: number,
    readonly createdAt: number,
    readonly replay: boolean,
    attempts: number,
    nextAt: number,
  ) {
    this.attempts = attempts;
    this.nextAt = nextAt;
  }
}

/** The deliveries of one ordering key on one endpoint, oldest first; only the head is tried. */
class Fifo {
  items: (Item | undefined)[] = [];
  head = 0;
  busy = false;
  inHeap = false;
  readyAt = 0;
  heapIndex = -1;

  constructor(readonly key: string) {}

  get first(): Item | undefined {
    return this.items[this.head];
  }

  get size(): number {
    return this.items.length - this.head;
  }

  shift(): void {
    this.items[this.head] = undefined;
    this.head += 1;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
}

/** A binary min-heap of FIFOs by `readyAt`. */
class FifoHeap {
  private readonly a: Fifo[] = [];

  get size(): number {
    return this.a.length;
  }

  peek(): Fifo | undefined {
    return this.a[0];
  }

  push(fifo: Fifo): void {
    fifo.inHeap = true;
    fifo.heapIndex = this.a.length;
    this.a.push(fifo);
    this.up(fifo.heapIndex);
  }

  pop(): Fifo | undefined {
    const top = this.a[0];
    if (top === undefined) return undefined;
    const last = this.a.pop()!;
    if (last !== top) {
      this.a[0] = last;
      last.heapIndex = 0;
      this.down(0);
    }
    top.inHeap = false;
    top.heapIndex = -1;
    return top;
  }

  private up(i: number): void {
    const a = this.a;
    const fifo = a[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p]!;
      if (parent.readyAt <= fifo.readyAt) break;
      a[i] = parent;
      parent.heapIndex = i;
      i = p;
    }
    a[i] = fifo;
    fifo.heapIndex = i;
  }

  private down(i: number): void {
    const a = this.a;
    const n = a.length;
    const fifo = a[i]!;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= n) break;
      if (c + 1 < n && a[c + 1]!.readyAt < a[c]!.readyAt) c += 1;
      const child = a[c]!;
      if (child.readyAt >= fifo.readyAt) break;
      a[i] = child;
      child.heapIndex = i;
      i = c;
    }
    a[i] = fifo;
    fifo.heapIndex = i;
  }
}

class EndpointQueue {
  fifos = new Map<string, Fifo>();
  heap = new FifoHeap();
  inFlight = 0;
  /** Deliveries held in memory (in flight included). */
  count = 0;
  /** The highest delivery id ever taken into memory: the DB is read after it. */
  maxLoadedId = 0;
  /** True when SQLite may hold pending deliveries after `maxLoadedId` that are not in memory. */
  spilled = true;
  /** A 429/503 with Retry-After holds the whole endpoint until then. */
  pausedUntil = 0;
  /** Bumped when the queue is reset (disabled, re-enabled): older in-flight outcomes are stale. */
  epoch = 0;
  removed = false;
  private targetUrl: string | null = null;
  private targetParts: PostTarget | null = null;
  private refusalUrl: string | null = null;
  private refusalText: string | null = null;
  private keySecret: string | null = null;
  private keyPrevious: string | null = null;
  private keys: Buffer[] = [];

  constructor(public ep: EndpointRecord) {}

  /** Origin and path of the endpoint's URL, parsed once per URL. */
  target(): PostTarget {
    if (this.targetUrl !== this.ep.url || this.targetParts === null) {
      this.targetUrl = this.ep.url;
      this.targetParts = postTarget(this.ep.url);
    }
    return this.targetParts;
  }

  /**
   * Why the endpoint's URL must not be called now (a literal private address while private
   * targets are not allowed), or null; worked out once per URL.
   */
  refusal(): string | null {
    if (this.refusalUrl !== this.ep.url) {
      this.refusalUrl = this.ep.url;
      const reason = literalTargetRefusal(this.ep.url);
      this.refusalText =
        reason === null
          ? null
          : `refused before sending: ${reason}; set WEBHOOK_ALLOW_PRIVATE_TARGETS=true to allow it, or point the endpoint elsewhere`;
    }
    return this.refusalText;
  }

  /** The signing keys now: the current secret, and the previous one during a rotation window. */
  keysAt(now: number): Buffer[] {
    const ep = this.ep;
    const previous =
      ep.previousSecret !== null && ep.previousExpiresAt !== null && now < ep.previousExpiresAt
        ? ep.previousSecret
        : null;
    if (ep.secret !== this.keySecret || previous !== this.keyPrevious) {
      this.keySecret = ep.secret;
      this.keyPrevious = previous;
      this.keys = previous === null ? [secretKey(ep.secret)] : [secretKey(ep.secret), secretKey(previous)];
    }
    return this.keys;
  }
}

/** Outcomes are written at most this late... */
const FLUSH_DELAY_MS = 10;
/** ...or as soon as this many are waiting. */
const FLUSH_AT = 1000;

const readyAt = (item: Item): number => Math.max(item.nextAt, item.notBefore);

function describeError(error: Error | null, timeoutMs: number): string {
  if (error === null) return 'the connection closed without an answer';
  const e = error as { name?: string; code?: string; message?: string; cause?: unknown };
  if (e.code === 'UND_ERR_HEADERS_TIMEOUT') return `no response within ${timeoutMs} ms`;
  if (e.code === 'UND_ERR_BODY_TIMEOUT') return `the response body stalled for ${timeoutMs} ms`;
  if (e.code === 'UND_ERR_CONNECT_TIMEOUT') return `could not connect within ${timeoutMs} ms`;
  const cause = e.cause as { code?: string; message?: string } | undefined;
  const code = e.code ?? cause?.code;
  const message = (cause?.message ?? e.message ?? error.name).slice(0, 300);
  return code === undefined ? message : `${code}: ${message}`;
}

/**
 * The outcome of an attempt refused before any connection, with the code the connection-time
 * guard uses too. Still asynchronous, like a send: the pump must not be re-entered.
 */
const refusedPost = (reason: string): Promise<PostResult> =>
  Promise.resolve({
    statusCode: null,
    retryAfter: undefined,
    error: Object.assign(new Error(reason), { code: 'EPRIVATETARGET' }),
  });

function httpError(status: number): string {
  const text = `HTTP ${status}${STATUS_CODES[status] === undefined ? '' : ` ${STATUS_CODES[status]}`}`;
  return status >= 300 && status < 400 ? `${text} (redirects are not followed)` : text;
}

export class Dispatcher {
  private readonly store: WebhookStore;
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly retrySchedule: readonly number[];
  private readonly jitter: number;
  private readonly random: () => number;
  private readonly timeoutMs: number;
  private readonly maxInFlightPerEndpoint: number;
  private readonly maxQueuedPerEndpoint: number;
  private readonly disableAfterMs: number;
  private readonly allowPrivateTargets: boolean;
  private readonly userAgent: string;
  private readonly onDisable: DispatcherOptions['onDisable'];
  private readonly queues = new Map<string, EndpointQueue>();
  private readonly agent: Agent;
  private readonly maxStepMs: number;
  private outcomes: AttemptRecord[] = [];
  private failing: { endpointId: string; since: number | null }[] = [];
  /** Requests in flight over all endpoints, and who waits for that to reach zero. */
  private sending = 0;
  private drainWaiters: (() => void)[] = [];
  private running = false;
  private stopped = false;
  private pumpScheduled = false;
  private flushScheduled = false;
  private flushRetryMs = 0;
  private refillScheduled = false;
  private timer: NodeJS.Timeout | null = null;
  private timerAt = Number.POSITIVE_INFINITY;

  constructor(options: DispatcherOptions) {
    this.store = options.store;
    this.clock = options.clock;
    this.log = options.log;
    this.retrySchedule = options.retrySchedule;
    this.jitter = options.jitter;
    this.random = options.random;
    this.timeoutMs = options.timeoutMs;
    this.maxInFlightPerEndpoint = options.maxInFlightPerEndpoint;
    this.maxQueuedPerEndpoint = options.maxQueuedPerEndpoint;
    this.disableAfterMs = options.disableAfterMs;
    this.allowPrivateTargets = options.allowPrivateTargets;
    this.userAgent = options.userAgent;
    this.onDisable = options.onDisable;
    this.maxStepMs = Math.max(0, ...this.retrySchedule);
    this.agent = new Agent({
      connect: {
        timeout: this.timeoutMs,
        // The connection-time half of the SSRF guard (DNS rebinding).
        ...(this.allowPrivateTargets ? {} : { lookup: guardedLookup }),
      },
      headersTimeout: this.timeoutMs,
      bodyTimeout: this.timeoutMs,
    });
  }

  // ---------------------------------------------------------------- endpoints

  addEndpoint(ep: EndpointRecord): void {
    const q = new EndpointQueue(ep);
    this.queues.set(ep.id, q);
    this.refill(q);
  }

  removeEndpoint(id: string): void {
    const q = this.queues.get(id);
    if (q === undefined) return;
    q.removed = true;
    this.queues.delete(id);
  }

  /**
   * Forgets what is in memory for the endpoint (it was disabled: its pending rows are failed; or
   * re-enabled: it starts over from SQLite). Outcomes of requests still in flight are recorded but
   * no longer move its queue.
   */
  resetEndpoint(id: string): void {
    const q = this.queues.get(id);
    if (q === undefined) return;
    q.epoch += 1;
    q.fifos = new Map();
    q.heap = new FifoHeap();
    q.count = 0;
    q.spilled = true;
    q.pausedUntil = 0;
    if (q.ep.enabled) this.refill(q);
    this.schedulePump();
  }

  /**
   * Marks endpoints whose new rows were written in a transaction whose outcome this module cannot
   * see (a caller's own transaction): they are read back from SQLite on the next tick.
   */
  reloadLater(endpointIds: Iterable<string>): void {
    for (const id of endpointIds) {
      const q = this.queues.get(id);
      if (q !== undefined) q.spilled = true;
    }
    if (!this.refillScheduled) {
      this.refillScheduled = true;
      setImmediate(() => {
        this.refillScheduled = false;
        for (const q of this.queues.values()) this.refill(q);
        this.schedulePump();
      });
    }
  }

  /**
   * Drops deliveries whose rows were deleted (a deleted user's events) from memory. One in flight
   * is marked instead: its outcome is then neither recorded nor retried.
   */
  forget(byEndpoint: ReadonlyMap<string, ReadonlySet<number>>): void {
    for (const [endpointId, ids] of byEndpoint) {
      const q = this.queues.get(endpointId);
      if (q === undefined || ids.size === 0) continue;
      for (const fifo of [...q.fifos.values()]) {
        const kept: Item[] = [];
        for (let i = fifo.head; i < fifo.items.length; i++) {
          const item = fifo.items[i]!;
          if (!ids.has(item.id)) kept.push(item);
          else if (fifo.busy && i === fifo.head) {
            item.forgotten = true;
            kept.push(item);
          } else q.count -= 1;
        }
        fifo.items = kept;
        fifo.head = 0;
        if (kept.length === 0) q.fifos.delete(fifo.key);
      }
      // FIFO heads changed: rebuild the heap from the FIFOs that are not in flight.
      q.heap = new FifoHeap();
      for (const fifo of q.fifos.values()) {
        fifo.inHeap = false;
        if (fifo.busy) continue;
        fifo.readyAt = readyAt(fifo.first!);
        q.heap.push(fifo);
      }
    }
    this.schedulePump();
  }

  // ---------------------------------------------------------------- intake

  /** Takes committed deliveries into memory and wakes the pump. */
  enqueue(staged: readonly StagedDelivery[]): void {
    if (staged.length === 0) return;
    for (const s of staged) {
      const q = this.queues.get(s.endpointId);
      if (q === undefined || !q.ep.enabled) continue;
      if (q.spilled || q.count >= this.maxQueuedPerEndpoint) {
        // Stays in SQLite; `refill` reads it in order once the window has room.
        q.spilled = true;
        continue;
      }
      this.add(
        q,
        new Item(
          s.id,
          s.eventSeq,
          s.msgId,
          s.type,
          s.body,
          s.orderKey,
          s.notBefore,
          s.createdAt,
          s.replay,
          0,
          s.nextAt,
        ),
      );
    }
    this.schedulePump();
  }

  private add(q: EndpointQueue, item: Item): void {
    let fifo = q.fifos.get(item.orderKey);
    if (fifo === undefined) {
      fifo = new Fifo(item.orderKey);
      q.fifos.set(item.orderKey, fifo);
    }
    fifo.items.push(item);
    q.count += 1;
    if (item.id > q.maxLoadedId) q.maxLoadedId = item.id;
    if (!fifo.busy && !fifo.inHeap) {
      fifo.readyAt = readyAt(fifo.first!);
      q.heap.push(fifo);
    }
  }

  /**
   * Loads pending deliveries after the window from SQLite while there is room. Never called
   * inside a transaction: rows written in someone else's transaction reach it through
   * `reloadLater`, a later turn of the event loop, by when that transaction is over.
   */
  private refill(q: EndpointQueue): void {
    if (!q.spilled || !q.ep.enabled || q.removed) return;
    const room = this.maxQueuedPerEndpoint - q.count;
    if (room <= 0) return;
    let rows: PendingRow[];
    try {
      rows = this.store.loadPending(q.ep.id, q.maxLoadedId, room);
    } catch (error) {
      this.log.error({ err: error, endpoint_id: q.ep.id }, 'loading pending webhook deliveries failed');
      return;
    }
    for (const r of rows) {
      this.add(
        q,
        new Item(
          r.id,
          r.event_seq,
          r.msg_id,
          r.type,
          Buffer.from(r.payload),
          r.lane, // the ordering key's column
          r.not_before,
          r.created_at,
          r.replay === 1,
          r.attempts,
          r.next_attempt_at ?? r.not_before,
        ),
      );
    }
    if (rows.length < room) q.spilled = false;
  }

  // ---------------------------------------------------------------- the pump

  /** Production mode: pump on commits and completions, and on a timer for retries. */
  start(): void {
    if (this.stopped) throw new Error('a stopped webhook dispatcher cannot start again');
    this.running = true;
    this.schedulePump();
  }

  private schedulePump(): void {
    if (!this.running || this.pumpScheduled) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      void this.pump(); // each send settles by itself and never rejects
    });
  }

  private pump(): Promise<void>[] {
    const started: Promise<void>[] = [];
    try {
      const now = this.clock.now();
      for (const q of this.queues.values()) this.pumpEndpoint(q, now, started);
    } catch (error) {
      this.log.error({ err: error }, 'the webhook dispatcher failed a round; it will try again');
    }
    this.armTimer();
    return started;
  }

  private pumpEndpoint(q: EndpointQueue, now: number, started: Promise<void>[]): void {
    if (!q.ep.enabled) return;
    if (q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
    if (q.pausedUntil > now) return;
    const max = this.maxInFlightPerEndpoint;
    while (q.inFlight < max) {
      const top = q.heap.peek();
      if (top === undefined || top.readyAt > now) return;
      const fifo = q.heap.pop()!;
      let item: Item | null = fifo.first!;
      if (q.ep.coalesceMs > 0 && item.attempts === 0 && !item.replay && item.type === 'presence.changed') {
        item = this.coalesce(q, fifo, item, now);
        if (item === null) {
          this.requeue(q, fifo);
          continue;
        }
      }
      fifo.busy = true;
      q.inFlight += 1;
      this.sending += 1;
      started.push(this.send(q, fifo, item, q.epoch));
    }
  }

  /**
   * Applies the coalescing window at the head of a FIFO (see coalesce.ts for the definition).
   * Returns the item to send, or null when the whole run cancelled out.
   */
  private coalesce(q: EndpointQueue, fifo: Fifo, head: Item, now: number): Item | null {
    let end = fifo.head + 1;
    while (end < fifo.items.length) {
      const it = fifo.items[end]!;
      if (it.attempts > 0 || it.replay || it.type !== 'presence.changed' || it.createdAt > head.notBefore)
        break;
      end += 1;
    }
    const n = end - fifo.head;
    if (n === 1) return head;
    const run = fifo.items.slice(fifo.head, end) as Item[];
    const last = run[n - 1]!;
    const merged = mergePresenceChanges(run.map((it) => it.body.toString('utf8')));
    const msgId = merged === null ? null : newMessageId(now);
    const note =
      merged === null
        ? `coalesced: ${n} changes within ${q.ep.coalesceMs} ms cancelled out`
        : `coalesced into ${msgId}`;
    const store = this.store;
    store.transaction(() => {
      for (let i = 0; i < (merged === null ? n : n - 1); i++) store.markCoalesced(run[i]!.id, note, now);
      if (merged !== null) last.eventSeq = store.repoint(last.id, last.eventSeq, msgId!, merged, now);
    });
    for (let i = 0; i < n - 1; i++) this.drop(q, fifo);
    if (merged === null) {
      this.drop(q, fifo);
      return null;
    }
    last.msgId = msgId!;
    last.body = Buffer.from(merged);
    return last;
  }

  /** Removes the head of a FIFO from memory. */
  private drop(q: EndpointQueue, fifo: Fifo): void {
    fifo.shift();
    q.count -= 1;
  }

  /** Puts a FIFO that is not in flight back in the heap, or forgets it when empty. */
  private requeue(q: EndpointQueue, fifo: Fifo): void {
    const first = fifo.first;
    if (first === undefined) {
      if (q.fifos.get(fifo.key) === fifo) q.fifos.delete(fifo.key);
      return;
    }
    if (!fifo.inHeap) {
      fifo.readyAt = readyAt(first);
      q.heap.push(fifo);
    }
  }

  private armTimer(): void {
    if (!this.running) return;
    let next = Number.POSITIVE_INFINITY;
    for (const q of this.queues.values()) {
      if (!q.ep.enabled || q.inFlight >= this.maxInFlightPerEndpoint) continue;
      const top = q.heap.peek();
      if (top !== undefined) next = Math.min(next, Math.max(top.readyAt, q.pausedUntil));
    }
    if (next >= this.timerAt) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = next;
    if (!Number.isFinite(next)) return;
    // Capped at a second, so a clock that runs faster than real time (the demo) or jumps is
    // noticed soon.
    const delay = Math.min(Math.max(0, next - this.clock.now()), 1000);
    this.timer = setTimeout(() => {
      this.timer = null;
      this.timerAt = Number.POSITIVE_INFINITY;
      void this.pump();
    }, delay);
    this.timer.unref();
  }

  // ---------------------------------------------------------------- one attempt

  private async send(q: EndpointQueue, fifo: Fifo, item: Item, epoch: number): Promise<void> {
    const startedAt = this.clock.now();
    const timestamp = Math.floor(startedAt / 1000);
    const t0 = performance.now();
    // Checked at every attempt, whatever the setting was when the endpoint was saved. A refusal
    // is a failed attempt like any other: retried on the schedule, disabled after 5 days.
    const refused = this.allowPrivateTargets ? null : q.refusal();
    const result =
      refused !== null
        ? await refusedPost(refused)
        : await post(
            this.agent,
            q.target(),
            {
              'content-type': 'application/json',
              'user-agent': this.userAgent,
              'webhook-id': item.msgId,
              'webhook-timestamp': String(timestamp),
              'webhook-signature': signatureHeader(q.keysAt(startedAt), item.msgId, timestamp, item.body),
            },
            item.body,
          );
    // Once the status is known it decides, whatever happens to the body afterwards.
    let statusCode = result.statusCode;
    let error = statusCode === null ? describeError(result.error, this.timeoutMs) : null;
    const retryAfter = result.retryAfter;
    const latencyMs = Math.round(performance.now() - t0);
    // undici bounds the connect and the wait for headers each by the timeout (a per-request
    // AbortSignal would cost ~7 % of throughput); an answer later than the limit overall is
    // still a failure, so "a 2xx within the timeout" holds exactly.
    if (statusCode !== null && latencyMs > this.timeoutMs) {
      error = `answered ${statusCode} after ${latencyMs} ms, over the ${this.timeoutMs} ms limit`;
      statusCode = null;
    }
    try {
      this.complete(q, fifo, item, epoch, startedAt, statusCode, error, latencyMs, retryAfter);
    } catch (e) {
      this.log.error({ err: e, endpoint_id: q.ep.id }, 'recording a webhook attempt failed');
    }
    this.sending -= 1;
    if (this.sending === 0 && this.drainWaiters.length > 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
  }

  /** Resolves when no request is in flight. */
  private drained(): Promise<void> {
    if (this.sending === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private complete(
    q: EndpointQueue,
    fifo: Fifo,
    item: Item,
    epoch: number,
    startedAt: number,
    statusCode: number | null,
    error: string | null,
    latencyMs: number,
    retryAfter: string | undefined,
  ): void {
    q.inFlight -= 1;
    item.attempts += 1;
    if (q.removed) return; // its rows went with it
    if (item.forgotten) {
      // Its user was deleted while it was in flight: the row is gone, so is any retry.
      if (epoch === q.epoch) {
        fifo.busy = false;
        this.drop(q, fifo);
        this.requeue(q, fifo);
      }
      this.schedulePump();
      return;
    }
    const now = this.clock.now();
    const ok = statusCode !== null && statusCode >= 200 && statusCode < 300;
    const errorText = ok ? null : (error ?? httpError(statusCode!));
    // No closure here: this runs once per delivery, and allocation shows at 10k/s.
    const outcome: AttemptRecord = {
      deliveryId: item.id,
      attempt: item.attempts,
      at: startedAt,
      statusCode,
      latencyMs,
      error: errorText,
      nextAttemptAt: null,
      status: 'delivered',
    };
    if (epoch !== q.epoch) {
      // The endpoint was disabled (its pending rows failed) or reset meanwhile.
      this.record(outcome, ok ? 'delivered' : 'failed', null);
      this.schedulePump();
      return;
    }
    fifo.busy = false;
    const ep = q.ep;
    if (ok) {
      this.record(outcome, 'delivered', null);
      this.drop(q, fifo);
      if (ep.failingSince !== null) {
        ep.failingSince = null;
        this.failing.push({ endpointId: ep.id, since: null });
      }
    } else if (statusCode === 410) {
      this.record(outcome, 'failed', null);
      this.drop(q, fifo);
      this.flushOutcomes();
      this.onDisable(ep, 'gone', 'the endpoint answered 410 Gone');
      return;
    } else {
      if (ep.failingSince === null) {
        ep.failingSince = startedAt;
        this.failing.push({ endpointId: ep.id, since: startedAt });
      }
      if (now - ep.failingSince >= this.disableAfterMs) {
        this.record(outcome, 'failed', null);
        this.drop(q, fifo);
        this.flushOutcomes();
        const days = Math.round(this.disableAfterMs / 86_400_000);
        this.onDisable(ep, 'failing', `every attempt failed for ${days} days (last: ${errorText})`);
        return;
      }
      const asked = statusCode === 429 || statusCode === 503 ? parseRetryAfter(retryAfter, now) : null;
      const delay =
        item.attempts >= this.retrySchedule.length
          ? null
          : asked !== null
            ? Math.min(asked, this.maxStepMs)
            : retryDelay(this.retrySchedule, item.attempts, this.jitter, this.random);
      if (delay === null) {
        this.record(outcome, 'failed', null); // schedule exhausted: given up; the FIFO moves on
        this.drop(q, fifo);
      } else {
        item.nextAt = now + delay;
        this.record(outcome, 'pending', item.nextAt);
        if (asked !== null) q.pausedUntil = Math.max(q.pausedUntil, item.nextAt);
      }
    }
    this.requeue(q, fifo);
    if (q.spilled && q.count <= this.maxQueuedPerEndpoint / 2) this.refill(q);
    this.schedulePump();
  }

  // ---------------------------------------------------------------- durability of outcomes

  private record(
    outcome: AttemptRecord,
    status: AttemptRecord['status'],
    nextAttemptAt: number | null,
  ): void {
    outcome.status = status;
    outcome.nextAttemptAt = nextAttemptAt;
    this.outcomes.push(outcome);
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.outcomes.length >= FLUSH_AT) {
      this.flushOutcomes();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Outcomes are written a few ms late, many to a transaction: a commit per tick would cost
    // more than the requests. A crash in between only means those deliveries are sent again.
    const timer = setTimeout(
      () => {
        this.flushScheduled = false;
        this.flushOutcomes();
      },
      Math.max(this.flushRetryMs, FLUSH_DELAY_MS),
    );
    timer.unref();
  }

  /**
   * Writes buffered attempt outcomes in one transaction. A crash before this only means a
   * delivery is sent again after restart (at least once), never that one is lost.
   */
  flushOutcomes(): void {
    if (this.outcomes.length === 0 && this.failing.length === 0) return;
    const outcomes = this.outcomes;
    const failing = this.failing;
    this.outcomes = [];
    this.failing = [];
    try {
      this.store.writeOutcomes(outcomes, failing);
      this.flushRetryMs = 0;
    } catch (error) {
      if (String((error as { code?: unknown }).code).startsWith('SQLITE_CONSTRAINT')) {
        // One row no longer fits (its delivery is gone): write the others one by one rather than
        // retry a batch that can never succeed.
        this.writeOneByOne(outcomes, failing);
        return;
      }
      this.outcomes = outcomes.concat(this.outcomes);
      this.failing = failing.concat(this.failing);
      this.flushRetryMs = Math.min(Math.max(this.flushRetryMs * 2, 50), 5000);
      this.log.error({ err: error }, 'writing webhook attempt outcomes failed; will retry');
      this.scheduleFlush();
    }
  }

  private writeOneByOne(
    outcomes: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): void {
    for (const outcome of outcomes) {
      try {
        this.store.writeOutcomes([outcome], []);
      } catch (error) {
        this.log.warn(
          { err: error, delivery_id: outcome.deliveryId },
          'dropped the outcome of a vanished delivery',
        );
      }
    }
    try {
      this.store.writeOutcomes([], failing);
    } catch (error) {
      this.log.error({ err: error }, 'writing webhook endpoint failure marks failed');
    }
  }

  // ---------------------------------------------------------------- driving it by hand

  /**
   * Sends everything due now, waits for those attempts, and repeats while that made more due
   * (the next event of a FIFO). Resolves to the number of attempts made. For tests and tools.
   */
  async runDue(): Promise<number> {
    let attempts = 0;
    for (;;) {
      const started = this.pump();
      if (started.length === 0) break;
      attempts += started.length;
      await Promise.all(started);
    }
    this.flushOutcomes();
    return attempts;
  }

  /** Resolves when nothing is in flight and nothing is due now. */
  async idle(): Promise<void> {
    for (;;) {
      await this.runDue();
      if (this.sending === 0) {
        this.flushOutcomes();
        return;
      }
      await this.drained();
    }
  }

  /**
   * Stops pumping; waits up to `graceMs` for requests in flight, then cuts them off (they count
   * as failed attempts and are retried after the next start). Final: the HTTP agent is closed.
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = Number.POSITIVE_INFINITY;
    if (this.sending > 0) {
      let timeout: NodeJS.Timeout | undefined;
      await Promise.race([
        this.drained(),
        new Promise<void>((resolve) => {
          timeout = setTimeout(resolve, graceMs);
        }),
      ]);
      clearTimeout(timeout);
    }
    await this.agent.destroy();
    await this.drained();
    this.flushOutcomes();
  }

  stats(): { queued: number; inFlight: number; spilledEndpoints: number } {
    let queued = 0;
    let inFlight = 0;
    let spilled = 0;
    for (const q of this.queues.values()) {
      queued += q.count;
      inFlight += q.inFlight;
      if (q.spilled) spilled += 1;
    }
    return { queued, inFlight, spilledEndpoints: spilled };
  }
}
