/**
 * @module aggregator/snapshot-codec
 * The bytes of a snapshot part (see aggregator/snapshot.ts): pure, no I/O.
 *
 * A part is little-endian: a kind byte (1 users, 2 accounts), the part's string table (a count,
 * u32, then each string as a u32 byte length and its UTF-8), then its records. Every value that
 * repeats from user to user (platform, device, status, label, source, and the JSON text of raw
 * values, decay steps and custom statuses) is an index (u32) into the table, NONE (0xffffffff) for
 * null, so a part holds each distinct value once and a load shares it between users, as the row
 * load does. A user id is written in place (u16 length and UTF-8).
 *
 * A user: id; status, activity, custom status (JSON), source, version (u32); last activity and the
 * time of its aggregate (f64, NaN for null); an override flag (u8) and the override (status,
 * activity, custom status, then set and expiry times, f64); the observation count (u16) and each
 * observation (platform, device, status, activity, custom status, source, raw, label, decay, then
 * observed, changed and expiry times, f64). An account: user id, then platform, workspace and
 * external id (indexes).
 *
 * The values are what a row load would give: JSON columns go through JSON text both ways, raw is
 * `null` where it is missing, and observations are in (platform, device) order, as their primary
 * key returns them.
 */

import type { AccountRef } from '../core/ports';
import type {
  Activity,
  CustomStatus,
  DecayStep,
  Observation,
  Override,
  Platform,
  Source,
  Status,
} from '../core/presence';

/** Names this encoding: a snapshot in any other is not read. */
export const SNAPSHOT_FORMAT = 'presence-snapshot-1';

export const USERS_PART = 1;
export const ACCOUNTS_PART = 2;
const NONE = 0xffffffff;

/** What a user's record holds: its committed hot state. */
export interface SnapshotUser {
  readonly userId: string;
  readonly observations: readonly Observation[];
  readonly override: Override | null;
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source | null;
  readonly version: number;
  readonly lastActiveAt: number | null;
  /** When the stored aggregate was written (0 for none): where the load's first boundary starts. */
  readonly aggregateAt: number;
}

/** A decoded user, the fields a load sets. */
export interface DecodedUser {
  observations: Observation[];
  override: Override | null;
  status: Status;
  activity: Activity | null;
  customStatus: CustomStatus | null;
  source: Source | null;
  version: number;
  lastActiveAt: number | null;
  aggregateAt: number;
}

/** (platform, device) in the order SQLite's primary key gives: by UTF-8 bytes. */
function byKey(a: Observation, b: Observation): number {
  return compareUtf8(a.platform, b.platform) || compareUtf8(a.device, b.device);
}

/** Code point order (UTF-8 byte order), which differs from `<` only around surrogate pairs. */
function compareUtf8(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}

function sorted(obs: readonly Observation[]): readonly Observation[] {
  for (let i = 1; i < obs.length; i++) if (byKey(obs[i - 1]!, obs[i]!) > 0) return obs.slice().sort(byKey);
  return obs;
}

