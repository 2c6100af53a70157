/**
 * @module aggregator/directory
 * User state: users and their linked accounts, in memory and in the store. Users created by a
 * report (a first heartbeat) or by the API are queued with the group commit; the API's other user
 * and account writes are their own transactions, run as an exclusive step of the group commit
 * (after what is queued has been committed, with no commit in flight meanwhile).
 */

import type { StoreTx } from '../core/changes';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type {
  AccountRecord,
  AccountRef,
  LinkResult,
  AsyncPresenceStore,
  LoadedUser,
  UserRecord,
} from '../core/ports';
import type { Platform } from '../core/presence';
import { runStages } from './change-pipeline';
import type { GroupCommit } from './group-commit';
import type { RefreshPersister } from './refresh';
import { UserState, type UserTable } from './user-state';

/**
 * Told about a user's deletion, in the two phases of a change sink (core/changes.ts): `stage`
 * inside the transaction that deletes the user (with the last version), handed that transaction;
 * `committed` after it committed. The webhook outbox is one. `stage` may return a promise (an
 * asynchronous store's writes): the deletion waits for it before it commits.
 */
export interface UserDeleteSink {
  stage(tx: StoreTx, userId: string, lastVersion: number): void | Promise<void>;
  committed(userId: string): void;
}

export interface DirectoryParts {
  readonly table: UserTable;
  readonly store: AsyncPresenceStore;
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
  private readonly forgetListeners: ((userId: string) => void)[] = [];
  /**
   * Several nodes (`mark`): this node's own user and account writes, by user id or `a` + account
   * key, numbered in order, so that a re-read begun before one does not undo it (see `mark`).
   */
  private readonly touched = new Map<string, number>();
  private writes = 0;
  private tracking = false;

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
    this.wrote(userId);
    const now = this.o.clock.now();
    const u = new UserState(userId);
    this.table.add(u);
    this.o.commit.created(u);
    this.o.commit.enqueue({
      op: 'user',
      user: { userId, displayName: null, timezone: null, createdAt: now, updatedAt: now },
    });
  }

  async putUser(
    userId: string,
    fields: { displayName?: string | null; timezone?: string | null },
  ): Promise<{ created: boolean; user: UserRecord }> {
    const { commit, store } = this.o;
    if (!this.users.has(userId)) {
      // Memory holds every stored user, so this one is new: it is created with its fields by the
      // group commit, in memory at once (a heartbeat meanwhile finds it and does not create it).
      const now = this.o.clock.now();
      const user: UserRecord = {
        userId,
        displayName: fields.displayName ?? null,
        timezone: fields.timezone ?? null,
        createdAt: now,
        updatedAt: now,
      };
      this.wrote(userId);
      const u = new UserState(userId);
      this.table.add(u);
      commit.created(u);
      commit.enqueue({ op: 'user', user });
      await commit.acked(userId);
      return { created: true, user };
    }
    return commit.exclusive(async () => {
      const now = this.o.clock.now();
      const existing = await store.getUser(userId);
      const user: UserRecord = {
        userId,
        displayName: fields.displayName !== undefined ? fields.displayName : (existing?.displayName ?? null),
        timezone: fields.timezone !== undefined ? fields.timezone : (existing?.timezone ?? null),
        createdAt: existing?.createdAt ?? now,
        updatedAt: now,
      };
      await store.write([{ op: 'user', user }]);
      return { created: existing === null, user };
    });
  }

  async getUser(userId: string): Promise<{ user: UserRecord; accounts: AccountRecord[] } | null> {
    if (!this.users.has(userId)) return null;
    await this.o.commit.flushForRead();
    const user = await this.o.store.getUser(userId);
    return user === null ? null : { user, accounts: await this.o.store.accountsOf(userId) };
  }

  async deleteUser(userId: string): Promise<boolean> {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    const { commit, store } = this.o;
    const sinks = this.deleteSinks.slice();
    const deleted = await commit.exclusive(async () => {
      // Deleted meanwhile by another request (it waited for the same turn).
      if (u.deleted) return null;
      const accounts = await store.accountsOf(userId);
      const lastVersion = u.version;
      // The sinks write in the same transaction (a `user.deleted` event exists if and only if the
      // delete does); memory changes only once it committed.
      await store.deleteUser(
        userId,
        sinks.length === 0
          ? undefined
          : (tx) => runStages(sinks, 0, (sink) => sink.stage(tx, userId, lastVersion)),
      );
      // Changes made to the user while it was being deleted would write rows of a user that is gone.
      commit.forget(u);
      this.wrote(userId);
      for (const a of accounts) {
        this.accounts.delete(accountKey(a));
        this.wrote(`a${accountKey(a)}`);
      }
      this.table.remove(u);
      this.o.refresh.forget(u);
      return accounts;
    });
    if (deleted === null) return false;
    for (const sink of sinks) {
      try {
        sink.committed(userId);
      } catch (error) {
        this.o.log.error({ err: error }, 'a user deletion listener failed');
      }
    }
    return true;
  }

  /**
   * Told about every user another node deleted, once it is forgotten here (`forget`): memory of
   * other layers keyed by the user follows, as the delete sinks' `committed` does for this node's.
   */
  onUserForgotten(listener: (userId: string) => void): void {
    this.forgetListeners.push(listener);
  }

  /**
   * Forgets a user another node deleted, from memory only (its rows are gone already): the user
   * and its accounts. The delete sinks are not told (the node that deleted it did that: their
   * stage wrote in its transaction); `onUserForgotten` listeners are.
   */
  forget(userId: string): boolean {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    this.wrote(userId);
    for (const [key, owner] of this.accounts) if (owner === userId) this.accounts.delete(key);
    this.table.remove(u);
    this.o.refresh.forget(u);
    for (const listener of this.forgetListeners) {
      try {
        listener(userId);
      } catch (error) {
        this.o.log.error({ err: error }, 'a listener of remote user deletions failed');
      }
    }
    return true;
  }

  linkAccount(userId: string, account: AccountRef): Promise<LinkResult> {
    const { commit, store } = this.o;
    return commit.exclusive(async () => {
      const result = await store.linkAccount(userId, account, this.o.clock.now());
      if (result.linked) {
        this.accounts.set(accountKey(account), userId);
        this.wrote(`a${accountKey(account)}`);
        const u = this.users.get(userId);
        if (u !== undefined) this.noteIdentity(u, account.platform, true);
      }
      return result;
    });
  }

  unlinkAccount(userId: string, account: AccountRef): Promise<boolean> {
    const { commit, store } = this.o;
    return commit.exclusive(async () => {
      const removed = await store.unlinkAccount(userId, account);
      if (removed) {
        this.accounts.delete(accountKey(account));
        this.wrote(`a${accountKey(account)}`);
        const u = this.users.get(userId);
        const stillLinked = (await store.accountsOf(userId)).some((a) => a.platform === account.platform);
        if (u !== undefined) this.noteIdentity(u, account.platform, stillLinked);
      }
      return removed;
    });
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

  /**
   * Several nodes: where this node's own user and account writes stand. A re-read of users or
   * accounts (`followUsers`, `followAccounts`, after another node announced a write) takes this
   * before it reads, and leaves alone what this node wrote since: its read may predate that write,
   * whose own announcement brings a re-read after it. The first call starts the bookkeeping (one
   * node never calls it).
   */
  mark(): number {
    this.tracking = true;
    return this.writes;
  }

  /**
   * Takes in the users another node created or deleted: `ids` were re-read (a full re-read hands
   * them a page at a time, then those of memory no page held), `stored` are those of them the
   * store holds. A stored user unknown here is added with no presence (its changes come through
   * the change log); one here the store no longer holds is forgotten, unless this node is creating
   * it (its commit pending). Returns how many changed.
   */
  followUsers(ids: readonly string[], stored: ReadonlySet<string>, mark: number): number {
    let changed = 0;
    for (const id of ids) {
      if (this.since(id, mark)) continue;
      const u = this.users.get(id);
      if (stored.has(id)) {
        if (u === undefined) {
          this.table.add(new UserState(id));
          changed += 1;
        }
      } else if (u !== undefined && u.undo === null) {
        this.forget(id);
        changed += 1;
      }
    }
    this.settle(mark);
    return changed;
  }

  /**
   * Takes in the accounts another node linked, moved or unlinked: `refs` were re-read, `owners`
   * are those still linked with their user. Returns the platforms whose accounts changed here
   * (their polling shares are renewed).
   */
  followAccounts(
    refs: readonly AccountRef[],
    owners: readonly { account: AccountRef; userId: string }[],
    mark: number,
  ): Set<Platform> {
    const now = new Map<string, string>();
    for (const o of owners) now.set(accountKey(o.account), o.userId);
    const platforms = new Set<Platform>();
    const take = (key: string): void => {
      if (this.touched.size > 0 && this.since(`a${key}`, mark)) return;
      const owner = now.get(key);
      const had = this.accounts.get(key);
      if (owner === had) return;
      const platform = key.slice(0, key.indexOf('\u0000')) as Platform;
      platforms.add(platform);
      if (had !== undefined) {
        this.accounts.delete(key);
        const u = this.users.get(had);
        if (u !== undefined) this.noteIdentity(u, platform, this.holds(had, platform));
      }
      if (owner !== undefined) {
        let u = this.users.get(owner);
        if (u === undefined) {
          // Linked to a user this node has not taken in yet (its announcement may come next).
          u = new UserState(owner);
          this.table.add(u);
        }
        this.accounts.set(key, owner);
        this.noteIdentity(u, platform, true);
      }
    };
    for (const r of refs) take(accountKey(r));
    this.settle(mark);
    return platforms;
  }

  /** A user another node's change log entry brought into memory (see `mark`). */
  noteArrived(userId: string): void {
    this.wrote(userId);
  }

  private wrote(key: string): void {
    if (this.tracking) this.touched.set(key, ++this.writes);
  }

  private since(key: string, mark: number): boolean {
    return (this.touched.get(key) ?? 0) > mark;
  }

  /** Forgets the writes a re-read begun at `mark` has covered (re-reads run one at a time). */
  private settle(mark: number): void {
    for (const [key, n] of this.touched) if (n <= mark) this.touched.delete(key);
  }

  /** Whether the user still has an account of an identity-only platform (scans: rare). */
  private holds(userId: string, platform: Platform): boolean {
    if (!this.identityOnlyPlatforms.has(platform)) return false;
    for (const [key, owner] of this.accounts)
      if (owner === userId && key.startsWith(`${platform}\u0000`)) return true;
    return false;
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
