/**
 * @module stream/hub
 * The stream's core, free of any transport: the change log, the index user → subscribers, and
 * the protocol's decisions (snapshot, resume hit or miss, subscribe and unsubscribe, keepalive).
 *
 * It is a consumer of committed changes (`committed`, after the commit is durable, in commit
 * order): each change gets the next offset once, is logged, and goes to the subscribers of its
 * user only, found through the index, which is kept exact as subscriptions come and go and as
 * connections close.
 */

import type { PresenceChange } from '../core/changes';
import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import { ChangeLog } from './change-log';
import { ChangeMessage, Outgoing } from './message';
import { newEpoch } from './position';
import {
  DEFAULT_LIMITS,
  emptyStats,
  Subscriber,
  type StreamStats,
  type SubscriberLimits,
  type Transport,
} from './subscriber';
import { systemTimers, type Timers } from './timers';

/** What the hub reads presence from (the engine). */
export interface PresenceReader {
  /** `{"presence":{…},"unknown":[…]}` for the ids. */
  getManyJson(ids: readonly string[]): Buffer;
  state(userId: string): { readonly version: number } | undefined;
}

export interface HubOptions {
  readonly clock: Clock;
  readonly reader: PresenceReader;
  readonly timers?: Timers;
  readonly epoch?: string;
  /** Change log retention (defaults: 2 minutes and 100,000 changes, at most 1,000,000). */
  readonly log?: { readonly minAgeMs?: number; readonly minCount?: number; readonly maxCount?: number };
  readonly limits?: Partial<SubscriberLimits>;
  /** Ids one connection may watch. */
  readonly maxIdsPerConnection?: number;
  /** Keepalive ping interval. */
  readonly pingMs?: number;
  readonly defer?: (run: () => void) => void;
}

export const MAX_IDS_PER_CONNECTION = 10_000;

/** The subscribers of one user, with the user's id (shared by every connection watching it). */
class Subscribers extends Set<Subscriber> {
  constructor(readonly userId: string) {
    super();
  }
}
export const PING_MS = 25_000;

export class StreamHub {
  readonly log: ChangeLog<ChangeMessage>;
  readonly stats: StreamStats = emptyStats();
  private readonly clock: Clock;
  private readonly reader: PresenceReader;
  private readonly timers: Timers;
  private readonly index = new Map<string, Subscribers>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly limits: SubscriberLimits;
  private readonly maxIds: number;
  private readonly pingMs: number;
  private readonly defer: (run: () => void) => void;
  private watchCount = 0;
  private ticker: { cancel(): void } | null = null;
  private draining = false;

  constructor(options: HubOptions) {
    this.clock = options.clock;
    this.reader = options.reader;
    this.timers = options.timers ?? systemTimers;
    this.log = new ChangeLog({ clock: this.clock, epoch: options.epoch ?? newEpoch(), ...options.log });
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.maxIds = options.maxIdsPerConnection ?? MAX_IDS_PER_CONNECTION;
    this.pingMs = options.pingMs ?? PING_MS;
    this.defer = options.defer ?? ((run) => setImmediate(run));
  }

  /** False once draining: new connections are refused (503) while the service stops. */
  get accepting(): boolean {
    return !this.draining;
  }

  /** Subscriptions held now (one per watched id per connection). */
  get subscriptions(): number {
    return this.watchCount;
  }

  get connections(): number {
    return this.subscribers.size;
  }

  /** The subscribers of a user, for tests of the index. */
  subscribersOf(userId: string): ReadonlySet<Subscriber> | undefined {
    return this.index.get(userId);
  }

  /** How many users have at least one subscriber. */
  get indexedUsers(): number {
    return this.index.size;
  }

  /** Starts the keepalive (every fifth of the ping interval: it also checks blocked subscribers). */
  start(): void {
    this.ticker ??= this.timers.every(Math.min(5000, this.pingMs), () => this.tick());
  }

  /** The change pipeline's `committed` phase: after the commit, in commit order. */
  committed(changes: readonly PresenceChange[]): void {
    for (const c of changes) {
      const entry = this.log.append(
        c.userId,
        (offset) => new ChangeMessage(c, `${this.log.epoch}:${offset}`),
      );
      const subs = this.index.get(c.userId);
      if (subs === undefined) continue;
      for (const s of subs) s.change(entry.value);
    }
  }

  /** A new connection. It watches nothing until `subscribe` or `resume`. */
  open(transport: Transport, coalesceMs = 0): Subscriber {
    if (this.draining) throw new AppError('unavailable', 'the service is restarting: reconnect');
    const s = new Subscriber(
      transport,
      {
        clock: this.clock,
        timers: this.timers,
        stats: this.stats,
        limits: this.limits,
        defer: this.defer,
        onResync: (sub) => this.close(sub),
      },
      coalesceMs,
    );
    this.subscribers.add(s);
    return s;
  }

