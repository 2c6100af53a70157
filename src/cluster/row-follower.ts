/**
 * @module cluster/row-follower
 * What several nodes keep in memory beside presence, followed across nodes: users created or
 * deleted, accounts linked or unlinked, privacy settings, contacts and blocks. PostgreSQL
 * announces each such row written, at its commit (migrations/pg/0009, LISTEN presence_follow in
 * store/pg/listener.ts); this re-reads what was announced and hands it to the engine's directory
 * and the privacy service, which replace their memory of it.
 *
 * Why the database's notifications and not the Redis change log or pub/sub: they are sent by the
 * writing transaction itself, at its commit and never for a rollback, whoever writes (a node, the
 * CLI, a cascade of a deletion), so no write can be made without its announcement, and a node
 * misses one only while its listening connection is down; it then re-reads everything once
 * (`resumed`). A Redis message would be sent after the commit, by the writer, and lost if it died
 * or Redis was away in between.
 *
 * Re-reads run one at a time, each taking every announcement gathered meanwhile (a burst costs one
 * statement per kind of row, not one per write); each re-reads the rows as they are now, so an
 * announcement read twice, or late, does no harm. A re-read that fails is tried again after
 * `retryMs`, with everything it had and what arrived since.
 *
 * The full re-read goes a page of users at a time (`pageSize`, with their accounts and privacy
 * rows), compared with memory `turnSize` rows a turn, and then walks memory for what no page held
 * (deleted elsewhere while nobody listened), `turnSize` entries a turn: at 1M users one comparison
 * of everything would hold the event loop for seconds, longer than a WebSocket device's lease
 * waits. Pages are larger than turns so that the round trips stay few. Pages are not one snapshot: a row written elsewhere during the pass is announced, and
 * that announcement's re-read runs after the pass, so the pass need not be exact about it.
 */

import type { AccountRef, PrivacyRows } from '../core/ports';
import type { Log } from '../core/log';
import type { Platform } from '../core/presence';
import type { ExtraGauges } from '../http/metrics';
import type { PrivacySettings } from '../privacy/project';

type AccountOwner = { readonly account: AccountRef; readonly userId: string };

/** The reads (store/pg/follow-reads.ts). */
export interface FollowReads {
  users(ids: readonly string[]): Promise<Set<string>>;
  accounts(refs: readonly AccountRef[]): Promise<AccountOwner[]>;
  privacy(ids: readonly string[]): Promise<PrivacyRows>;
  /** Users after `after` (at most `limit`), with the accounts and privacy rows of their range. */
  page(
    after: string | null,
    limit: number,
  ): Promise<{
    users: readonly string[];
    accounts: readonly AccountOwner[];
    privacy: PrivacyRows;
    next: string | null;
  }>;
}

/** The engine's side (aggregator/engine.ts). */
export interface DirectoryTarget {
  directoryMark(): number;
  followUsers(ids: readonly string[], stored: ReadonlySet<string>, mark: number): number;
  followAccounts(refs: readonly AccountRef[], owners: readonly AccountOwner[], mark: number): Set<Platform>;
  /** The users in memory, live (read over several turns). */
  userIds(): Iterable<string>;
  /** The linked accounts in memory with their user, live. */
  linkedAccounts(): Iterable<[userId: string, account: AccountRef]>;
}

/** The privacy service's side (privacy/service.ts). */
export interface PrivacyTarget {
  mark(): number;
  follow(ids: readonly string[], rows: PrivacyRows, mark: number): number;
  /** The users with a record in memory, live. */
  recordIds(): Iterable<string>;
}

export interface RowFollowerParts {
  readonly reads: FollowReads;
  readonly directory: DirectoryTarget;
  readonly privacy: PrivacyTarget;
  /**
   * The platforms of accounts announced (this node's own links too) or changed by a full re-read:
   * the connector host renews their polling shares, so a new account is polled by one node soon.
   */
  readonly accountsChanged?: (platforms: ReadonlySet<Platform>) => void;
  readonly log: Log;
  /** The pause before a failed re-read is tried again (default 1 s). */
  readonly retryMs?: number;
  /** Users a page of the full re-read reads (default 5,000). */
  readonly pageSize?: number;
  /** Rows of a page compared a turn, and memory entries a turn of the sweep (default 1,000). */
  readonly turnSize?: number;
}

/** The announcements' channel (migrations/pg/0009). */
export const FOLLOW_CHANNEL = 'presence_follow';

const SEPARATOR = '\u001f';
const refKey = (a: AccountRef): string =>
  `${a.platform}${SEPARATOR}${a.workspaceId}${SEPARATOR}${a.externalId}`;
const NO_USERS: ReadonlySet<string> = new Set();
const NO_PRIVACY: PrivacyRows = { settings: new Map(), contacts: [], blocks: [] };
/** Lets the event loop run what waits (I/O, timers) before the next slice of work. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export interface RowFollowStats {
  /** Announcements received. */
  notifications: number;
  /** Re-reads done (each of every kind announced meanwhile). */
  rounds: number;
  /** Full re-reads (after a gap in the announcements). */
  resyncs: number;
  /** Records that changed here: users, accounts (by platform) and privacy records. */
  changed: number;
  /** Re-reads that failed (tried again). */
  failures: number;
}

