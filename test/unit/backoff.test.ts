import { Backoff } from '../../src/core/backoff';

const waits = (b: Backoff, n: number): number[] => Array.from({ length: n }, () => b.next());

describe('Backoff', () => {
  it('waits first, then doubles up to the cap, and stays there', () => {
    expect(waits(new Backoff(50, 1_000), 7)).toEqual([50, 100, 200, 400, 800, 1_000, 1_000]);
    expect(waits(new Backoff(100, 2_000), 6)).toEqual([100, 200, 400, 800, 1_600, 2_000]);
  });

  it('current is 0 until a failure, then the wait last returned', () => {
    const b = new Backoff(10, 250);
    expect(b.current).toBe(0);
    b.next();
    b.next();
    expect(b.current).toBe(20);
  });

  it('after reset the next failure waits first again', () => {
    const b = new Backoff(20, 1_000);
    waits(b, 10);
    expect(b.current).toBe(1_000);
    b.reset();
    expect(b.current).toBe(0);
    expect(waits(b, 3)).toEqual([20, 40, 80]);
  });

  it('caps the first wait too when the cap is below it', () => {
    expect(waits(new Backoff(100, 30), 3)).toEqual([30, 30, 30]);
  });

  it('matches the formula it replaced, min(max(wait * 2, first), max), at every step', () => {
    for (const [first, max] of [
      [10, 250],
      [20, 1_000],
      [50, 5_000],
      [7, 7],
      [300, 100],
    ] as const) {
      const b = new Backoff(first, max);
      let old = 0;
      for (let i = 0; i < 20; i++) {
        old = Math.min(Math.max(old * 2, first), max);
        expect(b.next()).toBe(old);
      }
    }
  });

  it.each([0, -5, Number.NaN])('refuses a first wait of %p (it would never grow)', (first) => {
    expect(() => new Backoff(first, 1_000)).toThrow(RangeError);
  });
});
