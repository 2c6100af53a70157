/**
 * @module aggregator/directory
 * User state: users and their linked accounts, in memory and in the store. Users created by a
 * report (a first heartbeat) are queued with it; the API's user and account writes are their own
 * transactions, after what is queued has been committed.
 */

import type { StoreTx } from '../core/changes';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type {
  AccountRecord,
  AccountRef,
  LinkResult,
  LoadedUser,
  PresenceStore,
  UserRecord,
} from '../core/ports';
import type { Platform } from '../core/presence';
import type { GroupCommit } from './group-commit';
import type { RefreshPersister } from './refresh';
import { UserState, type UserTable } from './user-state';

/**
 * Told about a user's deletion, in the two phases of a change sink (core/changes.ts): `stage`
 * inside the transaction that deletes the user (with the last version), handed that transaction;
 * `committed` after it committed. The webhook outbox is one.
 */
export interface UserDeleteSink {
  stage(tx: StoreTx, userId: string, lastVersion: number): void;
  committed(userId: string): void;
}

export interface DirectoryParts {
  readonly table: UserTable;
  readonly store: PresenceStore;
  readonly clock: Clock;
  readonly log: Log;
  readonly commit: GroupCommit;
  readonly refresh: RefreshPersister;
  /** Platforms whose accounts give identity and never presence (LinkedIn). */
  readonly identityOnlyPlatforms: readonly Platform[];
}

const accountKey = (a: AccountRef): string => `${a.platform}\u0000${a.workspaceId}\u0000${a.externalId}`;

export class Directory {
  private readonly table: UserTable;
  private readonly users: Map<string, UserState>;
  /** Every linked account, by `accountKey`, to the user it belongs to. */
  private readonly accounts = new Map<string, string>();
  private readonly identityOnlyPlatforms: ReadonlySet<Platform>;
  private readonly deleteSinks: UserDeleteSink[] = [];

  constructor(private readonly o: DirectoryParts) {
    this.table = o.table;
    this.users = o.table.byId;
    this.identityOnlyPlatforms = new Set(o.identityOnlyPlatforms);
  }

  /** Takes a stored user into memory (at load). */
  adopt(loaded: LoadedUser): UserState {
    const u = new UserState(loaded.user.userId);
    u.observations = loaded.observations;
    u.override = loaded.override;
    const agg = loaded.aggregate;
    if (agg !== null) {
      u.status = agg.status;
      u.activity = agg.activity;
      u.customStatus = agg.customStatus;
      u.source = agg.source;
      u.version = agg.version;
      u.lastActiveAt = agg.lastActiveAt;
      u.aggregateAt = agg.updatedAt;
    }
    this.table.add(u);
    for (const a of loaded.accounts) this.adoptAccount(u, a);
    return u;
  }

  /** Takes a stored account of a user in memory into memory (at load). */
  adoptAccount(u: UserState, a: AccountRef): void {
    this.accounts.set(accountKey(a), u.userId);
    this.noteIdentity(u, a.platform, true);
  }

  /** Every linked account with its user, live: a snapshot reads it over several turns. */
  *linkedAccounts(): Generator<[userId: string, account: AccountRef]> {
    for (const [key, userId] of this.accounts) {
      const [platform, workspaceId = '', externalId = ''] = key.split('\u0000');
      yield [userId, { platform: platform as Platform, workspaceId, externalId }];
    }
  }

  /** Forgets every user and account (a load that found its snapshot unusable starts over). */
  clear(): void {
    this.accounts.clear();
    this.users.clear();
  }

  /** Told about every user deletion, inside its transaction and after it (see UserDeleteSink). */
  onUserDelete(sink: UserDeleteSink): void {
    this.deleteSinks.push(sink);
  }

  /** Creates the user if it does not exist yet (queued with the report that needs it). */
  ensureUser(userId: string): void {
    if (this.users.has(userId)) return;
    const now = this.o.clock.now();
    const u = new UserState(userId);
    this.table.add(u);
    this.o.commit.created(u);
    this.o.commit.enqueue({
      op: 'user',
      user: { userId, displayName: null, timezone: null, createdAt: now, updatedAt: now },
    });
  }

