/**
 * @module privacy/service
 * Every user's privacy settings, contacts and blocks: kept in memory for the read paths (a viewer's
 * batch read looks up both sides of every id, a stream projects every message), so a read never
 * waits for the store; written through the (asynchronous) store port first, memory once it answered,
 * and announced to listeners (open streams) after each change.
 *
 * Several nodes: memory is loaded once (`load`), follows this node's writes at once and other
 * nodes' through `follow`: PostgreSQL announces every privacy row written (migrations/pg/0009),
 * and src/cluster/row-follower.ts re-reads the owners' rows and hands them here, which replaces
 * those records and calls `changed` for each that differs (open streams re-project).
 */

import type { Clock } from '../core/clock';
import type { AsyncPrivacyStore, PrivacyRows } from '../core/ports';
import { classifyStoreError, isStoreFault, StoreUnavailableError } from '../store/faults';
import {
  accessOf,
  applyAccess,
  type Access,
  type PrivacyLookup,
  type PrivacyRecord,
  type PrivacySettings,
  type ProjectedPresence,
  type Viewer,
} from './project';
import type { PresenceView } from '../normalizer/view';

interface MutableRecord {
  settings: PrivacySettings | null;
  contacts: Set<string>;
  blocked: Set<string>;
}

/**
 * Told the id of a user whose settings, contacts or blocks changed (or who was deleted). That
 * changes what every viewer sees of this user, and, through the reciprocal rule, what this user
 * sees of others: a stream re-projects both.
 */
export type PrivacyListener = (userId: string) => void;

const EMPTY: ReadonlySet<string> = new Set();

export class PrivacyService implements PrivacyLookup {
  private readonly records = new Map<string, MutableRecord>();
  private readonly listeners = new Set<PrivacyListener>();
  private readonly defaultRecord: PrivacyRecord;
  /** Several nodes (`mark`): this node's own writes, numbered, by user (see `follow`). */
  private readonly touched = new Map<string, number>();
  private writes = 0;
  private tracking = false;

  constructor(
    private readonly store: AsyncPrivacyStore,
    readonly defaults: PrivacySettings,
    private readonly clock: Clock,
  ) {
    this.defaultRecord = { settings: defaults, contacts: EMPTY, blocked: EMPTY };
  }

  /** Every row into memory: once, before the first read (the composition root awaits it). */
  async load(): Promise<this> {
    const rows = await this.store.loadAll();
    for (const [id, s] of rows.settings) this.record(id).settings = s;
    for (const [owner, other] of rows.contacts) this.record(owner).contacts.add(other);
    for (const [owner, other] of rows.blocks) this.record(owner).blocked.add(other);
    return this;
  }

  private record(userId: string): MutableRecord {
    let r = this.records.get(userId);
    if (r === undefined) {
      r = { settings: null, contacts: new Set(), blocked: new Set() };
      this.records.set(userId, r);
    }
    return r;
  }

  of(userId: string): PrivacyRecord {
    const r = this.records.get(userId);
    if (r === undefined) return this.defaultRecord;
    return { settings: r.settings ?? this.defaults, contacts: r.contacts, blocked: r.blocked };
  }

  /** What `viewer` may see of `targetId`. */
  access(targetId: string, viewer: Viewer): Access {
    return accessOf(targetId, viewer, this);
  }

  /** The projection for one viewer: what a stream calls for each presence it would send. */
  visibleTo(viewer: Viewer): (presence: PresenceView) => ProjectedPresence | null {
    return (presence) => applyAccess(presence, accessOf(presence.user_id, viewer, this), this.clock.now());
  }

  /** Listens for changes of anyone's privacy; returns the function that stops listening. */
  onChange(listener: PrivacyListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async setSettings(userId: string, settings: PrivacySettings): Promise<PrivacySettings> {
    await this.guarded(() => this.store.putSettings(userId, settings, this.clock.now()));
    this.record(userId).settings = settings;
    this.wrote(userId);
    this.changed(userId);
    return settings;
  }

  async setContacts(userId: string, contactIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(contactIds)];
    await this.guarded(() => this.store.replaceContacts(userId, ids, this.clock.now()));
    this.record(userId).contacts = new Set(ids);
    this.wrote(userId);
    this.changed(userId);
    return ids;
  }

