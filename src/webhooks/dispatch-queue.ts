/**
 * @module webhooks/dispatch-queue
 * The dispatcher's in-memory window of one endpoint's outbox (see dispatcher.ts for the shape):
 * the deliveries, their FIFOs per ordering key, the heap of idle FIFOs, and what is cached about
 * the endpoint for sending. No I/O but the store reads and writes the dispatcher hands it.
 */

import type { Log } from '../core/log';
import { mergePresenceChanges } from './coalesce';
import { postTarget, type PostTarget } from './sender';
import { newMessageId } from './ids';
import type { EventType } from './schema';
import { secretKey } from './sign';
import { literalTargetRefusal } from './ssrf';
import type { AsyncWebhookStore, DeliveryClaims, EndpointRecord, PendingRow } from '../core/ports';

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

export class Item {
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

/** A pending delivery as the store read it (a refill, or a claim). */
export function itemOfRow(r: PendingRow): Item {
  return new Item(
    r.id,
    r.event_seq,
    r.msg_id,
    r.type,
    Buffer.from(r.payload),
    r.ordering_key,
    r.not_before,
    r.created_at,
    r.replay === 1,
    r.attempts,
    r.next_attempt_at ?? r.not_before,
  );
}

/** The deliveries of one ordering key on one endpoint, oldest first; only the head is tried. */
export class Fifo {
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
export class FifoHeap {
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

export const readyAt = (item: Item): number => Math.max(item.nextAt, item.notBefore);

export class EndpointQueue {
  fifos = new Map<string, Fifo>();
  heap = new FifoHeap();
  inFlight = 0;
  /** Deliveries held in memory (in flight included). */
  count = 0;
  /** The highest delivery id ever taken into memory: the DB is read after it. */
  maxLoadedId = 0;
  /** True when the store may hold pending deliveries after `maxLoadedId` that are not in memory. */
  spilled = true;
  /** A refill is reading the store; another asked meanwhile runs after it. */
  private loading = false;
  private loadAgain = false;
  /** Deliveries `take` left in the store (spilled), counted so a refill in progress sees it may have missed some. */
  private passed = 0;
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
  /** Forgets every delivery in memory (the endpoint was disabled or re-enabled). */
  reset(): void {
    this.epoch += 1;
    this.fifos = new Map();
    this.heap = new FifoHeap();
    this.count = 0;
    this.spilled = true;
    this.pausedUntil = 0;
  }

  /** Drops the deliveries `ids`; one in flight is marked `forgotten` instead. */
  forget(ids: ReadonlySet<number>): void {
    for (const fifo of [...this.fifos.values()]) {
      const kept: Item[] = [];
      for (let i = fifo.head; i < fifo.items.length; i++) {
        const item = fifo.items[i]!;
        if (!ids.has(item.id)) kept.push(item);
        else if (fifo.busy && i === fifo.head) {
          item.forgotten = true;
          kept.push(item);
        } else this.count -= 1;
      }
      fifo.items = kept;
      fifo.head = 0;
      if (kept.length === 0) this.fifos.delete(fifo.key);
    }
    // FIFO heads changed: rebuild the heap from the FIFOs that are not in flight.
    this.heap = new FifoHeap();
    for (const fifo of this.fifos.values()) {
      fifo.inHeap = false;
      if (fifo.busy) continue;
      fifo.readyAt = readyAt(fifo.first!);
      this.heap.push(fifo);
    }
  }

