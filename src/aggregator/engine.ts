/**
 * @module aggregator/engine
 * The presence engine: hot state in memory, durable state changes in the store. A facade over
 * its parts, each its own module:
 *
 * - user-state.ts: the per-user hot state, its undo record, the shared table of users;
 * - directory.ts: users and linked accounts (create, read, delete, link, unlink);
 * - ingest.ts: reports and overrides, the reducer applied, changes and transitions queued;
 * - read-cache.ts: reads, the cached JSON of each user and the memo of batch bodies;
 * - wheel.ts: the expiry timing wheel and its budgeted sweep;
 * - group-commit.ts: one transaction per turn of the event loop, retries and rollback on a
 *   store fault, and the change sinks (`engine.changes`, core/changes.ts) told of each commit;
 * - refresh.ts: unchanged reports move times in memory, written coarsely;
 * - snapshot.ts: the hot state written as a few blobs, and read back at start instead of rows.
 */

import type { ChangePipeline, PresenceState } from '../core/changes';
import type { Clock } from '../core/clock';
import type { MappedPresence } from '../core/connector';
import { silentLog, type Log } from '../core/log';
import type {
  AccountRecord,
  AccountRef,
  HistoryQuery,
  AsyncPresenceStore,
  LinkResult,
  RefreshedTimes,
  TransitionRecord,
  UserRecord,
} from '../core/ports';
import type { Activity, Ladder, Observation, Platform, Source, Status } from '../core/presence';
import type { PresenceView } from '../normalizer/view';
import type { StoreFault } from '../store/faults';
import { ChangeSinks } from './change-pipeline';
import { Directory, type UserDeleteSink } from './directory';
import { isEnded, sourceOf, type ExpiryHold } from './expiry-hold';
import { DONE, GroupCommit, type Ack } from './group-commit';
import { Ingest, type OverrideInput, type ReportInput } from './ingest';
import { ReadCache } from './read-cache';
import { applyRemote, type RemoteOutcome, type RemoteState } from './remote';
import { RefreshPersister } from './refresh';
import { loadSnapshot, SnapshotWriter, type SnapshotLoad } from './snapshot';
import { UserTable, type UserState } from './user-state';
import { SWEEP_MS, TimingWheel, type EngineStats } from './wheel';

export type { UserDeleteSink } from './directory';
export type { ExpiryHold } from './expiry-hold';
export type { OverrideInput, ReportInput } from './ingest';
export type { RemoteOutcome, RemoteState } from './remote';

export interface EngineOptions {
  readonly clock: Clock;
  /** The presence store, asynchronous (SQLite behind `asyncSqlite`, or PostgreSQL). */
  readonly store: AsyncPresenceStore;
  readonly ladder: Ladder;
  readonly log?: Log;
  /** How often refreshed times are written to disk. */
  readonly refreshPersistMs?: number;
  /** How long an expired device entry is kept for display before it is forgotten. */
  readonly deviceRetentionMs?: number;
  /** How long one sweep chunk may hold the event loop. */
  readonly sweepBudgetMs?: number;
  /** Flush at once when this many writes are queued, to keep each transaction short. */
  readonly maxBatch?: number;
  /** How many users' presence JSON is kept ready for reads (oldest filled is dropped first). */
  readonly viewCacheSize?: number;
  /** Bytes of recent batch bodies kept for callers that repeat the same id list; 0 keeps none. */
  readonly batchMemoBytes?: number;
  /** Platforms whose accounts give identity and never presence (LinkedIn); shown as such. */
  readonly identityOnlyPlatforms?: readonly Platform[];
  /**
   * How long (by `clock`) a commit that meets another connection's lock is retried before its
   * writes are answered 503. Well inside the 10 s in which every write is answered.
   */
  readonly commitRetryMs?: number;
  /** How often, at most, `storeFault()` probes a failing store to learn it has recovered. */
  readonly probeIntervalMs?: number;
  /**
   * How often a snapshot of the hot state is written (where the store keeps them), and one at a
   * graceful stop; 0 writes none unless asked (`writeSnapshot`).
   */
  readonly snapshotIntervalMs?: number;
  /** Users per snapshot part: one part is encoded and stored per turn of the event loop. */
  readonly snapshotPartUsers?: number;
}

/** How a device reported: the first word of its entries' labels, and what its raw state adds. */
export interface DeviceVia {
  readonly label: string;
  readonly raw?: Readonly<Record<string, string>>;
}

