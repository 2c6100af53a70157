/**
 * @module cluster/follower
 * This node's reader of the shared change log: one per node, waiting on Redis for the next
 * entries (`follow`, XREAD BLOCK) and handing each, in log order, to the engine (another node's
 * change replaces that user's state here; this node's own are skipped, its memory has them) and
 * to the stream hub (every change, this node's too, at the log's offset, so that positions mean
 * the same on every node and a subscriber can resume on any).
 *
 * A change of another node to a user this node is changing itself (its commit pending) is held
 * back and tried again shortly; the versions then decide. A position the log cannot answer for
 * any more (Redis lost its state: a new epoch; or this node fell behind the retention) restarts
 * the hub at the log's head: its subscribers get a fresh snapshot when they resume.
 */

import type { RemoteOutcome, RemoteState } from '../aggregator/remote';
import { Backoff } from '../core/backoff';
import type { Log } from '../core/log';
import type { LogEntry, LogPosition, RedisHotState } from '../store/redis';
import { offsetOfId } from '../store/redis';
import type { ChangeData } from '../stream/message';
import { decodeEntry } from './entry';

/** What the follower feeds: the engine's side. */
export interface RemoteTarget {
  applyRemote(state: RemoteState): RemoteOutcome;
  forgetRemote(userId: string): boolean;
}

/** What the follower feeds: the stream hub's side. */
export interface PublishTarget {
  /** The log restarted (at start, or after it was lost): its epoch and newest offset. */
  restart(epoch: string, offset: number): void;
  published(offset: number, data: ChangeData): void;
}

export interface FollowerOptions {
  readonly hot: RedisHotState;
  /** Where to start: the log's head as read before the engine loaded (`Cluster.prepare`). */
  readonly from: LogPosition;
  readonly node: string;
  readonly engine: RemoteTarget;
  readonly stream: PublishTarget;
  readonly log: Log;
  /** How long one wait on Redis lasts before it is renewed (also bounds how long `stop` takes). */
  readonly blockMs?: number;
}

const RETRY_BUSY_MS = 5;
const RETRY_FIRST_MS = 50;
const RETRY_MAX_MS = 1_000;

export class Follower {
  private position: LogPosition;
  private stopped = false;
  private running: Promise<void> | null = null;
  /** Other nodes' changes held back while this node's own change of that user commits. */
  private readonly held = new Map<string, RemoteState>();
  private heldTimer: NodeJS.Timeout | null = null;
  private wake: (() => void) | null = null;
  /** Entries applied from other nodes, for tests and /metrics. */
  applied = 0;
  /** Set while reading the log fails. */
  failing = false;

  constructor(private readonly o: FollowerOptions) {
    this.position = o.from;
  }

  /** The log position read up to (tests wait on it). */
  get at(): LogPosition {
    return this.position;
  }

  /** Starts the hub at the starting position, then follows. */
  start(): void {
    if (this.running !== null) return;
    this.o.stream.restart(this.position.epoch, offsetOfId(this.position.id));
    this.running = this.loop();
  }

  /**
   * Stops following. The wait on Redis in progress ends with its block time, or at once when the
   * hot state's connection closes (cluster/index.ts closes it right after).
   */
  halt(): void {
    this.stopped = true;
    this.wake?.();
    if (this.heldTimer !== null) clearTimeout(this.heldTimer);
    this.heldTimer = null;
  }

  /** Settles once the loop has ended (after `halt`). */
  get done(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  private async loop(): Promise<void> {
    const backoff = new Backoff(RETRY_FIRST_MS, RETRY_MAX_MS);
    while (!this.stopped) {
      const from = this.position;
      let read;
      try {
        read = await this.o.hot.follow(from, this.o.blockMs ?? 1_000);
      } catch (error) {
        if (this.stopped) return;
        if (!this.failing) this.o.log.warn({ err: error }, 'the change log cannot be read; retrying');
        this.failing = true;
        await this.pause(backoff.next());
        continue;
      }
      if (this.failing) this.o.log.info({}, 'the change log is read again');
      this.failing = false;
      backoff.reset();
      if (!read.recovered) {
        const head = await this.o.hot.logHead().catch(() => null);
        if (head === null) continue;
        this.o.log.warn(
          { from: from.epoch, to: head.epoch },
          'the change log since this node last read it is gone; following from its head',
        );
        this.position = head;
        this.o.stream.restart(head.epoch, offsetOfId(head.id));
        continue;
      }
      for (const e of read.entries) {
        this.take(e);
        this.position = { epoch: read.epoch, id: e.id };
      }
    }
  }

  private take(e: LogEntry): void {
    const entry = decodeEntry(e.change);
    if (entry === null) {
      this.o.log.warn({ id: e.id }, 'a change log entry that is not one was skipped');
      return;
    }
    if (entry.kind === 'delete') {
      if (entry.node !== this.o.node) {
        this.held.delete(entry.userId);
        this.o.engine.forgetRemote(entry.userId);
      }
      return;
    }
    if (entry.node !== this.o.node) this.apply(entry.state);
    this.o.stream.published(e.offset, entry.data);
  }

  private apply(state: RemoteState): void {
    const held = this.held.get(state.userId);
    if (held !== undefined) {
      // Already waiting: keep the newest state only (it replaces the user whole).
      if (state.version > held.version) this.held.set(state.userId, state);
      return;
    }
    const outcome = this.o.engine.applyRemote(state);
    if (outcome === 'applied') this.applied += 1;
    if (outcome !== 'busy') return;
    this.held.set(state.userId, state);
    this.retryHeld();
  }

  private retryHeld(): void {
    if (this.heldTimer !== null || this.stopped) return;
    this.heldTimer = setTimeout(() => {
      this.heldTimer = null;
      for (const [userId, state] of this.held) {
        const outcome = this.o.engine.applyRemote(state);
        if (outcome === 'busy') continue;
        this.held.delete(userId);
        if (outcome === 'applied') this.applied += 1;
      }
      if (this.held.size > 0) this.retryHeld();
    }, RETRY_BUSY_MS);
    this.heldTimer.unref();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      t.unref();
      function done(): void {
        resolve();
      }
      this.wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }
}
