/**
 * @module privacy/service
 * Every user's privacy settings, contacts and blocks: kept in memory for the read paths (a viewer's
 * batch read looks up both sides of every id, a stream projects every message), so a read never
 * waits for the store; written through the (asynchronous) store port first, memory once it answered,
 * and announced to listeners (open streams) after each change.
 *
 * Several nodes: memory is loaded once (`load`) and follows this node's writes only. A change made
 * on another node is not seen here yet: the next step of issue #16 wires it through the shared
 * change feed (the writing node announces the user id; every other node re-reads that user's rows,
 * replaces their record and calls `changed`, which re-projects open streams), which also bounds it
 * to the contract's 1 s. Until then another node's change shows here after a restart.
 */

import type { Clock } from '../core/clock';
import type { AsyncPrivacyStore } from '../core/ports';
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
    this.changed(userId);
    return settings;
  }

  async setContacts(userId: string, contactIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(contactIds)];
    await this.guarded(() => this.store.replaceContacts(userId, ids, this.clock.now()));
    this.record(userId).contacts = new Set(ids);
    this.changed(userId);
    return ids;
  }

  async addContact(userId: string, contactId: string): Promise<boolean> {
    const added = await this.guarded(() => this.store.addContact(userId, contactId, this.clock.now()));
    this.record(userId).contacts.add(contactId);
    if (added) this.changed(userId);
    return added;
  }

  async removeContact(userId: string, contactId: string): Promise<boolean> {
    const removed = await this.guarded(() => this.store.removeContact(userId, contactId));
    this.records.get(userId)?.contacts.delete(contactId);
    if (removed) this.changed(userId);
    return removed;
  }

  async setBlocked(userId: string, blockedIds: readonly string[]): Promise<string[]> {
    const ids = [...new Set(blockedIds)];
    await this.guarded(() => this.store.replaceBlocked(userId, ids, this.clock.now()));
    this.record(userId).blocked = new Set(ids);
    this.changed(userId);
    return ids;
  }

  /**
   * After a user's deletion committed (the store removed their rows and every row naming them in
   * the same transaction): memory follows.
   */
  forget(userId: string): void {
    this.records.delete(userId);
    for (const r of this.records.values()) {
      r.contacts.delete(userId);
      r.blocked.delete(userId);
    }
    this.changed(userId);
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