  /** Takes a committed delivery into memory, unless the window is full or already spilled. */
  take(s: StagedDelivery, maxQueued: number): void {
    if (this.spilled || this.count >= maxQueued) {
      // Stays in the store; `refill` reads it in order once the window has room.
      this.spilled = true;
      this.passed += 1;
      return;
    }
    this.add(
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

  add(item: Item): void {
    let fifo = this.fifos.get(item.orderKey);
    if (fifo === undefined) {
      fifo = new Fifo(item.orderKey);
      this.fifos.set(item.orderKey, fifo);
    }
    fifo.items.push(item);
    this.count += 1;
    if (item.id > this.maxLoadedId) this.maxLoadedId = item.id;
    if (!fifo.busy && !fifo.inHeap) {
      fifo.readyAt = readyAt(fifo.first!);
      this.heap.push(fifo);
    }
  }

  /**
   * Loads pending deliveries after the window from the store while there is room. Rows written in
   * someone else's transaction reach it only once that committed (`enqueue` from an
   * `afterCommit` hook, or a reload after a replay). One read at a time per endpoint: a refill
   * asked for while one reads runs after it. The window stays marked spilled when deliveries
   * were passed over during the read, or when the endpoint was reset meanwhile (the rows read
   * may be stale), and is read again.
   */
  async refill(store: AsyncWebhookStore, log: Log, maxQueued: number): Promise<void> {
    if (this.loading) {
      this.loadAgain = true;
      return;
    }
    this.loading = true;
    try {
      do {
        this.loadAgain = false;
        if (!this.spilled || !this.ep.enabled || this.removed) return;
        const room = maxQueued - this.count;
        if (room <= 0) return;
        const { epoch, passed } = this;
        let rows: PendingRow[];
        try {
          rows = await store.loadPending(this.ep.id, this.maxLoadedId, room);
        } catch (error) {
          log.error({ err: error, endpoint_id: this.ep.id }, 'loading pending webhook deliveries failed');
          return;
        }
        if (epoch !== this.epoch) {
          this.loadAgain = true;
          continue;
        }
        for (const r of rows) {
          if (r.id <= this.maxLoadedId) continue; // taken in memory while the rows were read
          this.add(itemOfRow(r));
        }
        if (rows.length < room) {
          if (passed === this.passed) this.spilled = false;
          else this.loadAgain = true;
        }
      } while (this.loadAgain);
    } finally {
      this.loading = false;
    }
  }

  /**
   * Applies the coalescing window at the head of a FIFO (see coalesce.ts for the definition):
   * writes the merge, then returns the item to send, or null when the whole run cancelled out.
   * The FIFO is busy meanwhile, so its head stays put.
   */
  async coalesce(store: AsyncWebhookStore, fifo: Fifo, head: Item, now: number): Promise<Item | null> {
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
        ? `coalesced: ${n} changes within ${this.ep.coalesceMs} ms cancelled out`
        : `coalesced into ${msgId}`;
    await store.transaction(async (tx) => {
      for (let i = 0; i < (merged === null ? n : n - 1); i++)
        await store.markCoalesced(run[i]!.id, note, now, tx);
      if (merged !== null)
        last.eventSeq = await store.repoint(last.id, last.eventSeq, msgId!, merged, now, tx);
    });
    for (let i = 0; i < n - 1; i++) this.drop(fifo);
    if (merged === null) {
      this.drop(fifo);
      return null;
    }
    last.msgId = msgId!;
    last.body = Buffer.from(merged);
    return last;
  }

  /**
   * `coalesce` for a claimed head (several nodes, see dispatcher.ts): memory holds only the head
   * of the FIFO, so the rest of the run is read from the store (no other node can claim it while
   * the head is pending). The merged event takes the place of the head, the delivery this node
   * holds the claim on, rather than of the last (which no one has claimed): the rest of the run is
   * marked coalesced. The same events go out in the same order as `coalesce` sends them. Returns
   * the head to send, or null when the run cancelled out (the head is then coalesced too, its
   * claim released).
   */
  async coalesceClaimed(
    store: AsyncWebhookStore,
    claims: DeliveryClaims,
    fifo: Fifo,
    head: Item,
    now: number,
  ): Promise<Item | null> {
    const rest = await claims.laneAfter(this.ep.id, head.orderKey, head.id, 1000);
    const run: PendingRow[] = [];
    for (const r of rest) {
      if (r.attempts > 0 || r.replay === 1 || r.type !== 'presence.changed' || r.created_at > head.notBefore)
        break;
      run.push(r);
    }
    if (run.length === 0) return head;
    const n = run.length + 1;
    const last = run[run.length - 1]!;
    const merged = mergePresenceChanges([head.body.toString('utf8'), ...run.map((r) => r.payload)]);
    const msgId = merged === null ? null : newMessageId(now);
    const note =
      merged === null
        ? `coalesced: ${n} changes within ${this.ep.coalesceMs} ms cancelled out`
        : `coalesced into ${msgId}`;
    await store.transaction(async (tx) => {
      for (const r of run) await store.markCoalesced(r.id, note, now, tx);
      if (merged === null) await store.markCoalesced(head.id, note, now, tx);
      else head.eventSeq = await store.repoint(head.id, last.event_seq, msgId!, merged, now, tx);
    });
    if (merged === null) {
      this.drop(fifo);
      return null;
    }
    head.msgId = msgId!;
    head.body = Buffer.from(merged);
    return head;
  }

  /** Removes the head of a FIFO from memory. */
  drop(fifo: Fifo): void {
    fifo.shift();
    this.count -= 1;
  }

  /** Puts a FIFO that is not in flight back in the heap, or forgets it when empty. */
  requeue(fifo: Fifo): void {
    const first = fifo.first;
    if (first === undefined) {
      if (this.fifos.get(fifo.key) === fifo) this.fifos.delete(fifo.key);
      return;
    }
    if (!fifo.inHeap) {
      fifo.readyAt = readyAt(first);
      this.heap.push(fifo);
    }
  }
}