/** Encodes the records of one part; `finish` hands back its bytes. Reused from part to part. */
export class PartEncoder {
  private buf = Buffer.allocUnsafe(1 << 20);
  private view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.length);
  private at = 0;
  private strings = new Map<string, number>();
  private table: string[] = [];
  /** JSON texts by object: values shared between users (the load shares them) are encoded once. */
  private texts = new Map<unknown, string>();
  private kind = USERS_PART;
  records = 0;

  start(kind: number): void {
    this.kind = kind;
    this.at = 0;
    this.records = 0;
    this.strings.clear();
    this.table = [];
    this.texts.clear();
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.length);
  }

  private index(s: string | null): number {
    if (s === null) return NONE;
    let i = this.strings.get(s);
    if (i === undefined) {
      this.strings.set(s, (i = this.table.length));
      this.table.push(s);
    }
    return i;
  }

  private json(value: unknown): number {
    if (value === null || value === undefined) return NONE;
    let text = this.texts.get(value);
    if (text === undefined) {
      text = JSON.stringify(value);
      if (typeof value === 'object') this.texts.set(value, text);
    }
    return this.index(text);
  }

  /** Raw values are never null in a row: a missing one is the text `null`. */
  private raw(value: unknown): number {
    return value === null || value === undefined ? this.index('null') : this.json(value);
  }

  private u32(v: number): void {
    this.view.setUint32(this.at, v, true);
    this.at += 4;
  }

  private f64(v: number | null): void {
    this.view.setFloat64(this.at, v ?? Number.NaN, true);
    this.at += 8;
  }

  private id(s: string): void {
    const bytes = Buffer.byteLength(s, 'utf8');
    if (bytes > 0xffff) throw new RangeError(`snapshot: id too long (${bytes} bytes)`);
    this.room(2 + bytes);
    this.view.setUint16(this.at, bytes, true);
    this.buf.write(s, this.at + 2, 'utf8');
    this.at += 2 + bytes;
  }

  user(u: SnapshotUser): void {
    const obs = sorted(u.observations);
    if (obs.length > 0xffff) throw new RangeError('snapshot: too many observations');
    this.id(u.userId);
    this.room(16 + 4 + 16 + 1 + 28 + 2 + obs.length * 60);
    this.u32(this.index(u.status));
    this.u32(this.index(u.activity));
    this.u32(this.json(u.customStatus));
    this.u32(this.index(u.source));
    this.u32(u.version);
    this.f64(u.lastActiveAt);
    this.f64(u.aggregateAt);
    const ov = u.override;
    this.buf[this.at++] = ov === null ? 0 : 1;
    if (ov !== null) {
      this.u32(this.index(ov.status));
      this.u32(this.index(ov.activity));
      this.u32(this.json(ov.customStatus));
      this.f64(ov.setAt);
      this.f64(ov.expiresAt);
    }
    this.view.setUint16(this.at, obs.length, true);
    this.at += 2;
    for (const o of obs) {
      this.u32(this.index(o.platform));
      this.u32(this.index(o.device));
      this.u32(this.index(o.status));
      this.u32(this.index(o.activity));
      this.u32(this.json(o.customStatus));
      this.u32(this.index(o.source));
      this.u32(this.raw(o.raw));
      this.u32(this.index(o.label));
      this.u32(this.json(o.decay));
      this.f64(o.observedAt);
      this.f64(o.changedAt);
      this.f64(o.expiresAt);
    }
    this.records += 1;
  }

  account(userId: string, a: AccountRef): void {
    this.id(userId);
    this.room(12);
    this.u32(this.index(a.platform));
    this.u32(this.index(a.workspaceId));
    this.u32(this.index(a.externalId));
    this.records += 1;
  }

  /** Bytes written so far, to cut parts by size. */
  get size(): number {
    return this.at;
  }

  /** The part: kind, string table, records. A new buffer (the store keeps it). */
  finish(): Buffer {
    let tableBytes = 5;
    const encoded = this.table.map((s) => Buffer.from(s, 'utf8'));
    for (const b of encoded) tableBytes += 4 + b.length;
    const out = Buffer.allocUnsafe(tableBytes + this.at);
    out[0] = this.kind;
    out.writeUInt32LE(encoded.length, 1);
    let at = 5;
    for (const b of encoded) {
      out.writeUInt32LE(b.length, at);
      b.copy(out, at + 4);
      at += 4 + b.length;
    }
    this.buf.copy(out, at, 0, this.at);
    return out;
  }
}

// Buffer's own decoder without toString's argument checks (a decode per user id adds up at
// 1,000,000 users); toString where it is missing.
const fastSlice = (Buffer.prototype as { utf8Slice?: (start: number, end: number) => string }).utf8Slice;
const utf8 = (data: Buffer, start: number, end: number): string =>
  fastSlice === undefined ? data.toString('utf8', start, end) : fastSlice.call(data, start, end);

export class SnapshotFormatError extends Error {
  override name = 'SnapshotFormatError';
}

/** Reads one part. Throws `SnapshotFormatError` where the bytes do not hold together. */
export class PartDecoder {
  readonly kind: number;
  private readonly view: DataView;
  private at: number;
  private readonly table: string[] = [];
  private readonly parsed: unknown[] = [];

