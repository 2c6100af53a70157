/**
 * @module store/refresh-slots
 * Refreshed times packed by slot (migration 0010): the SQLite side of `RefreshSlots`. A slot's
 * row is one binary list of its users' refreshed times, so a run that persists 1,000,000 users'
 * times writes a few thousand rows instead of two million scattered row updates.
 *
 * The format of `data` (little-endian): a version byte (1); the slot's distinct (platform,
 * device) pairs, as a count (u16) and each platform (u8 length and UTF-8 bytes) and device (u16
 * length and bytes); then for each user: the id (u16 length and bytes), last activity (f64, NaN
 * for none), the number of observations (u16) and for each its pair's index (u16), observed_at and
 * expires_at (f64 each). The pairs are written once per slot (nearly every user has the same few).
 */

import type { RefreshedTimes, RefreshSlots } from '../core/ports';
import type { Platform } from '../core/presence';
import type { Db } from './db';

/** Fixed for good: the slot of a user must not change while its row may hold the user. */
export const SLOT_COUNT = 8192;
const VERSION = 1;

/** FNV-1a over the id's UTF-16 code units, to a slot. */
export function slotOf(userId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < userId.length; i++) {
    h ^= userId.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % SLOT_COUNT;
}

class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  /** The same bytes, for numbers: DataView stores compile to plain stores, no call per field. */
  view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  at = 0;

  room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.length);
  }

  /** A string with its UTF-8 length in front, as a u8 (`wide` false) or a u16. */
  str(s: string, wide: boolean): void {
    this.room(s.length * 3 + 2);
    const lenAt = this.at;
    const from = lenAt + (wide ? 2 : 1);
    const buf = this.buf;
    // ASCII (every user id the API accepts) byte by byte; anything else through the encoder.
    let n = 0;
    for (; n < s.length; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      buf[from + n] = c;
    }
    if (n < s.length) n = buf.write(s, from, 'utf8');
    if (n > (wide ? 0xffff : 0xff)) throw new RangeError(`refresh slot: string too long (${n} bytes)`);
    if (wide) this.view.setUint16(lenAt, n, true);
    else buf[lenAt] = n;
    this.at = from + n;
  }
}

/**
 * One slot's entries as its row's `data`. The bytes are a view of a buffer the next call reuses:
 * bind them (SQLite copies them) before encoding another slot.
 */
export function encodeSlot(entries: readonly RefreshedTimes[], w = new Writer()): Buffer {
  w.at = 0;
  // By platform, then device: the strings are mostly the same few objects, whose hashes V8 keeps.
  const pairs = new Map<string, Map<string, number>>();
  const list: { platform: string; device: string }[] = [];
  let lastPlatform = '';
  let lastDevice = '';
  let lastIndex = -1;
  const indexOf = (platform: string, device: string): number => {
    // Nearly every user of a slot reports from the same pair as the one before.
    if (platform === lastPlatform && device === lastDevice && lastIndex >= 0) return lastIndex;
    let devices = pairs.get(platform);
    if (devices === undefined) pairs.set(platform, (devices = new Map<string, number>()));
    let index = devices.get(device);
    if (index === undefined) {
      devices.set(device, (index = list.length));
      list.push({ platform, device });
    }
    lastPlatform = platform;
    lastDevice = device;
    lastIndex = index;
    return index;
  };
  for (const e of entries) for (const o of e.observations) indexOf(o.platform, o.device);
  if (list.length > 0xffff) throw new RangeError('refresh slot: too many distinct devices');
  w.room(3);
  w.buf[w.at++] = VERSION;
  w.buf.writeUInt16LE(list.length, w.at);
  w.at += 2;
  for (const p of list) {
    w.str(p.platform, false);
    w.str(p.device, true);
  }
  for (const e of entries) {
    w.str(e.userId, true);
    const obs = e.observations;
    w.room(10 + obs.length * 18);
    const view = w.view;
    let at = w.at;
    view.setFloat64(at, e.lastActiveAt ?? Number.NaN, true);
    view.setUint16(at + 8, obs.length, true);
    at += 10;
    for (let i = 0; i < obs.length; i++) {
      const o = obs[i]!;
      view.setUint16(at, indexOf(o.platform, o.device), true);
      view.setFloat64(at + 2, o.observedAt, true);
      view.setFloat64(at + 10, o.expiresAt, true);
      at += 18;
    }
    w.at = at;
  }
  return w.buf.subarray(0, w.at);
}

