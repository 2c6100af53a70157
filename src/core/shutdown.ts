/**
 * @module core/shutdown
 * Runs the steps of a shutdown in order, each bounded by a timeout and all of them by one
 * deadline, so that a step that never finishes (a stuck store, an HTTP client that keeps its
 * request open, a platform that does not answer) cannot keep the process alive. A step that
 * times out or fails is logged by name and the next one runs.
 */

import type { Log } from './log';

export interface ShutdownStep {
  /** Named in the log and the report: "http", "connectors", "store", … */
  readonly name: string;
  run(): Promise<unknown> | void;
  /** Run even when the deadline has passed (closing a file: quick, and worth doing). */
  readonly always?: boolean;
}

export interface ShutdownReport {
  readonly completed: readonly string[];
  /** Steps given up on: they passed their own timeout, or the deadline came first. */
  readonly timedOut: readonly string[];
  readonly failed: readonly { readonly name: string; readonly error: string }[];
  /** Steps not started because the deadline had passed. */
  readonly skipped: readonly string[];
}

export interface ShutdownOptions {
  /** The most one step may take. */
  readonly stepTimeoutMs: number;
  /** The most all of them may take together. */
  readonly totalTimeoutMs: number;
  readonly log: Log;
}

/** Whether every step finished in time and without error. */
export function cleanShutdown(report: ShutdownReport): boolean {
  return report.timedOut.length === 0 && report.failed.length === 0 && report.skipped.length === 0;
}

export async function runShutdown(
  steps: readonly ShutdownStep[],
  options: ShutdownOptions,
): Promise<ShutdownReport> {
  const completed: string[] = [];
  const timedOut: string[] = [];
  const failed: { name: string; error: string }[] = [];
  const skipped: string[] = [];
  let late = false;
  let wakeOnDeadline: (() => void) | null = null;
  const deadline = setTimeout(() => {
    late = true;
    wakeOnDeadline?.();
  }, options.totalTimeoutMs);
  try {
    for (const step of steps) {
      if (late && step.always !== true) {
        skipped.push(step.name);
        continue;
      }
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        Promise.resolve()
          .then(() => step.run())
          .then(
            () => 'done' as const,
            (error: unknown) => ({ error }),
          ),
        new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), options.stepTimeoutMs);
          // The deadline cuts the step short too (an `always` step past it runs unbounded:
          // it is synchronous or nearly).
          if (!late) wakeOnDeadline = () => resolve('timeout');
        }),
      ]);
      clearTimeout(timer);
      wakeOnDeadline = null;
      if (outcome === 'done') completed.push(step.name);
      else if (outcome === 'timeout') {
        timedOut.push(step.name);
        options.log.warn(
          { step: step.name, timeoutMs: late ? options.totalTimeoutMs : options.stepTimeoutMs },
          `shutdown: ${step.name} did not finish in time; going on without it`,
        );
      } else {
        const error = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
        failed.push({ name: step.name, error });
        options.log.error({ step: step.name, error }, `shutdown: ${step.name} failed; going on`);
      }
    }
  } finally {
    clearTimeout(deadline);
  }
  if (skipped.length > 0) options.log.warn({ skipped }, 'shutdown: deadline passed; steps left undone');
  return { completed, timedOut, failed, skipped };
}
