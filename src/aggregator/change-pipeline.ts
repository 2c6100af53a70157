/**
 * @module aggregator/change-pipeline
 * The engine's side of the change pipeline (core/changes.ts): the sinks in the order they were
 * added, each phase run over all of them. Adding or removing a sink replaces the array, so a sink
 * that removes itself (or another) while a phase runs does not disturb that phase.
 */

import type { ChangePipeline, ChangeSink, PresenceChange, StoreTx } from '../core/changes';
import type { Log } from '../core/log';

/**
 * Runs `stage` for each of `items` from `from` on, in order: synchronously while each returns
 * nothing, awaiting a returned promise before the next one (they share one transaction).
 */
export function runStages<S>(
  items: readonly S[],
  from: number,
  stage: (item: S) => void | Promise<void>,
): void | Promise<void> {
  for (let i = from; i < items.length; i++) {
    const pending = stage(items[i]!);
    // A sink typed as returning void may still hand back a value (an arrow's last expression).
    if (pending instanceof Promise) return pending.then(() => runStages(items, i + 1, stage));
  }
}

export class ChangeSinks implements ChangePipeline {
  private sinks: readonly ChangeSink[] = [];
  private stagers: readonly ChangeSink[] = [];
  private stateWanted = false;

  constructor(private readonly log: Log) {}

  add(sink: ChangeSink): () => void {
    this.set([...this.sinks, sink]);
    return () => this.set(this.sinks.filter((s) => s !== sink));
  }

  /** True while any sink is added: the engine then builds each change's presence object. */
  get listened(): boolean {
    return this.sinks.length > 0;
  }

  /** True while any sink wants each change's `reducedFrom`: the engine then takes it. */
  get wantsState(): boolean {
    return this.stateWanted;
  }

  /** True while any sink stages rows: the commit then runs `stage` inside its transaction. */
  get staging(): boolean {
    return this.stagers.length > 0;
  }

  /**
   * Phase 1, inside the commit's transaction, one sink after the other. A sink that throws (or
   * rejects) aborts the commit. Returns a promise only once a sink returned one, so sinks that
   * stage synchronously cost no promise.
   */
  stage(tx: StoreTx, changes: readonly PresenceChange[]): void | Promise<void> {
    return runStages(this.stagers, 0, (sink) => sink.stage!(tx, changes));
  }

  /** Why a sink would refuse any commit carrying changes now (`ChangeSink.refusal`), or null. */
  refusal(): Error | null {
    for (const sink of this.stagers) {
      const refusal = sink.refusal?.() ?? null;
      if (refusal !== null) return refusal;
    }
    return null;
  }

  /** Phase 2, once the commit is durable. A sink that throws is logged; the others still run. */
  committed(changes: readonly PresenceChange[]): void {
    for (const sink of this.sinks) {
      if (sink.committed === undefined) continue;
      try {
        sink.committed(changes);
      } catch (error) {
        this.log.error({ err: error }, 'a presence change sink failed');
      }
    }
  }

  private set(sinks: readonly ChangeSink[]): void {
    this.sinks = sinks;
    this.stagers = sinks.filter((s) => s.stage !== undefined);
    this.stateWanted = sinks.some((s) => s.wantsState === true);
  }
}