  putUser(
    userId: string,
    fields: { displayName?: string | null; timezone?: string | null },
  ): { created: boolean; user: UserRecord } {
    const { commit, store } = this.o;
    commit.flushSync();
    const now = this.o.clock.now();
    const existing = commit.guarded(() => store.getUser(userId));
    const user: UserRecord = {
      userId,
      displayName: fields.displayName !== undefined ? fields.displayName : (existing?.displayName ?? null),
      timezone: fields.timezone !== undefined ? fields.timezone : (existing?.timezone ?? null),
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    commit.guarded(() => store.write([{ op: 'user', user }]));
    if (!this.users.has(userId)) this.table.add(new UserState(userId));
    return { created: existing === null, user };
  }

  getUser(userId: string): { user: UserRecord; accounts: AccountRecord[] } | null {
    if (!this.users.has(userId)) return null;
    this.o.commit.flushForRead();
    const user = this.o.store.getUser(userId);
    return user === null ? null : { user, accounts: this.o.store.accountsOf(userId) };
  }

  deleteUser(userId: string): boolean {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    const { commit, store } = this.o;
    commit.flushSync();
    const accounts = commit.guarded(() => store.accountsOf(userId));
    const lastVersion = u.version;
    // The sinks write in the same transaction (a `user.deleted` event exists if and only if the
    // delete does); memory changes only once it committed.
    commit.guarded(() =>
      store.deleteUser(
        userId,
        this.deleteSinks.length === 0
          ? undefined
          : (tx) => {
              for (const sink of this.deleteSinks) sink.stage(tx, userId, lastVersion);
            },
      ),
    );
    for (const a of accounts) this.accounts.delete(accountKey(a));
    this.table.remove(u);
    this.o.refresh.forget(u);
    for (const sink of this.deleteSinks) {
      try {
        sink.committed(userId);
      } catch (error) {
        this.o.log.error({ err: error }, 'a user deletion listener failed');
      }
    }
    return true;
  }

  /**
   * Forgets a user another node deleted, from memory only (its rows are gone already): the user
   * and its accounts. The delete sinks are not told: the node that deleted it did that.
   */
  forget(userId: string): boolean {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    for (const [key, owner] of this.accounts) if (owner === userId) this.accounts.delete(key);
    this.table.remove(u);
    this.o.refresh.forget(u);
    return true;
  }

  linkAccount(userId: string, account: AccountRef): LinkResult {
    const { commit, store } = this.o;
    commit.flushSync();
    const result = commit.guarded(() => store.linkAccount(userId, account, this.o.clock.now()));
    if (result.linked) {
      this.accounts.set(accountKey(account), userId);
      const u = this.users.get(userId);
      if (u !== undefined) this.noteIdentity(u, account.platform, true);
    }
    return result;
  }

  unlinkAccount(userId: string, account: AccountRef): boolean {
    const { commit, store } = this.o;
    commit.flushSync();
    const removed = commit.guarded(() => store.unlinkAccount(userId, account));
    if (removed) {
      this.accounts.delete(accountKey(account));
      const u = this.users.get(userId);
      const stillLinked = store.accountsOf(userId).some((a) => a.platform === account.platform);
      if (u !== undefined) this.noteIdentity(u, account.platform, stillLinked);
    }
    return removed;
  }

  /** Linked accounts of one platform, from memory. */
  accountsFor(platform: Platform): AccountRef[] {
    const out: AccountRef[] = [];
    for (const key of this.accounts.keys()) {
      const [p, workspaceId = '', externalId = ''] = key.split('\u0000');
      if (p === platform) out.push({ platform, workspaceId, externalId });
    }
    return out;
  }

  /** The user an account belongs to, from memory. */
  resolveAccount(account: AccountRef): string | undefined {
    return this.accounts.get(accountKey(account));
  }

  /** Keeps the user's list of identity-only platforms in step with its accounts. */
  private noteIdentity(u: UserState, platform: Platform, linked: boolean): void {
    if (!this.identityOnlyPlatforms.has(platform)) return;
    const list = (u.identityOnly ?? []).filter((p) => p !== platform);
    if (linked) list.push(platform);
    u.identityOnly = list.length === 0 ? null : list.sort();
    u.invalidate();
  }
}
