/**
 * @module aggregator/read-cache
 * Reads, and the cache that makes them cheap: each user's presence object kept as the JSON bytes
 * of its batch member, valid until time alone changes it (an expiry, a decay step) or something
 * about the user changes; a bounded ring of those users (oldest filled is dropped first); and
 * the memo of recent batch bodies (batch-memo.ts). Every read first applies the boundaries that
 * have passed, so an answer never lags the sweep.
 *
 * While a failed commit is being retried, reads show each waiting user's last committed state
 * (its undo record), built afresh and never cached.
 */

import type { PresenceState } from '../core/changes';
import type { Clock } from '../core/clock';
import type { Ladder, Source } from '../core/presence';
import { nextCheckAt } from '../normalizer/reduce';
import { toPresence, type PresenceView, type UserSnapshot } from '../normalizer/view';
import { BatchMemo, type BatchEntry } from './batch-memo';
import type { GroupCommit } from './group-commit';
import type { Ingest } from './ingest';
import type { UserState, UserTable } from './user-state';

const OPEN = Buffer.from('{"presence":{');
const COMMA = Buffer.from(',');

export interface ReadCacheParts {
  readonly table: UserTable;
  readonly clock: Clock;
  readonly ladder: Ladder;
  readonly commit: GroupCommit;
  /** Applies every boundary of the user that has passed (`catchUp`) before each read. */
  readonly ingest: Ingest;
  /** How many users' presence JSON is kept ready for reads. */
  readonly viewCacheSize: number;
  /** Bytes of recent batch bodies kept for callers that repeat the same id list; 0 keeps none. */
  readonly batchMemoBytes: number;
}

export class ReadCache {
  private readonly table: UserTable;
  private readonly users: ReadonlyMap<string, UserState>;
  private readonly clock: Clock;
  private readonly ladder: Ladder;
  private readonly commit: GroupCommit;
  private readonly ingest: Ingest;
  /** A ring of the users whose JSON is cached, to bound the cache (FIFO eviction). */
  private readonly viewRing: (UserState | undefined)[];
  private viewRingNext = 0;
  private readonly batchMemo: BatchMemo;
  private readMarks = 0;

  constructor(parts: ReadCacheParts) {
    this.table = parts.table;
    this.users = parts.table.byId;
    this.clock = parts.clock;
    this.ladder = parts.ladder;
    this.commit = parts.commit;
    this.ingest = parts.ingest;
    this.viewRing = new Array<UserState | undefined>(Math.max(1, parts.viewCacheSize));
    this.batchMemo = new BatchMemo(parts.batchMemoBytes);
  }

  get(userId: string): PresenceView | undefined {
    const u = this.users.get(userId);
    if (u === undefined) return undefined;
    const now = this.clock.now();
    this.ingest.catchUp(u, now);
    const shown = this.shown(u);
    return shown === null ? undefined : this.view(shown, now);
  }

  /** The presence object of `s` as of `now`. */
  private view(s: UserSnapshot, now: number): PresenceView {
    return toPresence(s, now, this.ladder, undefined, this.ingest.shown(s, now));
  }

  /**
   * What reads show of a user: its state, or while its queued changes wait for a commit that
   * failed and is being retried, its last committed state (null: not created yet).
   */
  private shown(u: UserState): UserSnapshot | null {
    if (u.undo === null || !this.commit.failing) return u;
    return u.undo.created ? null : u.undo;
  }

  getMany(userIds: readonly string[]): { presence: Record<string, PresenceView>; unknown: string[] } {
    const now = this.clock.now();
    const presence: Record<string, PresenceView> = {};
    const unknown: string[] = [];
    for (const id of userIds) {
      const u = this.users.get(id);
      if (u !== undefined) this.ingest.catchUp(u, now);
      const shown = u === undefined ? null : this.shown(u);
      if (shown === null) {
        unknown.push(id);
        continue;
      }
      presence[id] = this.view(shown, now);
    }
    return { presence, unknown };
  }

  /** One user's presence object as JSON, from the cache when nothing has changed since. */
  getJson(userId: string): string | undefined {
    const u = this.users.get(userId);
    if (u === undefined) return undefined;
    const member = this.memberJson(u, this.clock.now());
    return member?.toString('utf8', Buffer.byteLength(JSON.stringify(userId)) + 1);
  }

