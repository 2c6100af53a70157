/**
 * @module stream/subscriber
 * One stream connection's outgoing side, whatever its transport: the ids it watches, its
 * coalescing window, and its queue of unsent messages with the slow-consumer rule.
 *
 * Writes are batched: messages queued in one turn of the event loop go out in one write (one
 * syscall), not one each. A transport that has more than `highWaterBytes` written but not yet
 * flushed to the OS is *blocked*: messages wait in the queue, where they can still be compacted.
 * - unsent (queued + written, not flushed) past `compactBytes` (1 MiB): only the latest message
 *   per user is kept (older ones of that user are dropped), and from then on until the queue
 *   empties a new message of a user replaces the one queued;
 * - still past `closeBytes` (4 MiB), or blocked for `blockedMs` (30 s): closed with `resync`.
 * A slow subscriber costs only its own queue: nothing waits on it.
 */

import type { Clock } from '../core/clock';
import type { ViewerIdentity } from '../privacy/viewer-tokens';
import { mergePresenceChanges } from '../webhooks/coalesce';
import { Outgoing, type ChangeMessage, type ChangeData } from './message';
import type { Timer, Timers } from './timers';

/** How a subscriber reaches its client (WebSocket or Server-Sent Events). */
export interface Transport {
  readonly kind: 'ws' | 'sse';
  /** Writes messages in order, in as few writes as the transport allows; `flushed` once the OS has them. */
  write(messages: readonly Outgoing[], flushed: () => void): void;
  ping(): void;
  /** Tells the client to resume elsewhere and ends the connection. */
  resync(): void;
  /** Ends the connection because the service is stopping (the client reconnects and resumes). */
  drain(): void;
  /** Ends a connection whose peer stopped answering (WebSocket: missed two pings). */
  dead(): void;
}

export interface StreamStats {
  messagesSent: number;
  droppedCoalesced: number;
  droppedCompacted: number;
  resyncs: number;
  resumeHits: number;
  resumeMisses: number;
  /** Keepalive pings a device connection had not answered when the next one was due. */
  missedDevicePings: number;
}

export function emptyStats(): StreamStats {
  return {
    messagesSent: 0,
    droppedCoalesced: 0,
    droppedCompacted: 0,
    resyncs: 0,
    resumeHits: 0,
    resumeMisses: 0,
    missedDevicePings: 0,
  };
}

export interface SubscriberLimits {
  readonly highWaterBytes: number;
  readonly compactBytes: number;
  readonly closeBytes: number;
  readonly blockedMs: number;
}

export const DEFAULT_LIMITS: SubscriberLimits = {
  highWaterBytes: 64 * 1024,
  compactBytes: 1024 * 1024,
  closeBytes: 4 * 1024 * 1024,
  blockedMs: 30_000,
};

export interface SubscriberContext {
  readonly clock: Clock;
  readonly timers: Timers;
  readonly stats: StreamStats;
  readonly limits: SubscriberLimits;
  /**
   * Has `flushScheduled` run after the current turn: the hub flushes every subscriber that has
   * something queued in one pass (one setImmediate for all, not one each).
   */
  readonly schedule: (s: Subscriber) => void;
  /** Called once when the subscriber closes itself (resync). */
  readonly onResync: (s: Subscriber) => void;
  /** The version of a watched id the client has (the hub's index holds it), or undefined. */
  readonly versionOf: (s: Subscriber, userId: string) => number | undefined;
}

/** A change held back by the coalescing window: the first of the run and the latest. */
interface Held {
  readonly first: ChangeMessage;
  last: ChangeMessage;
  /** How many changes the run holds. */
  count: number;
  readonly timer: Timer;
}

const FIELDS_BODY = (d: ChangeData): string =>
  JSON.stringify({ type: 'presence.changed', timestamp: '', data: d });

