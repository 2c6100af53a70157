/**
 * @module stream/timers
 * The timers the stream arms (coalescing windows, keepalive), injectable so tests drive them
 * with a fake clock instead of waiting on real time.
 */

export interface Timer {
  cancel(): void;
}

export interface Timers {
  after(ms: number, run: () => void): Timer;
  every(ms: number, run: () => void): Timer;
}

export const systemTimers: Timers = {
  after(ms, run) {
    const t = setTimeout(run, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, run) {
    const t = setInterval(run, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
};
