/**
 * @module privacy/service
 * Every user's privacy settings, contacts and blocks: kept in memory for the read paths (a viewer's
 * batch read looks up both sides of every id), written through the store port first, and announced
 * to listeners (open streams) after each change.
 */

import type { Clock } from '../core/clock';
import type { PrivacyStore } from '../core/ports';
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
    private readonly store: PrivacyStore,
    readonly defaults: PrivacySettings,
    private readonly clock: Clock,
  ) {
    this.defaultRecord = { settings: defaults, contacts: EMPTY, blocked: EMPTY };
    const rows = store.loadAll();
    for (const [id, s] of rows.settings) this.record(id).settings = s;
    for (const [owner, other] of rows.contacts) this.record(owner).contacts.add(other);
    for (const [owner, other] of rows.blocks) this.record(owner).blocked.add(other);
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

  setSettings(userId: string, settings: PrivacySettings): PrivacySettings {
    this.guarded(() => this.store.putSettings(userId, settings, this.clock.now()));
    this.record(userId).settings = settings;
    this.changed(userId);
    return settings;
  }

  setContacts(userId: string, contactIds: readonly string[]): string[] {
    const ids = [...new Set(contactIds)];
    this.guarded(() => this.store.replaceContacts(userId, ids, this.clock.now()));
    this.record(userId).contacts = new Set(ids);
    this.changed(userId);
    return ids;
  }

  addContact(userId: string, contactId: string): boolean {
    const added = this.guarded(() => this.store.addContact(userId, contactId, this.clock.now()));
    this.record(userId).contacts.add(contactId);
    if (added) this.changed(userId);
    return added;
  }

  removeContact(userId: string, contactId: string): boolean {
    const removed = this.guarded(() => this.store.removeContact(userId, contactId));
    this.records.get(userId)?.contacts.delete(contactId);
    if (removed) this.changed(userId);
    return removed;
  }

  setBlocked(userId: string, blockedIds: readonly string[]): string[] {
    const ids = [...new Set(blockedIds)];
    this.guarded(() => this.store.replaceBlocked(userId, ids, this.clock.now()));
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

  private guarded<T>(call: () => T): T {
    try {
      return call();
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      throw new StoreUnavailableError(classifyStoreError(error, this.clock.now()));
    }
  }
}
