/**
 * @module aggregator/batch-memo
 * Recent batch bodies, remembered by their id list. A batch body is a pure function of the cached
 * per-user views it was assembled from, in order: while every id still maps to the very same view
 * buffer (or is still unknown), the remembered bytes are the answer. A caller that polls the same
 * team every few seconds then gets its body without a fresh 100 KB copy; any change to any member
 * replaces that member's buffer, so the next read assembles afresh. Bounded by bytes; the least
 * recently used entry leaves first.
 */

export interface BatchEntry {
  /** The view buffer of each requested id, in request order; null where the id was unknown. */
  readonly members: readonly (Buffer | null)[];
  readonly body: Buffer;
}

export class BatchMemo {
  // A Map keeps insertion order: re-inserting on use makes its first key the least recently used.
  private readonly entries = new Map<string, BatchEntry>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.entries.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get(key: string): BatchEntry | undefined {
    const entry = this.entries.get(key);
    if (entry !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  set(key: string, entry: BatchEntry): void {
    this.delete(key);
    // An entry that would take more than a quarter of the budget would only push others out.
    if (entry.body.length > this.maxBytes / 4) return;
    this.entries.set(key, entry);
    this.bytes += entry.body.length;
    for (const [oldest, e] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(oldest);
      this.bytes -= e.body.length;
    }
  }

  private delete(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    this.entries.delete(key);
    this.bytes -= old.body.length;
  }
}
