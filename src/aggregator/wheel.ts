/**
 * @module aggregator/wheel
 * Expiry timing: a wheel of one-second buckets. A user sits in the bucket of its next boundary
 * (an expiry, a decay step); a refresh that pushes the boundary later does not move it, the sweep
 * just finds nothing changed and files the user under the new boundary. The sweep works in chunks
 * with a time budget so it never holds the event loop for long.
 *
 * The sweep runs every SWEEP_MS and also looks into the bucket the clock is in, taking the users
 * whose boundary has passed and leaving the others filed: a boundary is then found within about
 * SWEEP_MS of passing, not only once its whole second is over (up to two seconds late before).
 */

import { performance } from 'node:perf_hooks';

import type { Clock } from '../core/clock';
import type { UserState } from './user-state';

export const BUCKET_MS = 1000;
/** How often the engine sweeps (engine.ts): how late at most a passed boundary is applied. */
export const SWEEP_MS = 200;

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
      // The bucket the clock is in is looked at too: some of its users are due already.
      const due = Math.ceil(now / BUCKET_MS);
      const started = performance.now();
      let more = false;
      for (const [bucket, list] of this.buckets) {
        if (bucket > due) continue;
        // Users of this bucket whose boundary is still ahead (only in the current bucket).
        const ahead: UserState[] = [];
        while (list.length > 0) {
          const u = list.pop()!;
          if (u.deleted) continue; // gone
          if (u.dueAt > now) {
            // Still filed here, or re-filed under another bucket (then it is listed there too).
            if (Math.ceil(u.dueAt / BUCKET_MS) === bucket) ahead.push(u);
            continue;
          }
          this.hooks.catchUp(u, now);
          looked += 1;
          if ((looked & 63) === 0 && performance.now() - started > this.budgetMs) {
            more = true;
            break;
          }
        }
        for (const u of ahead) list.push(u);
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