export class Subscriber {
  /**
   * The watched ids, in the order they were subscribed: the index's copy of each (one string per
   * user, shared by every connection watching it). The newest version the client has of each is
   * kept next to the subscriber in the index (StreamHub), so a watched id costs this one slot
   * here and two there: no per-connection map.
   */
  ids: string[] = [];
  /** WebSocket keepalive: pings sent and not answered yet. */
  unansweredPings = 0;
  /** A WebSocket connection that identified as a device (its missed pings are counted). */
  holdsDevice = false;
  lastPingAt: number;
  closed = false;
  /** The user a viewer connection acts for; null for an API key (sees everything). */
  viewer: ViewerIdentity | null = null;
  /** For a viewer: how it sees each watched id now (StreamPrivacy.kindOf), to send only real changes of view. */
  viewKinds: Map<string, number> | null = null;

  /** Unsent messages; allocated when the first one is queued, dropped once all are written. */
  private queue: (Outgoing | null)[] | null = null;
  private queuedBytes = 0;
  private inFlightBytes = 0;
  /**
   * Of the unsent bytes, those of control messages: a snapshot of thousands of ids is one big
   * message the client asked for, and does not count towards the slow-consumer limits.
   */
  private controlBytes = 0;
  private flushScheduled = false;
  private blockedSince: number | null = null;
  /** While compacting: the queue index of each user's latest queued message. */
  private latest: Map<string, number> | null = null;
  private held: Map<string, Held> | null = null;

  constructor(
    readonly transport: Transport,
    private readonly ctx: SubscriberContext,
    public coalesceMs = 0,
  ) {
    this.lastPingAt = ctx.clock.now();
  }

  /** Watched ids → the newest version the client has of each (0: none yet); a copy, for tests and tools. */
  get watching(): ReadonlyMap<string, number> {
    return new Map(this.ids.map((id) => [id, this.ctx.versionOf(this, id) ?? 0]));
  }

  /** Unsent bytes: queued here plus written and not yet flushed. */
  get unsentBytes(): number {
    return this.queuedBytes + this.inFlightBytes;
  }

  /** What the slow-consumer limits count: unsent presence messages. */
  private get countedBytes(): number {
    return this.unsentBytes - this.controlBytes;
  }

  get isBlocked(): boolean {
    return this.blockedSince !== null;
  }

  /** A control message (snapshot, resumed, pong, error): never compacted or coalesced. */
  send(message: Outgoing): void {
    this.enqueue(message);
  }

  /**
   * A committed change of a watched user that the client does not have yet (the hub checked the
   * version and moved it on), through the coalescing window.
   */
  change(m: ChangeMessage): void {
    if (this.closed) return;
    if (this.coalesceMs <= 0) {
      this.enqueue(m.outgoing);
      return;
    }
    this.held ??= new Map();
    const held = this.held.get(m.userId);
    if (held !== undefined) {
      held.last = m;
      held.count += 1;
      return;
    }
    const timer = this.ctx.timers.after(this.coalesceMs, () => this.release(m.userId));
    this.held.set(m.userId, { first: m, last: m, count: 1, timer });
  }

  /** A replayed change (resume): sent as it was, never coalesced. */
  replay(m: ChangeMessage): void {
    this.enqueue(m.outgoing);
  }

  /** The coalescing window of a user is over: one message with the latest state, or none. */
  private release(userId: string): void {
    const held = this.held?.get(userId);
    if (held === undefined || this.closed) return;
    this.held!.delete(userId);
    if (held.first === held.last) {
      this.enqueue(held.first.outgoing);
      return;
    }
    const merged = mergePresenceChanges([FIELDS_BODY(held.first.data()), FIELDS_BODY(held.last.data())]);
    if (merged === null) {
      // The run ended where it began: nothing to tell.
      this.ctx.stats.droppedCoalesced += held.count;
      return;
    }
    const data = (JSON.parse(merged) as { data: ChangeData }).data;
    const position = held.last.position;
    const json = JSON.stringify({ type: 'presence', ...data, position });
    this.ctx.stats.droppedCoalesced += held.count - 1;
    this.enqueue(new Outgoing('presence', json, userId, position));
  }