export class RowFollower {
  private users = new Set<string>();
  private accounts = new Map<string, AccountRef>();
  private privacy = new Set<string>();
  private everything = false;
  private running: Promise<void> | null = null;
  private retry: NodeJS.Timeout | null = null;
  private stopped = false;
  readonly stats: RowFollowStats = { notifications: 0, rounds: 0, resyncs: 0, changed: 0, failures: 0 };

  constructor(private readonly o: RowFollowerParts) {}

  /** One announcement (`<kind>:<key>`); an unknown one is skipped. */
  notified(payload: string): void {
    this.stats.notifications += 1;
    const key = payload.slice(2);
    switch (payload.slice(0, 2)) {
      case 'u:':
        this.users.add(key);
        break;
      case 'p:':
        this.privacy.add(key);
        break;
      case 'a:': {
        const [platform = '', workspaceId = '', externalId = ''] = key.split(SEPARATOR);
        this.accounts.set(key, { platform: platform as Platform, workspaceId, externalId });
        break;
      }
      default:
        this.o.log.debug({ payload: payload.slice(0, 40) }, 'an unknown follow announcement was skipped');
        return;
    }
    this.kick();
  }

  /** Announcements may have been missed: everything is re-read once. */
  resumed(): void {
    this.everything = true;
    this.kick();
  }

  /** Its counters, for /metrics. */
  metrics(): ExtraGauges {
    const counter = (help: string, read: () => number) => ({ help, read, counter: true });
    return {
      presence_cluster_follow_notifications_total: counter(
        "PostgreSQL announcements of users, accounts and privacy rows written (any node's)",
        () => this.stats.notifications,
      ),
      presence_cluster_follow_rereads_total: counter(
        'Re-reads of announced rows (each takes every announcement gathered meanwhile)',
        () => this.stats.rounds,
      ),
      presence_cluster_follow_full_rereads_total: counter(
        'Full re-reads of users, accounts and privacy after the listening connection was lost',
        () => this.stats.resyncs,
      ),
      presence_cluster_follow_failures_total: counter(
        'Re-reads that failed (each tried again after a second)',
        () => this.stats.failures,
      ),
    };
  }

  /** Settles once nothing is pending or being re-read (tests; a failed re-read waits its retry). */
  async idle(): Promise<void> {
    while (this.running !== null) await this.running;
  }

