/**
 * @module core/clock
 * The one place that reads the wall clock. Everything time-related takes a `Clock`, so tests drive
 * time with `FakeClock` and the demo can run faster than real time with `ScaledClock`.
 */

export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class FakeClock implements Clock {
  constructor(private current = Date.UTC(2026, 10, 23, 14, 0, 0)) {}

  now(): number {
    return this.current;
  }

  advance(ms: number): void {
    if (ms < 0) throw new Error('a clock does not go back');
    this.current += ms;
  }

  set(ms: number): void {
    this.current = ms;
  }
}

/** Real time sped up by `speed` from the moment it is made: the demo's `--speed`. */
export class ScaledClock implements Clock {
  private readonly realStart: number;
  private readonly start: number;

  constructor(
    private readonly speed: number,
    base: Clock = systemClock,
    private readonly real: Clock = base,
  ) {
    this.realStart = real.now();
    this.start = base.now();
  }

  now(): number {
    return Math.floor(this.start + (this.real.now() - this.realStart) * this.speed);
  }
}