  /** Forgets what it holds for ids no longer watched (their held changes, their view). */
  unwatch(ids: Iterable<string>): void {
    for (const id of ids) {
      this.viewKinds?.delete(id);
      const held = this.held?.get(id);
      if (held !== undefined) {
        held.timer.cancel();
        this.held!.delete(id);
      }
    }
  }

  private enqueue(message: Outgoing): void {
    if (this.closed) return;
    const queue = (this.queue ??= []);
    if (this.latest !== null && message.userId !== null) {
      const at = this.latest.get(message.userId);
      if (at !== undefined) this.dropAt(at);
      this.latest.set(message.userId, queue.length);
    }
    queue.push(message);
    this.queuedBytes += message.bytes;
    if (message.userId === null) this.controlBytes += message.bytes;
    if (this.countedBytes > this.ctx.limits.compactBytes && this.latest === null) this.compact();
    if (this.countedBytes > this.ctx.limits.closeBytes) {
      this.resync();
      return;
    }
    this.scheduleFlush();
  }

  private dropAt(index: number): void {
    const queue = this.queue!;
    const old = queue[index]!;
    queue[index] = null;
    this.queuedBytes -= old.bytes;
    this.ctx.stats.droppedCompacted += 1;
  }

  /** Keeps only the latest queued message of each user. */
  private compact(): void {
    const latest = new Map<string, number>();
    const queue = this.queue ?? [];
    for (let i = 0; i < queue.length; i++) {
      const m = queue[i];
      if (m == null || m.userId === null) continue;
      const at = latest.get(m.userId);
      if (at !== undefined) this.dropAt(at);
      latest.set(m.userId, i);
    }
    this.latest = latest;
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || this.blockedSince !== null) return;
    this.flushScheduled = true;
    this.ctx.schedule(this);
  }

  /** The flush `schedule` asked for. */
  flushScheduledWrite(): void {
    this.flushScheduled = false;
    this.flush();
  }

  /** Writes what is queued, as one batch, unless the transport is blocked. */
  flush(): void {
    const queue = this.queue;
    if (this.closed || this.blockedSince !== null || queue === null) return;
    let bytes = 0;
    let control = 0;
    let holes = false;
    for (const m of queue) {
      if (m === null) {
        holes = true;
        continue;
      }
      bytes += m.bytes;
      if (m.userId === null) control += m.bytes;
    }
    // The queue itself is the batch (it is let go here), copied only when compaction left holes:
    // a fan-out flushes thousands of subscribers a turn, each one allocation fewer.
    const batch = holes ? queue.filter((m): m is Outgoing => m !== null) : (queue as Outgoing[]);
    this.queue = null;
    this.queuedBytes = 0;
    this.latest = null;
    if (batch.length === 0) return;
    this.inFlightBytes += bytes;
    this.ctx.stats.messagesSent += batch.length;
    if (this.inFlightBytes >= this.ctx.limits.highWaterBytes) this.blockedSince = this.ctx.clock.now();
    this.transport.write(batch, () => this.flushed(bytes, control));
  }

  private flushed(bytes: number, control: number): void {
    this.inFlightBytes -= bytes;
    this.controlBytes -= control;
    if (this.blockedSince !== null && this.inFlightBytes < this.ctx.limits.highWaterBytes) {
      this.blockedSince = null;
      this.scheduleFlush();
    }
  }

  /** The keepalive's look at this subscriber: closed with `resync` when blocked too long. */
  check(now: number): void {
    if (this.blockedSince !== null && now - this.blockedSince >= this.ctx.limits.blockedMs) this.resync();
  }

  private resync(): void {
    if (this.closed) return;
    this.ctx.stats.resyncs += 1;
    this.stopAll();
    this.transport.resync();
    this.ctx.onResync(this);
  }

  /** Stops everything this subscriber holds (timers, queue); the transport is closed by its owner. */
  close(): void {
    this.stopAll();
  }

  private stopAll(): void {
    this.closed = true;
    for (const h of this.held?.values() ?? []) h.timer.cancel();
    this.held = null;
    this.queue = null;
    this.queuedBytes = 0;
    this.controlBytes = 0;
    this.latest = null;
  }
}
