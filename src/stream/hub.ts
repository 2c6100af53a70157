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
  private readonly privacy: StreamPrivacy | undefined;
  private readonly stopPrivacy: () => void;
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
    this.privacy = options.privacy;
    this.stopPrivacy = this.privacy?.onChange((id) => this.privacyChanged(id)) ?? (() => undefined);
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
      for (const s of subs) {
        const m = this.viewed(s, entry.value);
        if (m !== null) s.change(m);
      }
    }
  }

  /** A new connection. It watches nothing until `subscribe` or `resume`. */
  /** `viewer`: the connection was opened with a viewer token; it sees what that user may see. */
  open(transport: Transport, coalesceMs = 0, viewer: ViewerIdentity | null = null): Subscriber {
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
    if (viewer !== null) {
      s.viewer = viewer;
      s.viewKinds = new Map();
    }
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
      const ids = viewer.userId === userId ? [...s.watching.keys()] : s.watching.has(userId) ? [userId] : [];
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
        s.watching.set(id, p.version as number);
        s.send(ChangeMessage.fromData(data, position).outgoing);
      }
    }
  }

  private watch(s: Subscriber, ids: readonly string[]): void {
    for (const id of ids) {
      if (s.watching.has(id)) continue;
      if (s.viewer !== null && this.privacy !== undefined)
        s.viewKinds?.set(id, this.privacy.kindOf(s.viewer, id));
      let subs = this.index.get(id);
      if (subs === undefined) this.index.set(id, (subs = new Subscribers(id)));
      subs.add(s);
      // The index's copy of the id: thousands of connections watching a user share one string.
      s.watching.set(subs.userId, this.reader.state(id)?.version ?? 0);
      this.watchCount += 1;
    }
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
      s.send(this.snapshot([...s.watching.keys()], false, s.viewer));
      for (const id of s.watching.keys()) s.watching.set(id, this.reader.state(id)?.version ?? 0);
      return;
    }
    this.stats.resumeHits += 1;
    // What the client has is what it had at `since`: every change after it is sent again.
    for (const id of s.watching.keys()) s.watching.set(id, 0);
    for (const e of decision.changes) {
      const m = this.viewed(s, e.value);
      if (m !== null) s.replay(m);
    }
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
