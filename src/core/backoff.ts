/**
 * @module core/backoff
 * The one doubling wait between attempts of something that failed: `first`, then twice the last,
 * never more than `max`, and back to `first` after `reset` (the caller's success). Pure: the caller
 * owns its timer, so a timer, a loop's pause and a flush delay all count the same way.
 */

export class Backoff {
  private wait = 0;

  /** `first` must be positive (a wait of 0 would never grow); `max` caps every wait, the first too. */
  constructor(
    readonly first: number,
    readonly max: number,
  ) {
    if (!(first > 0)) throw new RangeError(`a back-off starts at a positive wait, not ${first}`);
  }

  /** The wait `next` last returned; 0 before the first and after `reset` (nothing failing). */
  get current(): number {
    return this.wait;
  }

  /** The wait before the next attempt: `first`, then doubling, capped at `max`. */
  next(): number {
    this.wait = Math.min(this.wait === 0 ? this.first : this.wait * 2, this.max);
    return this.wait;
  }

  /** The attempt succeeded: the next failure waits `first` again. */
  reset(): void {
    this.wait = 0;
  }
}
