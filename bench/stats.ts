/**
 * @module bench/stats
 * What every bench section shares: figures with their reference, uniformly random ids with the
 * count of distinct ones a run touched, and rounds that alternate a candidate with its reference.
 *
 * A figure alone says little on a shared 2-core machine (one 3 s run swings by a third), so each
 * is printed as a ratio to a reference measured in the same run, in alternating rounds: the
 * median of the per-round ratios and their range.
 */

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';

export interface Ratio {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly rounds: number;
}

export interface Figure {
  readonly name: string;
  /** The measured value, with its unit. */
  readonly value: string;
  /** What it is compared with, and how it compares (candidate ÷ reference, higher is better). */
  readonly reference?: { readonly name: string; readonly value?: string; readonly ratio?: Ratio };
  /** How many distinct ids the figure's run touched, e.g. "99,512 of 100,000 ids". */
  readonly coverage?: string;
  readonly target?: string;
  /** Whether the target was met, when there is one. */
  readonly met?: boolean;
  /** A note, e.g. why a reference was skipped. */
  readonly note?: string;
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

export function ratioOf(values: readonly number[]): Ratio {
  return {
    median: median(values),
    min: Math.min(...values),
    max: Math.max(...values),
    rounds: values.length,
  };
}

/** "0.62× (0.55–0.70, 9 rounds)". */
export function showRatio(r: Ratio): string {
  const d = r.median >= 10 ? 1 : 2;
  return `${r.median.toFixed(d)}× (${r.min.toFixed(d)}–${r.max.toFixed(d)}, ${r.rounds} round${r.rounds === 1 ? '' : 's'})`;
}

/**
 * A 32-bit generator (mulberry32, all arithmetic in 32-bit integers through Math.imul, so no bit is
 * lost to doubles), seeded from crypto. Uniform enough for choosing ids, and cheap enough to run
 * inside a load generator; the seed differs every run.
 */
export class Rng {
  private state: number;

  constructor(seed = randomBytes(4).readUInt32LE(0)) {
    this.state = seed >>> 0;
  }

  /** A uniformly random 32-bit unsigned integer. */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, n) for n ≤ 2^32, without modulo bias (rejection of the short last range). */
  below(n: number): number {
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = this.next();
      if (x < limit) return x % n;
    }
  }
}

/** Counts the distinct indices among those it is shown. */
export class Coverage {
  private readonly seen: Uint8Array;
  distinct = 0;
  draws = 0;

  constructor(readonly of: number) {
    this.seen = new Uint8Array(of);
  }

  add(i: number): void {
    this.draws += 1;
    if (this.seen[i] === 0) {
      this.seen[i] = 1;
      this.distinct += 1;
    }
  }

  /** What a uniform draw of this many would touch on average, to compare with. */
  get expected(): number {
    return this.of * (1 - Math.pow(1 - 1 / this.of, this.draws));
  }

  toString(): string {
    return `${fmt(this.distinct)} of ${fmt(this.of)} ids (${fmt(this.draws)} draws; uniform: ${fmt(this.expected)})`;
  }
}

/**
 * Runs the candidate and each reference once per round, rotating who goes first, so a drift in
 * the machine's speed over the rounds falls on all alike. Returns each one's values, in order.
 */
export async function alternate<T = number>(
  rounds: number,
  runs: readonly (() => Promise<T> | T)[],
): Promise<T[][]> {
  const values = runs.map((): T[] => []);
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < runs.length; k++) {
      const i = (k + round) % runs.length;
      values[i]!.push(await runs[i]!());
    }
  }
  return values;
}

/** Per-round ratios a[i] / b[i]. */
export const ratios = (a: readonly number[], b: readonly number[]): number[] => a.map((x, i) => x / b[i]!);

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) {
    g();
    g();
  }
}

/**
 * CPU seconds (user, system) another process has used so far, from /proc/<pid>/stat (Linux):
 * utime and stime, in clock ticks of 10 ms (USER_HZ is 100 on Linux). The fields are counted
 * after the command's closing parenthesis, which the command itself may contain.
 */
export function processCpu(pid: number): { user: number; system: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}