// Buffer's own decoder without toString's argument checks (a decode per user id adds up at
// 1,000,000 users); toString where it is missing.
const fastSlice = (Buffer.prototype as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
const utf8 = (data: Buffer, start: number, end: number): string =>
  fastSlice === undefined ? data.toString('utf8', start, end) : fastSlice.call(data, start, end);

/** A stored entry: the same object for every entry of a load, refilled, so copy what you keep. */
interface Scratch {
  userId: string;
  lastActiveAt: number | null;
  observations: { platform: Platform; device: string; observedAt: number; expiresAt: number }[];
}

/** Hands every entry of a row's `data` to `visit`. A version it does not know is skipped. */
export function decodeSlot(data: Buffer, visit: (entry: RefreshedTimes) => void): void {
  if (data.length < 3 || data[0] !== VERSION) return;
  let at = 1;
  const str = (wide: boolean): string => {
    const n = wide ? data[at]! | (data[at + 1]! << 8) : data[at]!;
    at += wide ? 2 : 1;
    const s = utf8(data, at, at + n);
    at += n;
    return s;
  };
  const pairCount = data.readUInt16LE(at);
  at += 2;
  const platforms: Platform[] = [];
  const devices: string[] = [];
  for (let i = 0; i < pairCount; i++) {
    platforms.push(str(false) as Platform);
    devices.push(str(true));
  }
  const entry: Scratch = { userId: '', lastActiveAt: null, observations: [] };
  const pool = entry.observations;
  while (at < data.length) {
    entry.userId = str(true);
    const last = data.readDoubleLE(at);
    entry.lastActiveAt = Number.isNaN(last) ? null : last;
    const count = data.readUInt16LE(at + 8);
    at += 10;
    for (let i = 0; i < count; i++) {
      const pair = data.readUInt16LE(at);
      const t = pool[i] ?? (pool[i] = { platform: 'device', device: '', observedAt: 0, expiresAt: 0 });
      t.platform = platforms[pair]!;
      t.device = devices[pair]!;
      t.observedAt = data.readDoubleLE(at + 2);
      t.expiresAt = data.readDoubleLE(at + 10);
      at += 18;
    }
    pool.length = count;
    visit(entry);
  }
}

export class SqliteRefreshSlots implements RefreshSlots {
  readonly count = SLOT_COUNT;
  // Prepared on first use: a store may be opened on a database being migrated.
  private writeTx: ((slots: ReadonlyMap<number, readonly RefreshedTimes[]>) => void) | null = null;
  private readonly writer = new Writer();

  constructor(private readonly db: Db) {}

  slotOf(userId: string): number {
    return slotOf(userId);
  }

  write(slots: ReadonlyMap<number, readonly RefreshedTimes[]>): void {
    if (this.writeTx === null) {
      const put = this.db.prepare('INSERT OR REPLACE INTO refresh_slots (slot, data) VALUES (?, ?)');
      const drop = this.db.prepare('DELETE FROM refresh_slots WHERE slot = ?');
      this.writeTx = this.db.transaction((batch: ReadonlyMap<number, readonly RefreshedTimes[]>) => {
        for (const [slot, entries] of batch) {
          if (entries.length === 0) drop.run(slot);
          else put.run(slot, encodeSlot(entries, this.writer));
        }
      });
    }
    this.writeTx(slots);
  }

  /**
   * Takes the user out of its slot's row (inside the transaction that deletes the user): nothing
   * of a deleted user is left behind, even if its slot is never written again.
   */
  removeUser(userId: string): void {
    const slot = slotOf(userId);
    const data = this.db.prepare('SELECT data FROM refresh_slots WHERE slot = ?').pluck().get(slot) as
      Buffer | undefined;
    if (data === undefined) return;
    const kept: RefreshedTimes[] = [];
    let found = false;
    decodeSlot(data, (e) => {
      if (e.userId === userId) found = true;
      else kept.push({ ...e, observations: e.observations.map((o) => ({ ...o })) });
    });
    if (found) this.write(new Map([[slot, kept]]));
  }

  load(visit: (entry: RefreshedTimes) => void, only?: ReadonlySet<number>): void {
    if (only !== undefined) {
      const row = this.db.prepare('SELECT data FROM refresh_slots WHERE slot = ?').pluck();
      for (const slot of [...only].sort((a, b) => a - b)) {
        const data = row.get(slot) as Buffer | undefined;
        if (data !== undefined) decodeSlot(data, visit);
      }
      return;
    }
    const rows = this.db.prepare('SELECT data FROM refresh_slots').pluck();
    for (const data of rows.iterate() as IterableIterator<Buffer>) decodeSlot(data, visit);
  }
}
