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
import type { ViewerIdentity } from '../privacy/viewer-tokens';
import { ChangeLog } from './change-log';
import { ChangeMessage, Outgoing, type ChangeData } from './message';
import { newEpoch } from './position';
import {
  DEFAULT_LIMITS,
  emptyStats,
  Subscriber,
  type StreamStats,
  type SubscriberContext,
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

/**
 * Where the hub's changes go besides its own subscribers: the stream workers, which hold
 * connections in other processes (stream/workers/). Told of every logged change, at its offset,
 * in order, and of a restart of the log.
 */
export interface StreamRelay {
  change(offset: number, m: ChangeMessage): void;
  restart(epoch: string, offset: number): void;
}

/**
 * What a viewer (a connection opened with a viewer token) may see: the privacy projection, applied
 * before coalescing and diff suppression, and told when anyone's privacy changes.
 */
export interface StreamPrivacy {
  /** The snapshot body `{"presence":{…},"unknown":[…]}` as the viewer sees it. */
  snapshotJson(viewer: ViewerIdentity, ids: readonly string[]): Buffer;
  /** The change as the viewer sees it, or null to send nothing. */
  view(viewer: ViewerIdentity, m: ChangeMessage): ChangeMessage | null;
  /** The user's presence as the viewer sees it now, with what kind of access, or null (hidden). */
  current(viewer: ViewerIdentity, userId: string): { kind: number; presence: Record<string, unknown> } | null;
  /** How the viewer sees the user: a number that changes when the view does (0: hidden). */
  kindOf(viewer: ViewerIdentity, userId: string): number;
  /** Listens for privacy changes (the user whose settings, contacts or blocks changed). */
  onChange(listener: (userId: string) => void): () => void;
}

export interface HubOptions {
  readonly clock: Clock;
  readonly reader: PresenceReader;
  readonly privacy?: StreamPrivacy;
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
  readonly relay?: StreamRelay;
}

export const MAX_IDS_PER_CONNECTION = 10_000;

/**
 * The subscribers of one user, with the user's id (the one copy every connection watching it
 * shares) and, next to each subscriber, the newest version of the user its client has (0: none
 * yet). Two parallel arrays: a watched id costs two slots here, not a Set entry and a Map entry.
 * A subscriber leaves by swapping the last one into its place (order means nothing here).
 */
class Watchers {
  readonly subs: Subscriber[] = [];
  readonly versions: number[] = [];
  constructor(readonly userId: string) {}

  add(s: Subscriber, version: number): void {
    this.subs.push(s);
    this.versions.push(version);
  }

  /** Removes the subscriber; false when it was not there. */
  remove(s: Subscriber): boolean {
    const k = this.subs.indexOf(s);
    if (k < 0) return false;
    const last = this.subs.length - 1;
    this.subs[k] = this.subs[last]!;
    this.versions[k] = this.versions[last]!;
    this.subs.pop();
    this.versions.pop();
    return true;
  }
}
export const PING_MS = 25_000;
/** The keepalive sweep's period (at most; a fifth of a shorter ping interval). */
const KEEPALIVE_SWEEP_MS = 1000;
/** Pings one sweep may always send, however few the connections. */
const MIN_PINGS_PER_SWEEP = 64;

export class StreamHub {
  readonly log: ChangeLog<ChangeMessage>;
  readonly stats: StreamStats = emptyStats();
  private readonly clock: Clock;
  private readonly reader: PresenceReader;
  private readonly privacy: StreamPrivacy | undefined;
  private readonly stopPrivacy: () => void;
  private readonly timers: Timers;
  private readonly index = new Map<string, Watchers>();
  private readonly subscribers = new Set<Subscriber>();
  private readonly limits: SubscriberLimits;
  private readonly maxIds: number;
  private readonly pingMs: number;
  private readonly defer: (run: () => void) => void;
  /** What every subscriber shares (one object, not one per connection). */
  private readonly context: SubscriberContext;
  /** Subscribers with something to write at the end of this turn. */
  private dirty: Subscriber[] = [];
  private flushing = false;
  private watchCount = 0;
  private ticker: { cancel(): void } | null = null;
  private draining = false;
  private readonly relay: StreamRelay | null;
  /** Subscribers whose resume waits for what it reads (a worker's): live changes skip them. */
  private readonly heldBack = new Set<Subscriber>();

  constructor(options: HubOptions) {
    this.clock = options.clock;
    this.reader = options.reader;
    this.privacy = options.privacy;
    this.stopPrivacy = this.privacy?.onChange((id) => this.privacyChanged(id)) ?? (() => undefined);
    this.timers = options.timers ?? systemTimers;
    this.log = new ChangeLog({ clock: this.clock, epoch: options.epoch ?? newEpoch(), ...options.log });
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.maxIds = options.maxIdsPerConnection ?? MAX_IDS_PER_CONNECTION;
    this.pingMs = options.pingMs ?? PING_MS;
    this.defer = options.defer ?? ((run) => setImmediate(run));
    this.relay = options.relay ?? null;
    this.context = {
      clock: this.clock,
      timers: this.timers,
      stats: this.stats,
      limits: this.limits,
      schedule: (sub) => this.schedule(sub),
      onResync: (sub) => this.close(sub),
      versionOf: (sub, id) => this.versionOf(sub, id),
    };
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

  /** The subscribers of a user (a copy), for tests of the index. */
  subscribersOf(userId: string): ReadonlySet<Subscriber> | undefined {
    const w = this.index.get(userId);
    return w === undefined ? undefined : new Set(w.subs);
  }

  /** Writes what every subscriber queued this turn once the turn is over: one deferral for all. */
  private schedule(s: Subscriber): void {
    this.dirty.push(s);
    if (this.dirty.length > 1 || this.flushing) return;
    this.flushing = true;
    this.defer(() => {
      this.flushing = false;
      // Swapped first: a write that flushes at once may queue (and schedule) again.
      const list = this.dirty;
      this.dirty = [];
      for (const sub of list) sub.flushScheduledWrite();
    });
  }

  /** How many connections watch the user. */
  subscriberCount(userId: string): number {
    return this.index.get(userId)?.subs.length ?? 0;
  }

  /** The version of `userId` the subscriber's client has, or undefined when it does not watch it. */
  private versionOf(s: Subscriber, userId: string): number | undefined {
    const w = this.index.get(userId);
    const k = w === undefined ? -1 : w.subs.indexOf(s);
    return k < 0 ? undefined : w!.versions[k];
  }

  /** Sets the version of a watched id the subscriber's client has (nothing when not watched). */
  private setVersion(s: Subscriber, userId: string, version: number): void {
    const w = this.index.get(userId);
    const k = w === undefined ? -1 : w.subs.indexOf(s);
    if (k >= 0) w!.versions[k] = version;
  }

  /** How many users have at least one subscriber. */
  get indexedUsers(): number {
    return this.index.size;
  }

  /** Starts the keepalive sweep (it also checks blocked subscribers). */
  start(): void {
    this.ticker ??= this.timers.every(this.sweepMs(), () => this.tick());
  }

  private sweepMs(): number {
    return Math.min(KEEPALIVE_SWEEP_MS, this.pingMs / 5);
  }

  /** The change pipeline's `committed` phase: after the commit, in commit order. */
  committed(changes: readonly PresenceChange[]): void {
    for (const c of changes) {
      const entry = this.log.append(
        c.userId,
        (offset) => new ChangeMessage(c, `${this.log.epoch}:${offset}`),
      );
      this.relay?.change(entry.offset, entry.value);
      this.fanOut(entry.value);
    }
  }

  /**
   * A change numbered by the shared change log of several nodes (src/cluster/): logged at its
   * offset and sent like a local one. Every node's hub is fed this way, its own changes
   * included, so positions mean the same on every node and a client can resume on any.
   */
  published(offset: number, data: ChangeData): void {
    const m = ChangeMessage.fromData(data, `${this.log.epoch}:${offset}`);
    this.log.appendAt(offset, m.userId, m);
    this.relay?.change(offset, m);
    this.fanOut(m);
  }

  /**
   * A change another process's hub logged and relayed (a stream worker's feed): logged at the
   * same offset, so a position means the same in every process, and sent as is.
   */
  relayed(offset: number, userId: string, version: number, json: string): void {
    const m = ChangeMessage.ready(json, userId, version, `${this.log.epoch}:${offset}`);
    this.log.appendAt(offset, userId, m);
    this.fanOut(m);
  }

  /** The shared change log (re)starts at `offset` of `epoch`: positions from before are misses. */
  restart(epoch: string, offset: number): void {
    this.log.restart(epoch, offset);
    this.relay?.restart(epoch, offset);
  }

  /**
   * The subscriber's resume is waiting for what it will read (a worker loads it from the main
   * process): until `resume` runs, live changes are not sent to it, since the resume replays
   * them from the log in order (or the snapshot holds them).
   */
  holdBack(s: Subscriber): void {
    this.heldBack.add(s);
  }

  /** Sends a logged change to the subscribers of its user. */
  private fanOut(message: ChangeMessage): void {
    const w = this.index.get(message.userId);
    if (w === undefined) return;
    const { subs, versions } = w;
    // Backwards: a subscriber closed on the way (resync) is swapped out with one already done.
    const held = this.heldBack.size > 0;
    for (let k = subs.length - 1; k >= 0; k--) {
      const s = subs[k]!;
      if (held && this.heldBack.has(s)) continue;
      const m = s.viewer === null ? message : this.viewed(s, message);
      // Diff suppression: a change the client already has (its snapshot was newer) is not sent.
      if (m === null || m.version <= versions[k]!) continue;
      versions[k] = m.version;
      s.change(m);
    }
  }

  /** A new connection. It watches nothing until `subscribe` or `resume`. */
  /** `viewer`: the connection was opened with a viewer token; it sees what that user may see. */
  open(transport: Transport, coalesceMs = 0, viewer: ViewerIdentity | null = null): Subscriber {
    if (this.draining) throw new AppError('unavailable', 'the service is restarting: reconnect');
    const s = new Subscriber(transport, this.context, coalesceMs);
    if (viewer !== null) {
      s.viewer = viewer;
      s.viewKinds = new Map();
    }
    this.subscribers.add(s);
    return s;
  }

  /** Ids not yet watched, or an error when the connection would watch more than allowed. */
  added(s: Subscriber, ids: readonly string[]): string[] {
    const watched = new Set(s.ids);
    const fresh = [...new Set(ids)].filter((id) => !watched.has(id));
    if (s.ids.length + fresh.length > this.maxIds)
      throw new AppError(
        'invalid_request',
        `a connection watches at most ${this.maxIds} ids (it watches ${s.ids.length}, ${fresh.length} more asked)`,
      );
    return fresh;
  }

  /** The message as the subscriber may see it (a viewer's through the projection), or null. */
  private viewed(s: Subscriber, m: ChangeMessage): ChangeMessage | null {
    if (s.viewer === null || this.privacy === undefined) return m;
    const v = this.privacy.view(s.viewer, m);
    if (v !== null) s.viewKinds?.set(m.userId, this.privacy.kindOf(s.viewer, m.userId));
    return v;
  }

  /**
   * Someone's privacy changed: every viewer watching them, and every connection of that user
   * (their own reciprocal settings), sees each affected user again, now: the presence as they may
   * see it, or `hidden`. Nothing is sent where the view did not change.
   */
  private privacyChanged(userId: string): void {
    const privacy = this.privacy;
    if (privacy === undefined) return;
    const position = this.log.position;
    for (const s of this.subscribers) {
      const viewer = s.viewer;
      if (viewer === null || s.closed) continue;
      const ids = viewer.userId === userId ? s.ids.slice() : s.ids.includes(userId) ? [userId] : [];
      for (const id of ids) {
        const kind = privacy.kindOf(viewer, id);
        if (s.viewKinds?.get(id) === kind) continue;
        s.viewKinds?.set(id, kind);
        const now = privacy.current(viewer, id);
        if (now === null) {
          s.send(Outgoing.of('hidden', { user_id: id }));
          continue;
        }
        const p = now.presence;
        const data = {
          user_id: id,
          version: p.version as number,
          previous: { status: p.status, activity: p.activity, custom_status: p.custom_status },
          current: p,
          changed: [],
        };
        this.setVersion(s, id, p.version as number);
        s.send(ChangeMessage.fromData(data, position).outgoing);
      }
    }
  }

  /** Watches ids not watched yet (`added` deduplicated them). */
  private watch(s: Subscriber, ids: readonly string[]): void {
    if (ids.length === 0) return;
    const shared: string[] = [];
    for (const id of ids) {
      if (s.viewer !== null && this.privacy !== undefined)
        s.viewKinds?.set(id, this.privacy.kindOf(s.viewer, id));
      let w = this.index.get(id);
      if (w === undefined) this.index.set(id, (w = new Watchers(id)));
      w.add(s, this.reader.state(id)?.version ?? 0);
      // The index's copy of the id: thousands of connections watching a user share one string.
      shared.push(w.userId);
      this.watchCount += 1;
    }
    // concat allocates exactly what it holds (a pushed-to array keeps up to half again spare).
    s.ids = s.ids.concat(shared);
  }

  /** The snapshot message of `ids`, with the position it stands at. */
  private snapshot(
    ids: readonly string[],
    recovered?: false,
    viewer: ViewerIdentity | null = null,
  ): Outgoing {
    const body = (
      viewer === null || this.privacy === undefined
        ? this.reader.getManyJson(ids)
        : this.privacy.snapshotJson(viewer, ids)
    ).toString('utf8');
    const position = JSON.stringify(this.log.position);
    const tail = recovered === false ? `,"recovered":false` : '';
    return new Outgoing('snapshot', `{"type":"snapshot",${body.slice(1, -1)},"position":${position}${tail}}`);
  }

  /** Watches more ids; answers with a snapshot of the newly added ones (throws, changing nothing, past the limit). */
  subscribe(s: Subscriber, ids: readonly string[]): void {
    const fresh = this.added(s, ids);
    this.watch(s, fresh);
    s.send(this.snapshot(fresh, undefined, s.viewer));
  }

  unsubscribe(s: Subscriber, ids: readonly string[]): void {
    const watched = new Set(s.ids);
    const gone = new Set(ids.filter((id) => watched.has(id)));
    if (gone.size === 0) return;
    s.unwatch(gone);
    for (const id of gone) this.unindex(s, id);
    s.ids = s.ids.filter((id) => !gone.has(id));
  }

  private unindex(s: Subscriber, id: string): void {
    const w = this.index.get(id);
    if (w === undefined || !w.remove(s)) return;
    this.watchCount -= 1;
    if (w.subs.length === 0) this.index.delete(id);
  }

  /**
   * Resumes from `since` for the ids watched (plus `ids`, watched from now on): every missed
   * change of them in order, then `resumed`; or, when the log cannot answer for all of them, a
   * fresh snapshot with `recovered: false`.
   */
  resume(s: Subscriber, since: string, ids: readonly string[] = []): void {
    this.heldBack.delete(s);
    const fresh = this.added(s, ids);
    this.watch(s, fresh);
    // Where the subscriber sits among each watched user's subscribers (nothing moves meanwhile).
    const slots = new Map<string, { w: Watchers; k: number }>();
    for (const id of s.ids) {
      const w = this.index.get(id)!;
      slots.set(id, { w, k: w.subs.indexOf(s) });
    }
    const decision = this.log.since(since, (id) => slots.has(id));
    if (!decision.hit) {
      this.stats.resumeMisses += 1;
      s.send(this.snapshot(s.ids, false, s.viewer));
      for (const [id, { w, k }] of slots) w.versions[k] = this.reader.state(id)?.version ?? 0;
      return;
    }
    this.stats.resumeHits += 1;
    // What the client has is what it had at `since`: every change after it is sent again. As
    // live (`fanOut`), never an older version after a newer: with several nodes, two changes of
    // one user committed at almost the same moment on two nodes may reach the log in the other
    // order, and the older one, a state already replaced, is skipped like a coalesced change.
    for (const { w, k } of slots.values()) w.versions[k] = 0;
    for (const e of decision.changes) {
      const m = this.viewed(s, e.value);
      if (m === null) continue;
      const { w, k } = slots.get(m.userId)!;
      if (m.version <= w.versions[k]!) continue;
      w.versions[k] = m.version;
      s.replay(m);
    }
    s.send(Outgoing.of('resumed', { recovered: true, position: this.log.position }));
  }

  /** The connection ended (closed by either side, or found dead): forgotten everywhere. */
  close(s: Subscriber): void {
    this.heldBack.delete(s);
    if (!this.subscribers.delete(s)) return;
    for (const id of s.ids) this.unindex(s, id);
    s.ids = [];
    s.close();
  }

  /**
   * Keepalive and the blocked-subscriber rule; the ticker calls it, tests call it after moving the
   * clock. A sweep pings at most twice the connections' even share of one sweep: connections
   * opened together (every client reconnecting after a restart) would otherwise be pinged in one
   * burst of writes every ping interval, forever, holding every change behind it for as long as
   * thousands of writes take. The ones left over are pinged by the next sweeps, oldest first, and
   * stay spread from then on.
   */
  tick(): void {
    const now = this.clock.now();
    const budget = Math.max(
      MIN_PINGS_PER_SWEEP,
      Math.ceil((2 * this.subscribers.size * this.sweepMs()) / this.pingMs),
    );
    let pinged = 0;
    for (const s of [...this.subscribers]) {
      s.check(now);
      if (s.closed || now - s.lastPingAt < this.pingMs || pinged >= budget) continue;
      pinged += 1;
      if (s.holdsDevice && s.unansweredPings > 0) this.stats.missedDevicePings += 1;
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
    this.stopPrivacy();
    this.ticker?.cancel();
    this.ticker = null;
    for (const s of [...this.subscribers]) {
      s.flush();
      s.transport.drain();
      this.close(s);
    }
  }
}