const HTTP_HEARTBEAT: DeviceVia = { label: 'heartbeat' };

export class PresenceEngine {
  readonly clock: Clock;
  readonly ladder: Ladder;
  /** Where committed changes go: `engine.changes.add(sink)` (see core/changes.ts). */
  readonly changes: ChangePipeline;
  /** Counters for /metrics. */
  readonly stats: EngineStats = { sweeps: 0, changesCommitted: 0 };
  private heartbeatCount = 0;

  private readonly store: AsyncPresenceStore;
  private readonly log: Log;
  private readonly refreshPersistMs: number;
  private readonly table = new UserTable();
  private readonly commit: GroupCommit;
  private readonly wheel: TimingWheel;
  private readonly refresh: RefreshPersister;
  private readonly ingest: Ingest;
  private readonly reads: ReadCache;
  private readonly directory: Directory;
  private readonly snapshots: SnapshotWriter | null;
  private readonly snapshotIntervalMs: number;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(options: EngineOptions) {
    this.clock = options.clock;
    this.store = options.store;
    this.ladder = options.ladder;
    this.log = options.log ?? silentLog;
    this.refreshPersistMs = options.refreshPersistMs ?? 5000;
    const sinks = new ChangeSinks(this.log);
    this.changes = sinks;
    this.commit = new GroupCommit({
      store: this.store,
      clock: this.clock,
      log: this.log,
      sinks,
      stats: this.stats,
      maxBatch: options.maxBatch ?? 2048,
      commitRetryMs: options.commitRetryMs ?? 5000,
      probeIntervalMs: options.probeIntervalMs ?? 1000,
      restore: (u) => this.restore(u),
      // A user another node changed meanwhile (several nodes): see group-commit.ts.
      rebase: (u, stored, base, cause, keep) =>
        stored === null
          ? void this.directory.forget(u.userId)
          : this.ingest.rebase(u, stored, base, cause, keep),
    });
    this.wheel = new TimingWheel(
      this.clock,
      options.sweepBudgetMs ?? 4,
      {
        catchUp: (u, now) => this.ingest.catchUp(u, now),
        endOfChunk: () => this.commit.commitQueued(), // one short transaction per chunk
        stopped: () => this.stopped,
      },
      this.stats,
    );
    this.refresh = new RefreshPersister(this.store, this.commit, this.table.byId);
    this.ingest = new Ingest({
      users: this.table.byId,
      clock: this.clock,
      ladder: this.ladder,
      commit: this.commit,
      wheel: this.wheel,
      refresh: this.refresh,
      sinks,
      deviceRetentionMs: options.deviceRetentionMs ?? 24 * 3600_000,
    });
    this.reads = new ReadCache({
      table: this.table,
      clock: this.clock,
      ladder: this.ladder,
      commit: this.commit,
      ingest: this.ingest,
      viewCacheSize: options.viewCacheSize ?? 100_000,
      batchMemoBytes: options.batchMemoBytes ?? 16 * 1024 * 1024,
    });
    this.directory = new Directory({
      table: this.table,
      store: this.store,
      clock: this.clock,
      log: this.log,
      commit: this.commit,
      refresh: this.refresh,
      identityOnlyPlatforms: options.identityOnlyPlatforms ?? [],
    });
    this.snapshotIntervalMs = options.snapshotIntervalMs ?? 300_000;
    this.snapshots =
      this.store.snapshots === undefined
        ? null
        : new SnapshotWriter({
            snapshots: this.store.snapshots,
            table: this.table,
            directory: this.directory,
            clock: this.clock,
            log: this.log,
            partRecords: options.snapshotPartUsers ?? 5000,
          });
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads the stored state. Users whose state lapsed while the service was down are swept first. */
  async load(): Promise<void> {
    // The snapshot and the rows changed since it, or every row; then the packed refresh times
    // later than theirs; then each user's first boundary: after the last time its state was
    // known to be right (its aggregate's write).
    const apply = (entry: RefreshedTimes): void => this.refresh.apply(entry);
    const snapshot = this.loadSnapshot();
    let users: UserState[];
    if (snapshot !== null) {
      users = snapshot.users;
      if (snapshot.slots.size > 0) await this.store.refreshSlots?.load(apply, snapshot.slots);
    } else {
      users = [];
      for (const loaded of await this.store.loadAll()) users.push(this.directory.adopt(loaded));
      await this.store.refreshSlots?.load(apply);
    }
    for (const u of users) {
      const due = this.ingest.firstBoundary(u, u.aggregateAt);
      this.wheel.schedule(u, Number.isFinite(due) ? due : this.clock.now());
    }
  }

  private loadSnapshot(): SnapshotLoad | null {
    const snapshots = this.store.snapshots;
    const slots = this.store.refreshSlots;
    if (snapshots === undefined || slots === undefined) return null;
    const loaded = loadSnapshot(
      {
        snapshots,
        table: this.table,
        directory: this.directory,
        clock: this.clock,
        log: this.log,
        partRecords: 0,
      },
      (userId) => slots.slotOf(userId),
    );
    if (loaded !== null)
      this.log.info(
        { users: loaded.users.length, reread: loaded.reread, slots: loaded.slots.size },
        'loaded from the snapshot',
      );
    return loaded;
  }

  /**
   * Writes a snapshot of the hot state, where the store keeps them (see snapshot.ts); resolves
   * whether it became the current one (false too where the store has none).
   */
  writeSnapshot(): Promise<boolean> {
    return this.snapshots === null ? Promise.resolve(false) : this.snapshots.write();
  }

  /** Loads state and starts the sweeper and the refresh persister on real timers. */
  async start(): Promise<void> {
    await this.load();
    this.stopped = false;
    this.commit.stopped = false;
    const sweep = setInterval(() => void this.sweep(), SWEEP_MS);
    const persist = setInterval(() => void this.persistRefreshes(), this.refreshPersistMs);
    sweep.unref();
    persist.unref();
    this.timers = [sweep, persist];
    if (this.snapshots !== null && this.snapshotIntervalMs > 0) {
      const snapshot = setInterval(() => void this.writeSnapshot(), this.snapshotIntervalMs);
      snapshot.unref();
      this.timers.push(snapshot);
    }
    void this.sweep();
  }

  /** Stops timers and writes everything held in memory. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.commit.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.wheel.running;
    await this.persistRefreshes();
    // One last attempt, not retried: a shutdown never waits on a failing store, and whatever
    // cannot be committed is answered 503 rather than left hanging.
    const fault = await this.commit.final();
    if (fault !== null) this.log.error({ reason: fault.reason }, 'stopped with changes the store refused');
    // Last, so it covers every refresh time: the next start then reads no slot and no row.
    else if (this.snapshotIntervalMs > 0) await this.writeSnapshot();
  }

  /** A user the queued changes touched gets its committed state back (a refused commit). */
  private restore(u: UserState): void {
    const s = u.rollBack();
    if (s.created) {
      this.table.remove(u);
      this.refresh.forget(u);
      this.table.created += 1; // remembered batch bodies that listed it are stale
      return;
    }
    // The earlier of the two: a boundary the queued change handled is handled again (and its
    // change queued again), one a refresh brought forward is kept.
    this.wheel.reschedule(u, Math.min(s.dueAt, u.dueAt));
  }

  // ---------------------------------------------------------------- users and accounts

  /** Told about every user deletion, inside its transaction and after it (see UserDeleteSink). */
  onUserDelete(sink: UserDeleteSink): void {
    this.directory.onUserDelete(sink);
  }

  /** Told about every user another node deleted, once forgotten here (Directory `onUserForgotten`). */
  onUserForgotten(listener: (userId: string) => void): void {
    this.directory.onUserForgotten(listener);
  }

  hasUser(userId: string): boolean {
    return this.table.byId.has(userId);
  }

  get userCount(): number {
    return this.table.byId.size;
  }

  /** Every tracked user's id, in no particular order. */
  userIds(): IterableIterator<string> {
    return this.table.byId.keys();
  }

  /** Device heartbeats taken since start (HTTP and stream devices), for the operations figures. */
  get heartbeats(): number {
    return this.heartbeatCount;
  }

  get observationCount(): number {
    let n = 0;
    for (const u of this.table.byId.values()) n += u.observations.length;
    return n;
  }

  /** Creates the user if it does not exist yet (queued with the report that needs it). */
  ensureUser(userId: string): void {
    this.directory.ensureUser(userId);
  }

  /** Creates or updates the user's fields; resolves once committed (503 when the store refuses). */
  putUser(
    userId: string,
    fields: { displayName?: string | null; timezone?: string | null },
  ): Promise<{ created: boolean; user: UserRecord }> {
    return this.directory.putUser(userId, fields);
  }

  getUser(userId: string): Promise<{ user: UserRecord; accounts: AccountRecord[] } | null> {
    return this.directory.getUser(userId);
  }

  /** Forgets the user and everything stored about them; false for an unknown user. */
  deleteUser(userId: string): Promise<boolean> {
    return this.directory.deleteUser(userId);
  }

  linkAccount(userId: string, account: AccountRef): Promise<LinkResult> {
    return this.directory.linkAccount(userId, account);
  }

  unlinkAccount(userId: string, account: AccountRef): Promise<boolean> {
    return this.directory.unlinkAccount(userId, account);
  }

  /** Linked accounts of one platform, from memory. */
  accountsFor(platform: Platform): AccountRef[] {
    return this.directory.accountsFor(platform);
  }

  /** The user an account belongs to, from memory. */
  resolveAccount(account: AccountRef): string | undefined {
    return this.directory.resolveAccount(account);
  }

  // ---------------------------------------------------------------- reports

  /**
   * Records one report. Resolves when it is durable: at once for a refresh, after the next group
   * commit for a change. Throws for an unknown user.
   */
  report(userId: string, input: ReportInput): Ack {
    return this.ingest.record(userId, input) ? this.commit.acked(userId) : DONE;
  }

  /**
   * Records a mapper's answer: the platform-level state, and its device entries when the
   * platform lists devices (a device it no longer lists is ended).
   */
  reportMapped(userId: string, platform: Platform, mapped: MappedPresence, ttlMs: number): Ack {
    return this.ingest.reportMapped(userId, platform, mapped, ttlMs);
  }

  /** `reportMapped` for whichever user the account is linked to; false when none is. */
  reportAccount(account: AccountRef, mapped: MappedPresence, ttlMs: number): Ack | false {
    const userId = this.directory.resolveAccount(account);
    return userId === undefined ? false : this.ingest.reportMapped(userId, account.platform, mapped, ttlMs);
  }

  /**
   * A device's own report, creates the user on first sight: an HTTP heartbeat
   * (`POST /v1/heartbeats`) by default, or what `via` names (a stream connection labels its
   * entries and adds `connection` to the raw state).
   */
  heartbeat(
    userId: string,
    deviceId: string,
    status: Status,
    activity: Activity | null,
    ttlMs: number,
    via: DeviceVia = HTTP_HEARTBEAT,
  ): Ack {
    this.heartbeatCount += 1;
    this.directory.ensureUser(userId);
    const raw = activity === null ? { status } : { status, activity };
    return this.report(userId, {
      platform: 'device',
      device: deviceId,
      ttlMs,
      state: {
        status,
        activity,
        customStatus: null,
        source: 'app',
        raw: via.raw === undefined ? raw : { ...raw, ...via.raw },
        label: activity === null ? `${via.label} ${status}` : `${via.label} ${status}/${activity}`,
      },
    });
  }

  setOverride(userId: string, input: OverrideInput): Ack {
    return this.ingest.setOverride(userId, input);
  }

  /** Clears the override; resolves to false when there was none. */
  clearOverride(userId: string): Promise<boolean> {
    return this.ingest.clearOverride(userId);
  }

  // ---------------------------------------------------------------- reads

  get(userId: string): PresenceView | undefined {
    return this.reads.get(userId);
  }

  getMany(userIds: readonly string[]): { presence: Record<string, PresenceView>; unknown: string[] } {
    return this.reads.getMany(userIds);
  }

  /** One user's presence object as JSON, from the cache when nothing has changed since. */
  getJson(userId: string): string | undefined {
    return this.reads.getJson(userId);
  }

  /**
   * `getMany` as the JSON bytes the API sends, `{"presence":{…},"unknown":[…]}`; `ids` is an
   * array or a list as the API received it, `a,b,c` (see read-cache.ts).
   */
  getManyJson(ids: readonly string[] | string): Buffer {
    return this.reads.getManyJson(ids);
  }

  /** The aggregate as the engine last decided it, without building the whole view. */
  state(userId: string): (PresenceState & { version: number; source: Source | null }) | undefined {
    return this.reads.state(userId);
  }

  /** When the user's device entry expires, as held in memory (refreshes included). */
  deviceExpiresAt(userId: string, device: string): number | undefined {
    const u = this.table.byId.get(userId);
    return u?.observations.find((o) => o.platform === 'device' && o.device === device)?.expiresAt;
  }

  async history(userId: string, query: HistoryQuery): Promise<TransitionRecord[]> {
    await this.commit.flushForRead();
    return this.store.history(userId, query);
  }

  // ---------------------------------------------------------------- other nodes

  /**
   * Another node's committed change (the shared change log, src/cluster/): replaces the user's
   * state unless this node holds that version or a newer one; commits and emits nothing. See
   * aggregator/remote.ts for the outcomes.
   */
  applyRemote(state: RemoteState): RemoteOutcome {
    const known = this.table.byId.has(state.userId);
    const outcome = applyRemote(
      {
        table: this.table,
        wheel: this.wheel,
        firstBoundary: (u, since) => this.ingest.firstBoundary(u, since),
      },
      state,
    );
    // A user the log brought in: a re-read of users begun before must not forget them.
    if (!known && outcome === 'applied') this.directory.noteArrived(state.userId);
    return outcome;
  }

  /** Another node deleted the user: forgotten here too (memory only; the store row is gone). */
  forgetRemote(userId: string): boolean {
    return this.directory.forget(userId);
  }

  /**
   * Several nodes: users and accounts other nodes created, linked, unlinked or deleted, re-read
   * from the store (src/cluster/row-follower.ts); take `directoryMark` before the read. See
   * Directory `followUsers` and `followAccounts`.
   */
  directoryMark(): number {
    return this.directory.mark();
  }

  followUsers(ids: readonly string[], stored: ReadonlySet<string>, mark: number): number {
    return this.directory.followUsers(ids, stored, mark);
  }

  /** Every linked account with its user, live (a full re-read walks it over several turns). */
  linkedAccounts(): Iterable<[userId: string, account: AccountRef]> {
    return this.directory.linkedAccounts();
  }

  followAccounts(
    refs: readonly AccountRef[],
    owners: readonly { account: AccountRef; userId: string }[],
    mark: number,
  ): Set<Platform> {
    return this.directory.followAccounts(refs, owners, mark);
  }

  /**
   * Several-node mode (before `load`): expiries are decided in Redis by `hold`'s owner, which
   * hears of every observation kept or refreshed, and ends them with `expire`; time alone ends
   * none here (aggregator/expiry-hold.ts says why).
   */
  holdExpiries(hold: ExpiryHold): void {
    this.ingest.hold = hold;
  }

  /** The user's observation of `source` (`<platform>/<device>`), as held in memory. */
  observation(userId: string, source: string): Observation | undefined {
    return this.table.byId.get(userId)?.observations.find((o) => sourceOf(o) === source);
  }

  /** Every observation not ended, with its user (a rebuild of Redis's hot state). */
  *liveObservations(): IterableIterator<{ userId: string; observation: Observation }> {
    for (const u of this.table.byId.values())
      for (const o of u.observations) if (!isEnded(o)) yield { userId: u.userId, observation: o };
  }

  /**
   * The Redis sweep took this observation: it ends now, and the change (if the user's presence
   * changes) is committed like any other. Null when there was nothing to end.
   */
  expire(userId: string, source: string): Ack | null {
    return this.ingest.expire(userId, source) ? this.commit.acked(userId) : null;
  }

  // ---------------------------------------------------------------- time and durability

  /**
   * Looks at every user whose boundary has passed: expiries become transitions (to offline and
   * stale when nothing live is left). Resolves to the number of users looked at.
   */
  sweep(): Promise<number> {
    return this.wheel.sweep();
  }

  /**
   * Commits what is queued now, in one transaction (after the commit in flight). Rejects with
   * `StoreUnavailableError` when the store refuses it (the queue is then retried or rolled back,
   * as for a group commit).
   */
  flush(): Promise<void> {
    return this.commit.flush();
  }

  /** Why the store cannot commit, or null when it can (probing a failing store now and then). */
  storeFault(): Promise<StoreFault | null> {
    return this.commit.storeFault();
  }

  /**
   * Writes refreshed times (observations' observed_at/expires_at, last_active_at) of the users
   * refreshed since the last run, a chunk per transaction, yielding between chunks.
   */
  persistRefreshes(chunk = 250): Promise<number> {
    return this.refresh.persist(chunk);
  }
}
