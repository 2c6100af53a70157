/**
 * @module aggregator/wheel
 * Expiry timing: a wheel of one-second buckets. A user sits in the bucket of its next boundary
 * (an expiry, a decay step); a refresh that pushes the boundary later does not move it, the sweep
 * just finds nothing changed and files the user under the new boundary. The sweep works in chunks
 * with a time budget so it never holds the event loop for long.
 */

import { performance } from 'node:perf_hooks';

import type { Clock } from '../core/clock';
import type { UserState } from './user-state';

export const BUCKET_MS = 1000;

export interface SweepHooks {
  /** Applies every boundary of the user that has passed (and files it under its next one). */
  catchUp(u: UserState, now: number): void;
  /** After each chunk: one short transaction for what it changed. */
  endOfChunk(): void;
  /** True once the engine stops: the sweep ends after the chunk at hand. */
  stopped(): boolean;
}

/** Counters for /metrics, shared with the rest of the engine. */
export interface EngineStats {
  sweeps: number;
  changesCommitted: number;
}

export class TimingWheel {
  private readonly buckets = new Map<number, UserState[]>();
  private sweeping: Promise<number> | null = null;

  constructor(
    private readonly clock: Clock,
    /** How long one sweep chunk may hold the event loop. */
    private readonly budgetMs: number,
    private readonly hooks: SweepHooks,
    private readonly stats: EngineStats,
  ) {}

  /** Files the user under `at`, unless it is filed under an earlier (or the same) moment. */
  schedule(u: UserState, at: number): void {
    if (!Number.isFinite(at) || at >= u.dueAt) return;
    u.dueAt = at;
    const bucket = Math.ceil(at / BUCKET_MS);
    const list = this.buckets.get(bucket);
    if (list === undefined) this.buckets.set(bucket, [u]);
    else list.push(u);
  }

  /** Files the user under `at` afresh, whatever it was filed under (after a rollback, a load). */
  reschedule(u: UserState, at: number): void {
    u.dueAt = Number.POSITIVE_INFINITY;
    this.schedule(u, at);
  }

  /** The sweep under way, if any. */
  get running(): Promise<number> | null {
    return this.sweeping;
  }

  /**
   * Looks at every user whose boundary has passed. Resolves to the number of users looked at.
   * Calls made while a sweep runs join it.
   */
  sweep(): Promise<number> {
    this.sweeping ??= this.run().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async run(): Promise<number> {
    let looked = 0;
    for (;;) {
      const now = this.clock.now();
      const due = Math.floor(now / BUCKET_MS);
      const started = performance.now();
      let more = false;
      for (const [bucket, list] of this.buckets) {
        if (bucket > due) continue;
        while (list.length > 0) {
          const u = list.pop()!;
          if (u.deleted || u.dueAt > now) continue; // re-filed later, or gone
          this.hooks.catchUp(u, now);
          looked += 1;
          if ((looked & 63) === 0 && performance.now() - started > this.budgetMs) {
            more = true;
            break;
          }
        }
        if (list.length === 0) this.buckets.delete(bucket);
        if (more) break;
      }
      this.hooks.endOfChunk();
      if (!more || this.hooks.stopped()) {
        this.stats.sweeps += 1;
        return looked;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }
}
