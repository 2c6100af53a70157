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
 */

import type { AccountRef, PrivacyRows } from '../core/ports';
import type { Log } from '../core/log';
import type { Platform } from '../core/presence';
import type { ExtraGauges } from '../http/metrics';

/** The reads (store/pg/follow-reads.ts). */
export interface FollowReads {
  users(ids: readonly string[] | null): Promise<Set<string>>;
  accounts(refs: readonly AccountRef[] | null): Promise<{ account: AccountRef; userId: string }[]>;
  privacy(ids: readonly string[] | null): Promise<PrivacyRows>;
}

/** The engine's side (aggregator/engine.ts). */
export interface DirectoryTarget {
  directoryMark(): number;
  followUsers(ids: readonly string[] | null, stored: ReadonlySet<string>, mark: number): number;
  followAccounts(
    refs: readonly AccountRef[] | null,
    owners: readonly { account: AccountRef; userId: string }[],
    mark: number,
  ): Set<Platform>;
}

/** The privacy service's side (privacy/service.ts). */
export interface PrivacyTarget {
  mark(): number;
  follow(ids: readonly string[] | null, rows: PrivacyRows, mark: number): number;
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
}

/** The announcements' channel (migrations/pg/0009). */
export const FOLLOW_CHANNEL = 'presence_follow';

const SEPARATOR = '\u001f';

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
    if (everything) this.stats.resyncs += 1;
    // Users first: an account names its user, who is then known here.
    if (everything || users.size > 0) {
      const ids = everything ? null : [...users];
      const mark = directory.directoryMark();
      this.stats.changed += directory.followUsers(ids, await reads.users(ids), mark);
    }
    if (everything || accounts.size > 0) {
      const refs = everything ? null : [...accounts.values()];
      const mark = directory.directoryMark();
      const changed = directory.followAccounts(refs, await reads.accounts(refs), mark);
      this.stats.changed += changed.size;
      // This node's own links are announced too, and its shares are renewed for them.
      for (const a of refs ?? []) changed.add(a.platform);
      if (changed.size > 0) this.o.accountsChanged?.(changed);
    }
    if (everything || privacy.size > 0) {
      const ids = everything ? null : [...privacy];
      const mark = this.o.privacy.mark();
      this.stats.changed += this.o.privacy.follow(ids, await reads.privacy(ids), mark);
    }
  }
}
