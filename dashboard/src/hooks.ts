/**
 * @module dashboard/hooks
 * Small Preact hooks the views share: the time (ticking, for ages), a live source's updates, and a
 * REST read refreshed on an interval.
 */

import { useEffect, useState } from 'preact/hooks';

import type { LivePeople } from './live';

/** Now, updated every `everyMs`. */
export function useNow(everyMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), everyMs);
    return () => clearInterval(t);
  }, [everyMs]);
  return now;
}

/** Re-renders on every update of the live people. */
export function useLive(live: LivePeople): void {
  const [, setTick] = useState(0);
  useEffect(() => live.onUpdate(() => setTick((t) => t + 1)), [live]);
}

export interface Polled<T> {
  readonly data: T | null;
  readonly error: string | null;
  readonly reload: () => void;
}

/** `load()` now and every `everyMs` (and when `deps` change); the last answer or error. */
export function usePolled<T>(load: () => Promise<T>, everyMs: number, deps: readonly unknown[]): Polled<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let live = true;
    const run = (): void => {
      load().then(
        (d) => {
          if (!live) return;
          setData(d);
          setError(null);
        },
        (e: unknown) => {
          if (live) setError((e as Error).message);
        },
      );
    };
    run();
    const t = setInterval(run, everyMs);
    return () => {
      live = false;
      clearInterval(t);
    };
  }, [...deps, round, everyMs]);
  return { data, error, reload: () => setRound((r) => r + 1) };
}