  /** Stops re-reading (a re-read under way finishes). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retry !== null) clearTimeout(this.retry);
    this.retry = null;
    await this.idle();
  }

  private get pending(): boolean {
    return this.everything || this.users.size > 0 || this.accounts.size > 0 || this.privacy.size > 0;
  }

  private kick(): void {
    if (this.running !== null || this.retry !== null || this.stopped) return;
    this.running = this.drain().finally(() => {
      this.running = null;
    });
  }

  private async drain(): Promise<void> {
    while (this.pending && !this.stopped) {
      const everything = this.everything;
      const users = this.users;
      const accounts = this.accounts;
      const privacy = this.privacy;
      this.everything = false;
      this.users = new Set();
      this.accounts = new Map();
      this.privacy = new Set();
      try {
        await this.round(everything, users, accounts, privacy);
      } catch (error) {
        this.stats.failures += 1;
        this.o.log.warn(
          { err: error },
          "re-reading other nodes' users, accounts or privacy failed; will retry",
        );
        this.everything ||= everything;
        for (const id of users) this.users.add(id);
        for (const [key, a] of accounts) this.accounts.set(key, a);
        for (const id of privacy) this.privacy.add(id);
        this.retry = setTimeout(() => {
          this.retry = null;
          this.kick();
        }, this.o.retryMs ?? 1_000);
        this.retry.unref();
        return;
      }
    }
  }

  private async round(
    everything: boolean,
    users: ReadonlySet<string>,
    accounts: ReadonlyMap<string, AccountRef>,
    privacy: ReadonlySet<string>,
  ): Promise<void> {
    const { reads, directory } = this.o;
    this.stats.rounds += 1;
    // The full re-read reads every row after these announcements were made: it covers them.
    if (everything) return this.resync();
    // Users first: an account names its user, who is then known here.
    if (users.size > 0) {
      const ids = [...users];
      const mark = directory.directoryMark();
      this.stats.changed += directory.followUsers(ids, await reads.users(ids), mark);
    }
    if (accounts.size > 0) {
      const refs = [...accounts.values()];
      const mark = directory.directoryMark();
      const changed = directory.followAccounts(refs, await reads.accounts(refs), mark);
      this.stats.changed += changed.size;
      // This node's own links are announced too, and its shares are renewed for them.
      for (const a of refs) changed.add(a.platform);
      this.o.accountsChanged?.(changed);
    }
    if (privacy.size > 0) {
      const ids = [...privacy];
      const mark = this.o.privacy.mark();
      this.stats.changed += this.o.privacy.follow(ids, await reads.privacy(ids), mark);
    }
  }

  /**
   * Everything, a page at a time (see the module comment). The marks are taken once, before the
   * first read: what this node writes during the pass is left alone by every page and the sweep.
   */
  private async resync(): Promise<void> {
    const { reads, directory, privacy } = this.o;
    const size = this.o.pageSize ?? 5_000;
    const slice = this.o.turnSize ?? 1_000;
    this.stats.resyncs += 1;
    const userMark = directory.directoryMark();
    const privacyMark = privacy.mark();
    const seenUsers = new Set<string>();
    const seenAccounts = new Set<string>();
    const seenPrivacy = new Set<string>();
    const platforms = new Set<Platform>();
    let after: string | null = null;
    do {
      const page = await reads.page(after, size);
      const stored = new Set(page.users);
      for (const ids of slices(page.users, slice)) {
        for (const id of ids) seenUsers.add(id);
        this.stats.changed += directory.followUsers(ids, stored, userMark);
        await nextTurn();
      }
      for (const owners of slices(page.accounts, slice)) {
        for (const o of owners) {
          seenAccounts.add(refKey(o.account));
          // Its user was stored when the account was read (a foreign key), even if created since
          // the page's users were: followAccounts takes it in, and the sweep must not forget it.
          seenUsers.add(o.userId);
        }
        const refs = owners.map((o) => o.account);
        for (const p of directory.followAccounts(refs, owners, userMark)) platforms.add(p);
        await nextTurn();
      }
      for (const [ids, rows] of privacySlices(page.privacy, slice)) {
        for (const id of ids) seenPrivacy.add(id);
        this.stats.changed += privacy.follow(ids, rows, privacyMark);
        await nextTurn();
      }
      after = page.next;
      // A stop leaves the pass unfinished, and the sweep below would forget the pages not read.
      if (this.stopped) return;
    } while (after !== null);

    // What memory holds and no page did: deleted on another node while nobody listened here.
    for await (const ids of unseen(directory.userIds(), (id) => !seenUsers.has(id), slice))
      this.stats.changed += directory.followUsers(ids, NO_USERS, userMark);
    const gone = unseen(directory.linkedAccounts(), ([, a]) => !seenAccounts.has(refKey(a)), slice);
    for await (const chunk of gone) {
      const changed = directory.followAccounts(
        chunk.map(([, a]) => a),
        [],
        userMark,
      );
      for (const p of changed) platforms.add(p);
    }
    for await (const ids of unseen(privacy.recordIds(), (id) => !seenPrivacy.has(id), slice))
      this.stats.changed += privacy.follow(ids, NO_PRIVACY, privacyMark);
    this.stats.changed += platforms.size;
    if (platforms.size > 0) this.o.accountsChanged?.(platforms);
  }
}

function* slices<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** A page's privacy rows by `size` owners at a time, each owner's rows all in one slice. */
function* privacySlices(rows: PrivacyRows, size: number): Generator<[string[], PrivacyRows]> {
  const byOwner = new Map<
    string,
    { contacts: (readonly [string, string])[]; blocks: (readonly [string, string])[] }
  >();
  const at = (owner: string) => {
    let r = byOwner.get(owner);
    if (r === undefined) byOwner.set(owner, (r = { contacts: [], blocks: [] }));
    return r;
  };
  for (const owner of rows.settings.keys()) at(owner);
  for (const row of rows.contacts) at(row[0]).contacts.push(row);
  for (const row of rows.blocks) at(row[0]).blocks.push(row);
  for (const ids of slices([...byOwner.keys()], size)) {
    const settings = new Map<string, PrivacySettings>();
    const contacts: (readonly [string, string])[] = [];
    const blocks: (readonly [string, string])[] = [];
    for (const id of ids) {
      const s = rows.settings.get(id);
      if (s !== undefined) settings.set(id, s);
      const r = byOwner.get(id)!;
      for (const row of r.contacts) contacts.push(row);
      for (const row of r.blocks) blocks.push(row);
    }
    yield [ids, { settings, contacts, blocks }];
  }
}

/**
 * The entries of a live iterator that `keep` selects, `size` entries looked at a turn (however
 * few it keeps): memory may change between turns, which a Map's iterator tolerates.
 */
async function* unseen<T>(items: Iterable<T>, keep: (item: T) => boolean, size: number): AsyncGenerator<T[]> {
  const it = items[Symbol.iterator]();
  for (;;) {
    const kept: T[] = [];
    let looked = 0;
    let step = it.next();
    while (!step.done) {
      if (keep(step.value)) kept.push(step.value);
      if (++looked === size) break;
      step = it.next();
    }
    if (kept.length > 0) yield kept;
    if (step.done === true) return;
    await nextTurn();
  }
}