  /**
   * `getMany` as the JSON bytes the API sends, `{"presence":{…},"unknown":[…]}`, assembled from
   * cached per-user JSON. The cache holds UTF-8 bytes rather than strings: a batch read is then
   * one copy into one buffer that the socket takes as it is, where joined strings would be
   * flattened into a large heap string and encoded again for every response.
   *
   * `ids` is an array, or a list as the API received it, `a,b,c`. A list is also the key of the
   * batch memo (see batch-memo.ts): a remembered answer needs neither a split nor a user.
   */
  getManyJson(ids: readonly string[] | string): Buffer {
    const now = this.clock.now();
    const memo = typeof ids === 'string' ? this.batchMemo.get(ids) : undefined;
    if (
      memo !== undefined &&
      !memo.validity.stale &&
      now < memo.until &&
      (memo.createdUsers < 0 || memo.createdUsers === this.table.created)
    )
      return memo.body;
    const userIds = typeof ids === 'string' ? ids.split(',') : ids;
    const parts: Buffer[] = [OPEN];
    let length = OPEN.length;
    const unknown = new Set<string>();
    const users: UserState[] = [];
    let until = Number.POSITIVE_INFINITY;
    const failing = this.commit.failing;
    // The lookups first, in a loop of their own. With users spread over a large heap each lookup
    // is a few cache misses; independent of each other, they overlap there, where between the
    // rest of a member's work each waited for the one before (10–25 % of a random 100-id batch).
    const n = userIds.length;
    const found = new Array<UserState | undefined>(n);
    for (let k = 0; k < n; k++) found[k] = this.users.get(userIds[k]!);
    // Each id once, so the object has no duplicate keys: known users carry the mark of this read.
    const mark = ++this.readMarks;
    for (let k = 0; k < n; k++) {
      const id = userIds[k]!;
      const u = found[k];
      if (u !== undefined && u.readMark === mark) continue;
      const member = u === undefined ? null : this.memberJson(u, now);
      if (u === undefined || member === null) {
        unknown.add(id);
        continue;
      }
      u.readMark = mark;
      if (parts.length > 1) {
        parts.push(COMMA);
        length += 1;
      }
      parts.push(member);
      length += member.length;
      users.push(u);
      // A body showing a user's last committed state is not kept: it changes with the commit.
      until = u.undo !== null && failing ? now : Math.min(until, u.jsonUntil, u.dueAt);
    }
    const tail = Buffer.from(`},"unknown":${JSON.stringify([...unknown])}}`);
    parts.push(tail);
    const body = Buffer.concat(parts, length + tail.length);
    // A stale entry shows the list is asked for again; any other list must first be asked twice.
    if (typeof ids === 'string' && (memo !== undefined || this.batchMemo.admit(ids))) {
      const entry: BatchEntry = {
        body,
        until,
        createdUsers: unknown.size > 0 ? this.table.created : -1,
        validity: { stale: false },
      };
      if (this.batchMemo.set(ids, entry)) for (const u of users) u.watch(entry.validity);
    }
    return body;
  }

  /** The user's `"<id>":<presence>` member, or null while its creation waits for a commit. */
  private memberJson(u: UserState, now: number): Buffer | null {
    this.ingest.catchUp(u, now);
    if (u.undo !== null && this.commit.failing) {
      // Built afresh and not cached: the cache follows the user's current state.
      const shown = this.shown(u);
      return shown === null
        ? null
        : Buffer.from(`${JSON.stringify(u.userId)}:${JSON.stringify(this.view(shown, now))}`);
    }
    if (u.json !== null && now < u.jsonUntil) return u.json;
    const fresh = u.json === null;
    u.json = Buffer.from(`${JSON.stringify(u.userId)}:${JSON.stringify(this.view(u, now))}`);
    // Valid until the next moment time alone changes the answer (an expiry, a decay step).
    u.jsonUntil = nextCheckAt(u.observations, u.override, now);
    if (fresh) {
      const evicted = this.viewRing[this.viewRingNext];
      if (evicted !== undefined && evicted !== u) evicted.json = null;
      this.viewRing[this.viewRingNext] = u;
      this.viewRingNext = (this.viewRingNext + 1) % this.viewRing.length;
    }
    return u.json;
  }

  /** The aggregate as the engine last decided it, without building the whole view. */
  state(userId: string): (PresenceState & { version: number; source: Source | null }) | undefined {
    const u = this.users.get(userId);
    if (u === undefined) return undefined;
    return {
      status: u.status,
      activity: u.activity,
      customStatus: u.customStatus,
      source: u.source,
      version: u.version,
    };
  }
}
