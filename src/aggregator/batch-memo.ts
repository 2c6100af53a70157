/**
 * @module aggregator/batch-memo
 * Recent batch bodies, remembered by their id list. A batch body is a function of its members'
 * views, so it stays right until one of them changes, time alone changes one (an expiry, a decay
 * step), or an unknown id becomes a user. The engine marks an entry stale on the first of these;
 * a caller polling the same team every few seconds then gets its body without touching its 100
 * users or copying 100 KB again, whatever the rest of the users do. A list is remembered from its
 * second request on, so lists asked for once cost nothing. Bounded by bytes, with second-chance
 * eviction: the oldest entry leaves unless it was used since it was last passed over, which costs
 * a hit one flag instead of a move to the back of the map.
 */

/**
 * Whether a remembered body still holds. Its members keep this small object, not the entry, so a
 * body the memo dropped is freed at once even while members still list it.
 */
export interface Validity {
  /** Set when a member's view changed or the entry left the memo. */
  stale: boolean;
}

/**
 * A member's list of the bodies it is part of, with `validity` added. Tokens of bodies the memo
 * dropped linger until the member changes; they are pruned whenever the list reaches a power of
 * two (8, 16, …), so it stays within about twice the live entries at a constant cost per add.
 */
export function watchList(list: Validity[] | null, validity: Validity): Validity[] {
  if (list === null) return [validity];
  const n = list.length;
  const kept = n >= 8 && (n & (n - 1)) === 0 ? list.filter((v) => !v.stale) : list;
  kept.push(validity);
  return kept;
}

export interface BatchEntry {
  readonly body: Buffer;
  /** The first moment time alone could change a member's view. */
  readonly until: number;
  /** The engine's count of created users when built, when some ids were unknown; else -1. */
  readonly createdUsers: number;
  readonly validity: Validity;
}

interface Slot {
  readonly entry: BatchEntry;
  used: boolean;
}

export class BatchMemo {
  // A Map keeps insertion order: its first key is the one passed over longest ago.
  private readonly slots = new Map<string, Slot>();
  private bytes = 0;
  /** Lists asked for once lately, by the characters they hold: a sixteenth of the budget. */
  private readonly seen = new Map<string, true>();
  private seenChars = 0;

  constructor(private readonly maxBytes: number) {}

  get size(): number {
    return this.slots.size;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get(key: string): BatchEntry | undefined {
    const slot = this.slots.get(key);
    if (slot === undefined) return undefined;
    slot.used = true;
    return slot.entry;
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
    this.slots.set(key, { entry, used: true });
    this.bytes += entry.body.length;
    while (this.bytes > this.maxBytes) {
      const [oldest, slot] = this.slots.entries().next().value!;
      if (slot.used) {
        slot.used = false;
        this.slots.delete(oldest);
        this.slots.set(oldest, slot);
      } else this.delete(oldest);
    }
    return true;
  }

  private delete(key: string): void {
    const old = this.slots.get(key);
    if (old === undefined) return;
    old.entry.validity.stale = true;
    this.slots.delete(key);
    this.bytes -= old.entry.body.length;
  }
}
