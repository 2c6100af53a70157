/**
 * @module stream/change-log
 * The change log streams resume from: every committed change, in commit order, each with the
 * offset it was given once when it was appended. It keeps at least the last `minAgeMs` of changes
 * AND at least the last `minCount` (both: an entry is dropped only when it is outside both), up to
 * a hard cap `maxCount` that bounds memory under a burst; past the cap the oldest go first, and a
 * resume from before them is a miss (a fresh snapshot), never a partial replay.
 *
 * Pure: the clock is injected, no I/O.
 */

import type { Clock } from '../core/clock';
import { formatPosition, parsePosition } from './position';

/** What a change is in the log: who it is about, and what subscribers are sent. */
export interface LoggedChange<T> {
  readonly offset: number;
  readonly userId: string;
  readonly loggedAt: number;
  readonly value: T;
}

export interface ChangeLogOptions {
  readonly clock: Clock;
  readonly epoch: string;
  /** Keep at least this much time of changes (default 2 minutes). */
  readonly minAgeMs?: number;
  /** Keep at least this many changes (default 100,000). */
  readonly minCount?: number;
  /** Never more than this many (default 1,000,000), whatever their age. */
  readonly maxCount?: number;
}

/** A resume answered from the log: every missed change (of the ids asked about), in order. */
export type ResumeDecision<T> =
  | { readonly hit: true; readonly changes: readonly LoggedChange<T>[] }
  | { readonly hit: false; readonly reason: 'malformed' | 'epoch' | 'future' | 'expired' };

export class ChangeLog<T> {
  private currentEpoch: string;
  private readonly clock: Clock;
  private readonly minAgeMs: number;
  private readonly minCount: number;
  private readonly maxCount: number;
  /** Entries in offset order; `start` is the index of the oldest one still held. */
  private entries: LoggedChange<T>[] = [];
  private start = 0;
  private last = 0;

  constructor(options: ChangeLogOptions) {
    this.clock = options.clock;
    this.currentEpoch = options.epoch;
    this.minAgeMs = options.minAgeMs ?? 120_000;
    this.minCount = options.minCount ?? 100_000;
    this.maxCount = Math.max(options.maxCount ?? 1_000_000, this.minCount);
  }

  /** The epoch the offsets belong to. */
  get epoch(): string {
    return this.currentEpoch;
  }

  /** The offset of the newest change (0 before any). */
  get offset(): number {
    return this.last;
  }

  /** The position a snapshot taken now stands at. */
  get position(): string {
    return formatPosition(this.epoch, this.last);
  }

  get size(): number {
    return this.entries.length - this.start;
  }

  /** The offset of the oldest change still held, or the next one when the log is empty. */
  get oldest(): number {
    return this.size === 0 ? this.last + 1 : this.entries[this.start]!.offset;
  }

  /** Appends one committed change and gives it the next offset. */
  append(userId: string, value: (offset: number) => T): LoggedChange<T> {
    const offset = this.last + 1;
    const entry: LoggedChange<T> = { offset, userId, loggedAt: this.clock.now(), value: value(offset) };
    this.last = offset;
    this.entries.push(entry);
    this.trim();
    return entry;
  }

  /**
   * Appends a change whose offset was given elsewhere (the shared change log of several nodes,
   * where one Redis counter numbers every node's changes). Offsets must rise; a gap (changes
   * this log never saw) drops what is held, so no resume from before it is answered partially.
   */
  appendAt(offset: number, userId: string, value: T): LoggedChange<T> {
    if (offset <= this.last) throw new Error(`offset ${offset} is not after ${this.last}`);
    if (offset !== this.last + 1) this.clear();
    const entry: LoggedChange<T> = { offset, userId, loggedAt: this.clock.now(), value };
    this.last = offset;
    this.entries.push(entry);
    this.trim();
    return entry;
  }

  /**
   * Starts over in `epoch` at `offset` (the shared log's newest position): nothing held before
   * is answered any more. A node does it when it starts following, and when the shared log was
   * lost (a new epoch).
   */
  restart(epoch: string, offset: number): void {
    this.currentEpoch = epoch;
    this.last = offset;
    this.clear();
  }

  private clear(): void {
    this.entries = [];
    this.start = 0;
  }

  private trim(): void {
    const oldestKept = this.clock.now() - this.minAgeMs;
    while (this.size > this.minCount) {
      const e = this.entries[this.start]!;
      if (this.size <= this.maxCount && e.loggedAt >= oldestKept) break;
      this.entries[this.start] = undefined as unknown as LoggedChange<T>;
      this.start += 1;
    }
    // Dropping from the front one by one would be quadratic; the array is cut in one go instead.
    if (this.start > 1024 && this.start * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.start);
      this.start = 0;
    }
  }

  /**
   * Everything after `since` about the users `wanted` picks, when the log still holds every
   * change after it; otherwise a miss. Never a partial answer.
   */
  since(since: string, wanted: (userId: string) => boolean): ResumeDecision<T> {
    const p = parsePosition(since);
    if (p === null) return { hit: false, reason: 'malformed' };
    if (p.epoch !== this.epoch) return { hit: false, reason: 'epoch' };
    if (p.offset > this.last) return { hit: false, reason: 'future' };
    // The log must hold the change right after `since` (or `since` is the newest position).
    if (p.offset < this.oldest - 1) return { hit: false, reason: 'expired' };
    const changes: LoggedChange<T>[] = [];
    const first = this.start + (p.offset + 1 - this.oldest);
    for (let i = first; i < this.entries.length; i++) {
      const e = this.entries[i]!;
      if (wanted(e.userId)) changes.push(e);
    }
    return { hit: true, changes };
  }
}
