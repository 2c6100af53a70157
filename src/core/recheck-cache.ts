/**
 * @module core/recheck-cache
 * What a hot path checks on every request (an API key, a viewer token's epoch), kept in memory and
 * re-read from the store in the background, so that a request pays no store round trip and a
 * change written by another node still takes effect within `maxAgeMs` by the injected clock.
 *
 * An entry younger than `refreshAfterMs` answers from memory. Between that and `maxAgeMs` it still
 * answers from memory and starts one re-read (a busy key is therefore re-read before it expires
 * and never waits). From `maxAgeMs` on it is not trusted: the caller awaits the re-read. So a value
 * is never used more than `maxAgeMs` after the store was last seen to hold it. This node's own
 * writes (`set`, `delete`) take effect at once, and a re-read started before them cannot undo
 * them when it lands. A re-read that fails leaves the entry to age: a request after `maxAgeMs`
 * then gets the store's error, unless `keepWhile` says the error is the store being unreachable:
 * then the entry keeps answering, and each use past `maxAgeMs` tries the store again. A store that
 * answers nobody cannot have changed the value, so requests it does not need to serve (reads from
 * memory) go on while it is down; once it answers, `maxAgeMs` holds again. Pure: the loader
 * does the I/O.
 */

import type { Clock } from './clock';

export interface RecheckOptions<V> {
  readonly clock: Clock;
  /** Reads the value from the store (the truth every node shares). */
  readonly load: (key: string) => Promise<V>;
  /** Never trusted longer than this after it was read (default 1 s). */
  readonly maxAgeMs?: number;
  /** Re-read in the background once older than this (default half of maxAgeMs). */
  readonly refreshAfterMs?: number;
  /** Entries kept at most; past it the cache starts over (garbage keys must not grow it). */
  readonly limit?: number;
  /**
   * True for a failed re-read that means the store is unreachable (not that the value is gone):
   * the entry then keeps answering past `maxAgeMs` (see the module comment). Default: none.
   */
  readonly keepWhile?: (error: unknown) => boolean;
}

interface Entry<V> {
  readonly value: V;
  readonly readAt: number;
}

/** An answer from memory: `{ value }`, or undefined when the caller must await `get`. */
export type Hit<V> = { readonly value: V } | undefined;

export class RecheckCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  /** One re-read in flight per key; a local write drops it so that it cannot land. */
  private readonly loading = new Map<string, Promise<V>>();
  private readonly clock: Clock;
  private readonly load: (key: string) => Promise<V>;
  private readonly maxAgeMs: number;
  private readonly refreshAfterMs: number;
  private readonly limit: number;
  private readonly keepWhile: (error: unknown) => boolean;
  /** Re-reads started (for tests and the bench). */
  reads = 0;

  constructor(options: RecheckOptions<V>) {
    this.clock = options.clock;
    this.load = options.load;
    this.maxAgeMs = options.maxAgeMs ?? 1000;
    this.refreshAfterMs = options.refreshAfterMs ?? this.maxAgeMs / 2;
    this.limit = options.limit ?? 10_000;
    this.keepWhile = options.keepWhile ?? (() => false);
  }

  /** The value from memory while it may be trusted (see the module comment), else undefined. */
  peek(key: string): Hit<V> {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const age = this.clock.now() - entry.readAt;
    if (age >= this.maxAgeMs) return undefined;
    if (age >= this.refreshAfterMs) this.background(key);
    return entry;
  }

  /** The value, from memory when `peek` has it, else read from the store (one read per key at a time). */
  async get(key: string): Promise<V> {
    const hit = this.peek(key);
    if (hit !== undefined) return hit.value;
    let read: V;
    try {
      read = await this.reread(key);
    } catch (error) {
      const kept = this.entries.get(key);
      if (kept !== undefined && this.keepWhile(error)) return kept.value;
      throw error;
    }
    // A local write while the read was in flight wins over what the read found.
    const entry = this.entries.get(key);
    return entry === undefined ? read : entry.value;
  }

  /** This node wrote `value`: it holds from now on. */
  set(key: string, value: V): void {
    this.loading.delete(key);
    if (this.entries.size >= this.limit && !this.entries.has(key)) this.entries.clear();
    this.entries.set(key, { value, readAt: this.clock.now() });
  }

  /** Forget `key`: the next use reads the store. */
  delete(key: string): void {
    this.loading.delete(key);
    this.entries.delete(key);
  }

  private background(key: string): void {
    // The entry keeps answering until maxAgeMs; a failed re-read only lets it age.
    this.reread(key).catch(() => undefined);
  }

  private reread(key: string): Promise<V> {
    const inFlight = this.loading.get(key);
    if (inFlight !== undefined) return inFlight;
    const readAt = this.clock.now();
    this.reads += 1;
    const read = this.load(key).then(
      (value) => {
        if (this.loading.get(key) === read) {
          this.loading.delete(key);
          if (this.entries.size >= this.limit && !this.entries.has(key)) this.entries.clear();
          this.entries.set(key, { value, readAt });
        }
        return value;
      },
      (error: unknown) => {
        if (this.loading.get(key) === read) this.loading.delete(key);
        throw error;
      },
    );
    this.loading.set(key, read);
    return read;
  }
}
