/**
 * @module store/snapshot
 * The SQLite side of `PresenceSnapshots` (migration 0011): the engine's snapshot parts as blobs of
 * one generation, its header written last, and the change log the triggers fill.
 *
 * The header (part 0) is a CRC-32 (u32, little-endian) of the JSON text that follows it:
 * `{seq, schema, format, createdAt, parts: [{bytes, crc}]}`. A snapshot counts only when its header
 * is whole, it was written under the database's current schema (the last migration applied) and in
 * the format the engine asks for, and each part's length and CRC-32 match when it is read.
 * Anything else is no snapshot: the rows are read, so correctness never depends on one.
 */

import { crc32 } from 'node:zlib';

import type {
  LoadedUser,
  PresenceSnapshots,
  SnapshotChanges,
  SnapshotHeader,
  SnapshotWriter,
} from '../core/ports';
import type { Db } from './db';

/** How much of the file a part's read may map (SQLite maps up to this, or the file's size). */
const MMAP_BYTES = 1 << 30;

interface StoredHeader {
  readonly seq: number;
  readonly schema: string;
  readonly format: string;
  readonly createdAt: number;
  readonly parts: readonly { readonly bytes: number; readonly crc: number }[];
}

/** A header the store read and checked, with what it needs to check the parts. */
interface CheckedHeader extends SnapshotHeader {
  readonly gen: number;
  readonly checks: StoredHeader['parts'];
}

function encodeHeader(h: StoredHeader): Buffer {
  const text = Buffer.from(JSON.stringify(h), 'utf8');
  const out = Buffer.allocUnsafe(4 + text.length);
  out.writeUInt32LE(crc32(text), 0);
  text.copy(out, 4);
  return out;
}

function decodeHeader(data: Buffer): StoredHeader | null {
  if (data.length < 4) return null;
  const text = data.subarray(4);
  if (crc32(text) !== data.readUInt32LE(0)) return null;
  try {
    const h = JSON.parse(text.toString('utf8')) as StoredHeader;
    if (!Number.isSafeInteger(h.seq) || !Array.isArray(h.parts)) return null;
    return h;
  } catch {
    return null;
  }
}

export class SqliteSnapshots implements PresenceSnapshots {
  constructor(
    private readonly db: Db,
    private readonly load: (ids: readonly string[]) => Iterable<LoadedUser>,
  ) {}

  /** The last migration applied: a snapshot written under another schema is not used. */
  private schema(): string {
    const v = this.db.prepare('SELECT max(version) FROM schema_migrations').pluck().get() as string | null;
    return v ?? '';
  }

  private seqNow(): number {
    const v = this.db
      .prepare("SELECT seq FROM sqlite_sequence WHERE name = 'presence_changes'")
      .pluck()
      .get() as number | undefined;
    return v ?? 0;
  }

  private current(): { gen: number; header: StoredHeader } | null {
    const row = this.db
      .prepare('SELECT gen, data FROM presence_snapshot WHERE part = 0 ORDER BY gen DESC LIMIT 1')
      .get() as { gen: number; data: Buffer } | undefined;
    if (row === undefined) return null;
    const header = decodeHeader(row.data);
    return header === null ? null : { gen: row.gen, header };
  }

  begin(format: string): SnapshotWriter {
    const db = this.db;
    const seq = this.seqNow();
    const schema = this.schema();
    const done = this.db.prepare('SELECT max(gen) FROM presence_snapshot WHERE part = 0').pluck().get() as
      number | null;
    const gen =
      (this.db.prepare('SELECT max(gen) FROM presence_snapshot').pluck().get() as number | null) ?? 0;
    // A partial generation left by a crash or an abandoned write goes; the current one stays.
    if (gen !== (done ?? 0)) db.prepare('DELETE FROM presence_snapshot WHERE gen > ?').run(done ?? 0);
    const next = (done ?? 0) + 1;
    const parts: { bytes: number; crc: number }[] = [];
    const put = db.prepare('INSERT INTO presence_snapshot (gen, part, data) VALUES (?, ?, ?)');
    let finished = false;
    return {
      seq,
      part(data: Uint8Array): void {
        if (finished) throw new Error('snapshot: part after finish');
        parts.push({ bytes: data.length, crc: crc32(data) });
        put.run(next, parts.length, data);
      },
      finish(createdAt: number): void {
        if (finished) throw new Error('snapshot: finished twice');
        finished = true;
        const header = encodeHeader({ seq, schema, format, createdAt, parts });
        db.transaction(() => {
          put.run(next, 0, header);
          db.prepare('DELETE FROM presence_snapshot WHERE gen < ?').run(next);
        })();
      },
    };
  }

  latest(format: string): CheckedHeader | null {
    const found = this.current();
    if (found === null) return null;
    const { gen, header } = found;
    if (header.format !== format || header.schema !== this.schema()) return null;
    // A sequence past the log's is a snapshot of another history (a file restored from a backup
    // older than the snapshot rows, say): not this database's.
    if (header.seq > this.seqNow()) return null;
    return {
      gen,
      seq: header.seq,
      parts: header.parts.length,
      createdAt: header.createdAt,
      checks: header.parts,
    };
  }

  readPart(header: SnapshotHeader, index: number): Buffer | null {
    const h = header as CheckedHeader;
    const check = h.checks[index];
    if (check === undefined) return null;
    // Read through a memory map, only for this read: a part is a ~0.5 MB blob over some 140
    // overflow pages, and a read(2) per page was most of the time (about 0.3 s of a 1M-user load).
    // Turned off again at once, so the connection's other reads and writes stay as configured.
    this.db.pragma(`mmap_size = ${MMAP_BYTES}`);
    let data: Buffer | undefined;
    try {
      data = this.db
        .prepare('SELECT data FROM presence_snapshot WHERE gen = ? AND part = ?')
        .pluck()
        .get(h.gen, index + 1) as Buffer | undefined;
    } finally {
      this.db.pragma('mmap_size = 0');
    }
    if (data === undefined || data.length !== check.bytes || crc32(data) !== check.crc) return null;
    return data;
  }

  changedSince(seq: number): SnapshotChanges {
    const users = this.db
      .prepare('SELECT DISTINCT user_id FROM presence_changes WHERE seq > ? AND user_id IS NOT NULL')
      .pluck()
      .all(seq) as string[];
    const slots = this.db
      .prepare('SELECT DISTINCT slot FROM presence_changes WHERE seq > ? AND slot IS NOT NULL')
      .pluck()
      .all(seq) as number[];
    return { users, slots };
  }

  loadUsers(ids: readonly string[]): Iterable<LoadedUser> {
    return this.load(ids);
  }

  trim(max: number): number {
    const found = this.current();
    if (found === null) return 0;
    return this.db
      .prepare(
        'DELETE FROM presence_changes WHERE seq IN (SELECT seq FROM presence_changes WHERE seq <= ? ORDER BY seq LIMIT ?)',
      )
      .run(found.header.seq, max).changes;
  }
}