  async addContact(userId: string, contactId: string): Promise<boolean> {
    const added = await this.guarded(() => this.store.addContact(userId, contactId, this.clock.now()));
    this.record(userId).contacts.add(contactId);
    this.wrote(userId);
    if (added) this.changed(userId);
    return added;
  }

  async removeContact(userId: string, contactId: string): Promise<boolean> {
    const removed = await this.guarded(() => this.store.removeContact(userId, contactId));
    this.records.get(userId)?.contacts.delete(contactId);
    this.wrote(userId);
    if (removed) this.changed(userId);
    return removed;
  }

  async setBlocked(userId: string, blockedIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(blockedIds)];
    await this.guarded(() => this.store.replaceBlocked(userId, ids, this.clock.now()));
    this.record(userId).blocked = new Set(ids);
    this.wrote(userId);
    this.changed(userId);
    return ids;
  }

  /**
   * After a user's deletion committed (the store removed their rows and every row naming them in
   * the same transaction): memory follows.
   */
  forget(userId: string): void {
    this.wrote(userId);
    this.records.delete(userId);
    for (const r of this.records.values()) {
      r.contacts.delete(userId);
      r.blocked.delete(userId);
    }
    this.changed(userId);
  }

  /**
   * Several nodes: where this node's own writes stand. A re-read takes it before it reads, and
   * `follow` leaves alone the users this node wrote since (the read may predate that write, whose
   * own announcement brings a re-read after it). The first call starts the bookkeeping.
   */
  mark(): number {
    this.tracking = true;
    return this.writes;
  }

  /**
   * Takes in the rows owned by `ids` as the store holds them now (a full re-read, after a gap in
   * the announcements, hands them a page at a time, then the records no page held), read after
   * `mark`: each record that differs from memory is replaced (no rows: the defaults) and announced
   * to the listeners. Re-reads run one at a time. Returns how many records changed.
   */
  follow(ids: readonly string[], rows: PrivacyRows, mark: number): number {
    const read = new Map<string, MutableRecord>();
    const at = (id: string): MutableRecord => {
      let r = read.get(id);
      if (r === undefined) {
        r = { settings: null, contacts: new Set(), blocked: new Set() };
        read.set(id, r);
      }
      return r;
    };
    for (const [id, settings] of rows.settings) at(id).settings = settings;
    for (const [owner, other] of rows.contacts) at(owner).contacts.add(other);
    for (const [owner, other] of rows.blocks) at(owner).blocked.add(other);
    let changed = 0;
    for (const id of ids) {
      if ((this.touched.get(id) ?? 0) > mark) continue;
      const next = read.get(id);
      if (sameRecord(this.records.get(id), next)) continue;
      if (next === undefined) this.records.delete(id);
      else this.records.set(id, next);
      changed += 1;
      this.changed(id);
    }
    for (const [id, n] of this.touched) if (n <= mark) this.touched.delete(id);
    return changed;
  }

  /** The users with a record in memory, live (a full re-read walks it over several turns). */
  recordIds(): IterableIterator<string> {
    return this.records.keys();
  }

  private wrote(userId: string): void {
    if (this.tracking) this.touched.set(userId, ++this.writes);
  }

  private changed(userId: string): void {
    for (const listener of this.listeners) {
      try {
        listener(userId);
      } catch {
        // A listener's failure is its own (a stream closes itself); the others still hear.
      }
    }
  }

  private async guarded<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      throw new StoreUnavailableError(classifyStoreError(error, this.clock.now()));
    }
  }
}

const sameSettings = (a: PrivacySettings | null, b: PrivacySettings | null): boolean =>
  a === b ||
  (a !== null &&
    b !== null &&
    a.presence === b.presence &&
    a.lastSeen === b.lastSeen &&
    a.details === b.details &&
    a.reciprocal === b.reciprocal);

const sameSet = (a: ReadonlySet<string>, b: ReadonlySet<string>): boolean =>
  a.size === b.size && [...a].every((x) => b.has(x));

/** Whether two records say the same (absent: no settings, no contacts, no blocks). */
function sameRecord(a: MutableRecord | undefined, b: MutableRecord | undefined): boolean {
  const empty = { settings: null, contacts: EMPTY, blocked: EMPTY };
  const x = a ?? empty;
  const y = b ?? empty;
  return (
    sameSettings(x.settings, y.settings) && sameSet(x.contacts, y.contacts) && sameSet(x.blocked, y.blocked)
  );
}
