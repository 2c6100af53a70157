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
  /** Runs `flush` after the current turn (setImmediate); tests may run it at once. */
  readonly defer: (flush: () => void) => void;
  /** Called once when the subscriber closes itself (resync). */
  readonly onResync: (s: Subscriber) => void;
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
  /** Watched ids → the newest version the client has of each (0: none yet). */
  readonly watching = new Map<string, number>();
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

  private queue: (Outgoing | null)[] = [];
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

  /** A committed change of a watched user, through the coalescing window. */
  change(m: ChangeMessage): void {
    if (this.closed) return;
    const known = this.watching.get(m.userId);
    if (known === undefined || m.version <= known) return; // not watched, or the client has it
    this.watching.set(m.userId, m.version);
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
    const known = this.watching.get(m.userId) ?? 0;
    if (m.version > known) this.watching.set(m.userId, m.version);
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

  /** Forgets ids (their held changes too). */
  unwatch(ids: Iterable<string>): void {
    for (const id of ids) {
      this.watching.delete(id);
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
    if (this.latest !== null && message.userId !== null) {
      const at = this.latest.get(message.userId);
      if (at !== undefined) this.dropAt(at);
      this.latest.set(message.userId, this.queue.length);
    }
    this.queue.push(message);
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
    const old = this.queue[index]!;
    this.queue[index] = null;
    this.queuedBytes -= old.bytes;
    this.ctx.stats.droppedCompacted += 1;
  }

  /** Keeps only the latest queued message of each user. */
  private compact(): void {
    const latest = new Map<string, number>();
    for (let i = 0; i < this.queue.length; i++) {
      const m = this.queue[i];
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
    this.ctx.defer(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Writes what is queued, as one batch, unless the transport is blocked. */
  flush(): void {
    if (this.closed || this.blockedSince !== null || this.queue.length === 0) return;
    const batch: Outgoing[] = [];
    let bytes = 0;
    let control = 0;
    for (const m of this.queue) {
      if (m === null) continue;
      batch.push(m);
      bytes += m.bytes;
      if (m.userId === null) control += m.bytes;
    }
    this.queue = [];
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
    this.queue = [];
    this.queuedBytes = 0;
    this.controlBytes = 0;
    this.latest = null;
  }
}