  /** Ids not yet watched, or an error when the connection would watch more than allowed. */
  private added(s: Subscriber, ids: readonly string[]): string[] {
    const fresh = [...new Set(ids)].filter((id) => !s.watching.has(id));
    if (s.watching.size + fresh.length > this.maxIds)
      throw new AppError(
        'invalid_request',
        `a connection watches at most ${this.maxIds} ids (it watches ${s.watching.size}, ${fresh.length} more asked)`,
      );
    return fresh;
  }

  private watch(s: Subscriber, ids: readonly string[]): void {
    for (const id of ids) {
      if (s.watching.has(id)) continue;
      let subs = this.index.get(id);
      if (subs === undefined) this.index.set(id, (subs = new Subscribers(id)));
      subs.add(s);
      // The index's copy of the id: thousands of connections watching a user share one string.
      s.watching.set(subs.userId, this.reader.state(id)?.version ?? 0);
      this.watchCount += 1;
    }
  }

  /** The snapshot message of `ids`, with the position it stands at. */
  private snapshot(ids: readonly string[], recovered?: false): Outgoing {
    const body = this.reader.getManyJson(ids).toString('utf8');
    const position = JSON.stringify(this.log.position);
    const tail = recovered === false ? `,"recovered":false` : '';
    return new Outgoing('snapshot', `{"type":"snapshot",${body.slice(1, -1)},"position":${position}${tail}}`);
  }

  /** Watches more ids; answers with a snapshot of the newly added ones (throws, changing nothing, past the limit). */
  subscribe(s: Subscriber, ids: readonly string[]): void {
    const fresh = this.added(s, ids);
    this.watch(s, fresh);
    s.send(this.snapshot(fresh));
  }

  unsubscribe(s: Subscriber, ids: readonly string[]): void {
    const gone = ids.filter((id) => s.watching.has(id));
    s.unwatch(gone);
    for (const id of gone) this.unindex(s, id);
  }

  private unindex(s: Subscriber, id: string): void {
    const subs = this.index.get(id);
    if (subs === undefined || !subs.delete(s)) return;
    this.watchCount -= 1;
    if (subs.size === 0) this.index.delete(id);
  }

  /**
   * Resumes from `since` for the ids watched (plus `ids`, watched from now on): every missed
   * change of them in order, then `resumed`; or, when the log cannot answer for all of them, a
   * fresh snapshot with `recovered: false`.
   */
  resume(s: Subscriber, since: string, ids: readonly string[] = []): void {
    const fresh = this.added(s, ids);
    this.watch(s, fresh);
    const decision = this.log.since(since, (id) => s.watching.has(id));
    if (!decision.hit) {
      this.stats.resumeMisses += 1;
      s.send(this.snapshot([...s.watching.keys()], false));
      for (const id of s.watching.keys()) s.watching.set(id, this.reader.state(id)?.version ?? 0);
      return;
    }
    this.stats.resumeHits += 1;
    // What the client has is what it had at `since`: every change after it is sent again.
    for (const id of s.watching.keys()) s.watching.set(id, 0);
    for (const e of decision.changes) s.replay(e.value);
    s.send(Outgoing.of('resumed', { recovered: true, position: this.log.position }));
  }

  /** The connection ended (closed by either side, or found dead): forgotten everywhere. */
  close(s: Subscriber): void {
    if (!this.subscribers.delete(s)) return;
    for (const id of s.watching.keys()) this.unindex(s, id);
    s.close();
  }

  /** Keepalive and the blocked-subscriber rule; the ticker calls it, tests call it after moving the clock. */
  tick(): void {
    const now = this.clock.now();
    for (const s of [...this.subscribers]) {
      s.check(now);
      if (s.closed || now - s.lastPingAt < this.pingMs) continue;
      if (s.transport.kind === 'ws' && s.unansweredPings >= 2) {
        s.transport.dead();
        this.close(s);
        continue;
      }
      s.lastPingAt = now;
      if (s.transport.kind === 'ws') s.unansweredPings += 1;
      s.transport.ping();
    }
  }

  /** Shutdown: every client is told to reconnect (it resumes or gets a snapshot elsewhere or later). */
  drain(): void {
    this.draining = true;
    this.ticker?.cancel();
    this.ticker = null;
    for (const s of [...this.subscribers]) {
      s.flush();
      s.transport.drain();
      this.close(s);
    }
  }
}
