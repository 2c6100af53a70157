/**
 * @module aggregator/batch-memo
 * Recent batch bodies, remembered by their id list. A batch body is a function of its members'
 * views, so it stays right until one of them changes, time alone changes one (an expiry, a decay
 * step), or an unknown id becomes a user. The engine marks an entry stale on the first of these;
 * a caller polling the same team every few seconds then gets its body without touching its 100
 * users or copying 100 KB again, whatever the rest of the users do. A list is remembered from its
 * second request on, so lists asked for once cost nothing. Bounded by bytes; the least recently
 * used entry leaves first.
 */

/**
 * Whether a remembered body still holds. Its members keep this small object, not the entry, so a
 * body the memo dropped is freed at once even while members still list it.
 */
export interface Validity {
  /** Set when a member's view changed or the entry left the memo. */
  stale: boolean;
}

export interface BatchEntry {
  readonly body: Buffer;
  /** The first moment time alone could change a member's view. */
  readonly until: number;
  /** The engine's count of created users when built, when some ids were unknown; else -1. */
  readonly createdUsers: number;
  readonly validity: Validity;
}

export class BatchMemo {
  // A Map keeps insertion order: re-inserting on use makes its first key the least recently used.
  private readonly entries = new Map<string, BatchEntry>();
  private bytes = 0;
  /** Lists asked for once lately, by the characters they hold: a sixteenth of the budget. */
  private readonly seen = new Map<string, true>();
  private seenChars = 0;

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

  /** Whether `key` was asked for lately, so that its answer is worth keeping; notes it if not. */
  admit(key: string): boolean {
    if (this.seen.delete(key)) {
      this.seenChars -= key.length;
      return true;
    }
    if (key.length > this.maxBytes / 16) return false;
    this.seen.set(key, true);
    this.seenChars += key.length;
    for (const oldest of this.seen.keys()) {
      if (this.seenChars <= this.maxBytes / 16) break;
      this.seen.delete(oldest);
      this.seenChars -= oldest.length;
    }
    return false;
  }

  /** Whether the entry was kept: one larger than a quarter of the budget would only push others out. */
  set(key: string, entry: BatchEntry): boolean {
    this.delete(key);
    if (entry.body.length > this.maxBytes / 4) return false;
    this.entries.set(key, entry);
    this.bytes += entry.body.length;
    for (const oldest of this.entries.keys()) {
      if (this.bytes <= this.maxBytes) break;
      this.delete(oldest);
    }
    return true;
  }

  private delete(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    old.validity.stale = true;
    this.entries.delete(key);
    this.bytes -= old.body.length;
  }
}