  constructor(private readonly data: Buffer) {
    if (data.length < 5) throw new SnapshotFormatError('part too short');
    this.view = new DataView(data.buffer, data.byteOffset, data.length);
    this.kind = data[0]!;
    if (this.kind !== USERS_PART && this.kind !== ACCOUNTS_PART)
      throw new SnapshotFormatError('unknown part');
    const count = this.view.getUint32(1, true);
    let at = 5;
    for (let i = 0; i < count; i++) {
      const n = this.view.getUint32(at, true);
      if (at + 4 + n > data.length) throw new SnapshotFormatError('string table overruns the part');
      this.table.push(utf8(data, at + 4, at + 4 + n));
      at += 4 + n;
    }
    this.at = at;
  }

  get done(): boolean {
    return this.at >= this.data.length;
  }

  private str(i: number): string {
    const s = this.table[i];
    if (s === undefined) throw new SnapshotFormatError('string index out of range');
    return s;
  }

  private optional(i: number): string | null {
    return i === NONE ? null : this.str(i);
  }

  /** A JSON value, parsed once per part and shared, as the row load shares equal values. */
  private json<T>(i: number): T | null {
    if (i === NONE) return null;
    let v = this.parsed[i];
    if (v === undefined) this.parsed[i] = v = JSON.parse(this.str(i)) as unknown;
    return v as T;
  }

  private u32(): number {
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  private f64(): number {
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  /** The next record's user id. */
  id(): string {
    const n = this.view.getUint16(this.at, true);
    const start = this.at + 2;
    this.at = start + n;
    if (this.at > this.data.length) throw new SnapshotFormatError('id overruns the part');
    return utf8(this.data, start, this.at);
  }

  /** The rest of a user record (after `id`), into `u`; `u` null skips it. */
  user(u: DecodedUser | null): void {
    const status = this.u32();
    const activity = this.u32();
    const customStatus = this.u32();
    const source = this.u32();
    const version = this.u32();
    const lastActiveAt = this.f64();
    const aggregateAt = this.f64();
    let override: Override | null = null;
    if (this.data[this.at++] === 1) {
      const ovStatus = this.u32();
      const ovActivity = this.u32();
      const ovCustom = this.u32();
      override = {
        status: this.str(ovStatus) as Status,
        activity: this.optional(ovActivity) as Activity | null,
        customStatus: this.json<CustomStatus>(ovCustom),
        setAt: this.f64(),
        expiresAt: this.f64(),
      };
    }
    const count = this.view.getUint16(this.at, true);
    this.at += 2;
    if (u === null) {
      this.at += count * 60;
      return;
    }
    const obs: Observation[] = new Array<Observation>(count);
    for (let i = 0; i < count; i++) {
      const platform = this.u32();
      const device = this.u32();
      const oStatus = this.u32();
      const oActivity = this.u32();
      const oCustom = this.u32();
      const oSource = this.u32();
      const raw = this.u32();
      const label = this.u32();
      const decay = this.u32();
      obs[i] = {
        platform: this.str(platform) as Platform,
        device: this.str(device),
        status: this.str(oStatus) as Status,
        activity: this.optional(oActivity) as Activity | null,
        customStatus: this.json<CustomStatus>(oCustom),
        source: this.str(oSource) as Source,
        raw: this.json<unknown>(raw),
        label: this.str(label),
        decay: this.json<readonly DecayStep[]>(decay),
        observedAt: this.f64(),
        changedAt: this.f64(),
        expiresAt: this.f64(),
      };
    }
    if (this.at > this.data.length) throw new SnapshotFormatError('user overruns the part');
    u.observations = obs;
    u.override = override;
    u.status = this.str(status) as Status;
    u.activity = this.optional(activity) as Activity | null;
    u.customStatus = this.json<CustomStatus>(customStatus);
    u.source = this.optional(source) as Source | null;
    u.version = version;
    u.lastActiveAt = Number.isNaN(lastActiveAt) ? null : lastActiveAt;
    u.aggregateAt = aggregateAt;
  }

  /** The rest of an account record (after `id`). */
  account(): AccountRef {
    const platform = this.u32();
    const workspaceId = this.u32();
    const externalId = this.u32();
    if (this.at > this.data.length) throw new SnapshotFormatError('account overruns the part');
    return {
      platform: this.str(platform) as Platform,
      workspaceId: this.str(workspaceId),
      externalId: this.str(externalId),
    };
  }
}
