/**
 * @module aggregator/engine
 * The presence engine: hot state in memory, durable state changes in SQLite.
 *
 * - A report whose content is unchanged only moves times in memory (no disk write); such refreshes
 *   are persisted coarsely, every `refreshPersistMs`, in small transactions.
 * - A report that changes content is queued; everything queued in one turn of the event loop is
 *   committed in one transaction (group commit), and the caller's promise settles after that
 *   commit. So "acknowledged" means "on disk", yet a burst costs one transaction, not one per event.
 * - Expiry is driven by a timing wheel of one-second buckets. A user sits in the bucket of its
 *   next boundary (an expiry, a decay step); a refresh that pushes the boundary later does not
 *   move it, the sweep just finds nothing changed and files the user under the new boundary.
 *   The sweep works in chunks with a time budget so it never holds the event loop for long.
 * - When a commit fails, memory never shows what was not committed. Each user a queued change
 *   touches keeps an undo record of its last committed state (taken once per commit, so the hot
 *   path pays one small copy per changed user). A lock held by another connection is retried on
 *   timers with back-off for up to `commitRetryMs`, the event loop free meanwhile (the SQLite
 *   busy wait is kept to milliseconds, see store/db.ts), and reads show the undo record while
 *   the change waits. Any other failure, or a lock that outlasts the retries, rolls the queued
 *   changes back in memory and rejects their acknowledgements with 503 `unavailable`
 *   (store/faults.ts); the next write tries the store again, so service resumes by itself.
 */

import { performance } from 'node:perf_hooks';

import type { ChangePipeline, PresenceChange, PresenceState, StoreTx } from '../core/changes';
import type { Clock } from '../core/clock';
import type { MappedPresence } from '../core/connector';
import { silentLog, type Log } from '../core/log';
import type {
  AccountRecord,
  AccountRef,
  HistoryQuery,
  LinkResult,
  LoadedUser,
  PresenceStore,
  TransitionRecord,
  UserRecord,
  WriteOp,
} from '../core/ports';
import {
  effectiveStatus,
  isLive,
  sameCustomStatus,
  type Activity,
  type CustomStatus,
  type DecayStep,
  type Ladder,
  type NormalizedState,
  type Observation,
  type Override,
  type Platform,
  type Source,
  type Status,
} from '../core/presence';
import { changedFields, nextCheckAt, reduce } from '../normalizer/reduce';
import { explain, toPresence, type PresenceView, type UserSnapshot } from '../normalizer/view';
import { classifyStoreError, isStoreFault, StoreUnavailableError, type StoreFault } from '../store/faults';
import { BatchMemo, watchList, type BatchEntry, type Validity } from './batch-memo';
import { ChangeSinks } from './change-pipeline';

/**
 * Told about a user's deletion, in the two phases of a change sink (core/changes.ts): `stage`
 * inside the transaction that deletes the user (with the last version), handed that transaction;
 * `committed` after it committed. The webhook outbox is one.
 */
export interface UserDeleteSink {
  stage(tx: StoreTx, userId: string, lastVersion: number): void;
  committed(userId: string): void;
}

export interface ReportInput {
  readonly platform: Platform;
  /** '' (default) for a platform-level report, otherwise the device key. */
  readonly device?: string;
  readonly state: NormalizedState;
  /** How long the report counts. Ignored when `decay` is given (its last step ends it). */
  readonly ttlMs: number;
  /** When the platform saw it; defaults to now. A report older than the one held is ignored. */
  readonly at?: number;
  readonly decay?: readonly DecayStep[] | null;
}

export interface OverrideInput {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly expiresAt: number;
}

export interface EngineOptions {
  readonly clock: Clock;
  readonly store: PresenceStore;
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
}

type Ack = Promise<void>;
const DONE: Ack = Promise.resolve();
const ignore = (): void => undefined;
/** Back-off between commit retries while another connection holds the lock. */
const RETRY_FIRST_MS = 10;
const RETRY_MAX_MS = 250;

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

/**
 * A user as it was before the queued changes touched it: what a rollback restores and what reads
 * show while the commit waits. `created` marks a user the queued changes create.
 */
class Undo implements UserSnapshot {
  readonly userId: string;
  readonly observations: Observation[];
  readonly override: Override | null;
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly source: Source | null;
  readonly version: number;
  readonly lastActiveAt: number | null;
  readonly dueAt: number;
  readonly identityOnly: Platform[] | null;

  constructor(
    u: UserState,
    readonly created: boolean,
  ) {
    this.userId = u.userId;
    this.observations = u.observations.slice();
    this.override = u.override;
    this.status = u.status;
    this.activity = u.activity;
    this.customStatus = u.customStatus;
    this.source = u.source;
    this.version = u.version;
    this.lastActiveAt = u.lastActiveAt;
    this.dueAt = u.dueAt;
    this.identityOnly = u.identityOnly;
  }
}
const OPEN = Buffer.from('{"presence":{');
const COMMA = Buffer.from(',');
const BUCKET_MS = 1000;

/** Per-user hot state. A class, so that V8 gives every user the same compact shape. */
class UserState {
  observations: Observation[] = [];
  override: Override | null = null;
  status: Status = 'offline';
  activity: Activity | null = null;
  customStatus: CustomStatus | null = null;
  source: Source | null = null;
  version = 0;
  lastActiveAt: number | null = null;
  /** The exact time of the wheel entry that will look at this user next. */
  dueAt = Number.POSITIVE_INFINITY;
  refreshDirty = false;
  deleted = false;
  /**
   * The member `"<user_id>":<presence object>` as JSON, valid until `jsonUntil` unless something
   * about the user changes. Keeping the key in it lets a batch read be pure concatenation.
   */
  json: Buffer | null = null;
  jsonUntil = 0;
  /** Remembered batch bodies that include this user, to be marked stale when its view changes. */
  batches: Validity[] | null = null;
  /** The batch read that last included this user, to skip duplicate ids without a Set. */
  readMark = 0;
  /** Linked platforms that establish identity and report no presence (LinkedIn), or null. */
  identityOnly: Platform[] | null = null;
  /** The last committed state, while queued changes to this user wait for their commit. */
  undo: Undo | null = null;

  constructor(readonly userId: string) {}

  /** Forgets the cached view, and marks every remembered batch body that includes it stale. */
  invalidate(): void {
    this.json = null;
    if (this.batches === null) return;
    for (const batch of this.batches) batch.stale = true;
    this.batches = null;
  }

  watch(batch: Validity): void {
    this.batches = watchList(this.batches, batch);
  }
}

const accountKey = (a: AccountRef): string => `${a.platform}\u0000${a.workspaceId}\u0000${a.externalId}`;

function sameContent(o: Observation, s: NormalizedState): boolean {
  return (
    o.status === s.status &&
    o.activity === s.activity &&
    o.source === s.source &&
    o.label === s.label &&
    sameCustomStatus(o.customStatus, s.customStatus)
  );
}

export class PresenceEngine {
  readonly clock: Clock;
  readonly ladder: Ladder;
  private readonly store: PresenceStore;
  private readonly log: Log;
  private readonly refreshPersistMs: number;
  private readonly deviceRetentionMs: number;
  private readonly sweepBudgetMs: number;
  private readonly maxBatch: number;

  private readonly users = new Map<string, UserState>();
  private readonly accounts = new Map<string, string>();
  private readonly wheel = new Map<number, UserState[]>();
  private readonly refreshDirty = new Set<UserState>();
  /** A ring of the users whose JSON is cached, to bound the cache (FIFO eviction). */
  private readonly viewRing: (UserState | undefined)[];
  private viewRingNext = 0;
  private readonly batchMemo: BatchMemo;
  /** Users created so far: a remembered batch with unknown ids is stale once this moves. */
  private createdUsers = 0;
  private readMarks = 0;

  private ops: WriteOp[] = [];
  /** Changes of the queued ops, for the change sinks once they commit. */
  private queued: PresenceChange[] = [];
  private waiters: Waiter[] = [];
  private pendingAck: Ack | null = null;
  private flushScheduled = false;
  /** Users with an undo record: those the queued ops change. */
  private touched: UserState[] = [];
  private readonly commitRetryMs: number;
  private readonly probeIntervalMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = 0;
  /** When the queued commit first failed (clock time), while it is being retried. */
  private failingSince: number | null = null;
  /** Why the store last failed to commit; null once a commit succeeds again. */
  private fault: StoreFault | null = null;
  private lastProbeAt = Number.NEGATIVE_INFINITY;

  /** Where committed changes go: `engine.changes.add(sink)` (see core/changes.ts). */
  readonly changes: ChangePipeline;
  private readonly sinks: ChangeSinks;
  private readonly deleteSinks: UserDeleteSink[] = [];
  private timers: NodeJS.Timeout[] = [];
  private sweeping: Promise<number> | null = null;
  private stopped = false;
  /** Counters for /metrics. */
  readonly stats = { sweeps: 0, changesCommitted: 0 };

  constructor(options: EngineOptions) {
    this.clock = options.clock;
    this.store = options.store;
    this.ladder = options.ladder;
    this.log = options.log ?? silentLog;
    this.sinks = new ChangeSinks(this.log);
    this.changes = this.sinks;
    this.refreshPersistMs = options.refreshPersistMs ?? 5000;
    this.deviceRetentionMs = options.deviceRetentionMs ?? 24 * 3600_000;
    this.sweepBudgetMs = options.sweepBudgetMs ?? 4;
    this.maxBatch = options.maxBatch ?? 2048;
    this.viewRing = new Array<UserState | undefined>(Math.max(1, options.viewCacheSize ?? 100_000));
    this.batchMemo = new BatchMemo(options.batchMemoBytes ?? 16 * 1024 * 1024);
    this.identityOnlyPlatforms = new Set(options.identityOnlyPlatforms ?? []);
    this.commitRetryMs = options.commitRetryMs ?? 5000;
    this.probeIntervalMs = options.probeIntervalMs ?? 1000;
  }

  private readonly identityOnlyPlatforms: ReadonlySet<Platform>;

  /** Keeps the user's list of identity-only platforms in step with its accounts. */
  private noteIdentity(u: UserState, platform: Platform, linked: boolean): void {
    if (!this.identityOnlyPlatforms.has(platform)) return;
    const list = (u.identityOnly ?? []).filter((p) => p !== platform);
    if (linked) list.push(platform);
    u.identityOnly = list.length === 0 ? null : list.sort();
    u.invalidate();
  }

  // ---------------------------------------------------------------- lifecycle

  /** Loads the stored state. Users whose state lapsed while the service was down are swept first. */
  load(): void {
    for (const loaded of this.store.loadAll()) this.adopt(loaded);
  }

  private adopt(loaded: LoadedUser): void {
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
    }
    this.addUser(u);
    for (const a of loaded.accounts) {
      this.accounts.set(accountKey(a), u.userId);
      this.noteIdentity(u, a.platform, true);
    }
    // The first boundary after the last time this state was known to be right.
    const since = agg?.updatedAt ?? 0;
    const due = Math.min(nextCheckAt(u.observations, u.override, since), this.pruneAt(u));
    this.schedule(u, Number.isFinite(due) ? due : this.clock.now());
  }

  /** Loads state and starts the sweeper and the refresh persister on real timers. */
  start(): void {
    this.load();
    this.stopped = false;
    const sweep = setInterval(() => void this.sweep(), BUCKET_MS);
    const persist = setInterval(() => void this.persistRefreshes(), this.refreshPersistMs);
    sweep.unref();
    persist.unref();
    this.timers = [sweep, persist];
    void this.sweep();
  }

  /** Stops timers and writes everything held in memory. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.sweeping;
    await this.persistRefreshes();
    // One last attempt, not retried: a shutdown never waits on a failing store, and whatever
    // cannot be committed is answered 503 rather than left hanging.
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const fault = this.attempt();
    if (fault !== null) this.log.error({ reason: fault.reason }, 'stopped with changes the store refused');
  }

  // ---------------------------------------------------------------- listeners

  /** Told about every user deletion, inside its transaction and after it (see UserDeleteSink). */
  onUserDelete(sink: UserDeleteSink): void {
    this.deleteSinks.push(sink);
  }

  // ---------------------------------------------------------------- users and accounts

  hasUser(userId: string): boolean {
    return this.users.has(userId);
  }

  get userCount(): number {
    return this.users.size;
  }

  get observationCount(): number {
    let n = 0;
    for (const u of this.users.values()) n += u.observations.length;
    return n;
  }

  private addUser(u: UserState): void {
    this.users.set(u.userId, u);
    this.createdUsers += 1;
  }

  /** Creates the user if it does not exist yet (queued with the report that needs it). */
  ensureUser(userId: string): void {
    if (this.users.has(userId)) return;
    const now = this.clock.now();
    const u = new UserState(userId);
    this.addUser(u);
    u.undo = new Undo(u, true);
    this.touched.push(u);
    this.enqueue({
      op: 'user',
      user: { userId, displayName: null, timezone: null, createdAt: now, updatedAt: now },
    });
  }

  putUser(
    userId: string,
    fields: { displayName?: string | null; timezone?: string | null },
  ): {
    created: boolean;
    user: UserRecord;
  } {
    this.flushSync();
    const now = this.clock.now();
    const existing = this.guarded(() => this.store.getUser(userId));
    const user: UserRecord = {
      userId,
      displayName: fields.displayName !== undefined ? fields.displayName : (existing?.displayName ?? null),
      timezone: fields.timezone !== undefined ? fields.timezone : (existing?.timezone ?? null),
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
    };
    this.guarded(() => this.store.write([{ op: 'user', user }]));
    if (!this.users.has(userId)) this.addUser(new UserState(userId));
    return { created: existing === null, user };
  }

  getUser(userId: string): { user: UserRecord; accounts: AccountRecord[] } | null {
    if (!this.users.has(userId)) return null;
    this.flushForRead();
    const user = this.store.getUser(userId);
    return user === null ? null : { user, accounts: this.store.accountsOf(userId) };
  }

  deleteUser(userId: string): boolean {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    this.flushSync();
    const accounts = this.guarded(() => this.store.accountsOf(userId));
    const lastVersion = u.version;
    // The sinks write in the same transaction (a `user.deleted` event exists if and only if the
    // delete does); memory changes only once it committed.
    this.guarded(() =>
      this.store.deleteUser(
        userId,
        this.deleteSinks.length === 0
          ? undefined
          : (tx) => {
              for (const sink of this.deleteSinks) sink.stage(tx, userId, lastVersion);
            },
      ),
    );
    for (const a of accounts) this.accounts.delete(accountKey(a));
    u.deleted = true;
    u.invalidate();
    this.users.delete(userId);
    this.refreshDirty.delete(u);
    for (const sink of this.deleteSinks) {
      try {
        sink.committed(userId);
      } catch (error) {
        this.log.error({ err: error }, 'a user deletion listener failed');
      }
    }
    return true;
  }

  linkAccount(userId: string, account: AccountRef): LinkResult {
    this.flushSync();
    const result = this.guarded(() => this.store.linkAccount(userId, account, this.clock.now()));
    if (result.linked) {
      this.accounts.set(accountKey(account), userId);
      const u = this.users.get(userId);
      if (u !== undefined) this.noteIdentity(u, account.platform, true);
    }
    return result;
  }

  unlinkAccount(userId: string, account: AccountRef): boolean {
    this.flushSync();
    const removed = this.guarded(() => this.store.unlinkAccount(userId, account));
    if (removed) {
      this.accounts.delete(accountKey(account));
      const u = this.users.get(userId);
      const stillLinked = this.store.accountsOf(userId).some((a) => a.platform === account.platform);
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

  // ---------------------------------------------------------------- reports

  /**
   * Records one report. Resolves when it is durable: at once for a refresh, after the next group
   * commit for a change. Throws for an unknown user.
   */
  report(userId: string, input: ReportInput): Ack {
    return this.record(userId, input) ? this.acked() : DONE;
  }

  /** `report` without the acknowledgement: true when the report waits for a commit. */
  private record(userId: string, input: ReportInput): boolean {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    const now = this.clock.now();
    const device = input.device ?? '';
    const at = Math.min(input.at ?? now, now);
    const decay = input.decay ?? null;
    const lastStep = decay === null ? undefined : decay[decay.length - 1];
    const expiresAt = at + (lastStep === undefined ? input.ttlMs : lastStep.untilMs);
    if (expiresAt <= now) return false;

    const obs = u.observations;
    let index = -1;
    for (let i = 0; i < obs.length; i++) {
      const o = obs[i]!;
      if (o.platform === input.platform && o.device === device) {
        index = i;
        break;
      }
    }
    const existing = index >= 0 ? obs[index]! : undefined;
    if (existing !== undefined && at < existing.observedAt) return false; // never move backwards

    if (
      existing !== undefined &&
      decay === null &&
      existing.decay === null &&
      isLive(existing, now) &&
      sameContent(existing, input.state)
    ) {
      // The hot path: same state again. Times move in memory; the disk hears of it later.
      const shortened = expiresAt < existing.expiresAt;
      existing.observedAt = at;
      existing.expiresAt = expiresAt;
      u.invalidate();
      if (input.state.status === 'online' && (u.lastActiveAt === null || at > u.lastActiveAt))
        u.lastActiveAt = at;
      if (!u.refreshDirty) {
        u.refreshDirty = true;
        this.refreshDirty.add(u);
      }
      if (shortened) this.schedule(u, expiresAt);
      // A refresh of a report still waiting for its commit is only as good as that commit.
      return u.undo !== null && !u.undo.observations.includes(existing);
    }

    const s = input.state;
    const next: Observation = {
      platform: input.platform,
      device,
      status: s.status,
      activity: s.activity,
      customStatus: s.customStatus,
      source: s.source,
      raw: s.raw,
      label: s.label,
      decay,
      observedAt: at,
      changedAt: at,
      expiresAt,
    };
    this.touch(u);
    if (index >= 0) obs[index] = next;
    else obs.push(next);
    if (effectiveStatus(next, now) === 'online' && (u.lastActiveAt === null || at > u.lastActiveAt))
      u.lastActiveAt = at;
    this.enqueue({ op: 'observation', userId, obs: next });
    this.schedule(u, this.recompute(u, now, input.platform));
    return true;
  }

  /**
   * Records a mapper's answer: the platform-level state, and its device entries when the
   * platform lists devices. A device the platform no longer lists has gone offline there, so its
   * entry is ended rather than left to run out its TTL.
   */
  reportMapped(userId: string, platform: Platform, mapped: MappedPresence, ttlMs: number): Ack {
    // One report is one moment: the platform entry, its devices and the devices it no longer
    // lists all take the same time, even if the clock moves while they are recorded.
    const now = this.clock.now();
    const at = Math.min(mapped.at ?? now, now);
    let changed = this.record(userId, {
      platform,
      state: mapped.state,
      ttlMs,
      at,
      decay: mapped.decay ?? null,
    });
    if (mapped.devices !== null) {
      for (const device in mapped.devices) {
        const state = mapped.devices[device]!;
        if (this.record(userId, { platform, device, state, ttlMs, at })) changed = true;
      }
      const u = this.users.get(userId)!;
      const end = at;
      for (let i = 0; i < u.observations.length; i++) {
        const o = u.observations[i]!;
        if (o.platform !== platform || o.device === '' || o.device in mapped.devices || !isLive(o, now))
          continue;
        const ended: Observation = {
          ...o,
          observedAt: Math.max(o.observedAt, end),
          expiresAt: Math.max(o.observedAt, end),
        };
        this.touch(u);
        u.observations[i] = ended;
        this.enqueue({ op: 'observation', userId, obs: ended });
        changed = true;
      }
      if (changed) this.schedule(u, this.recompute(u, now, platform));
    }
    return changed ? this.acked() : DONE;
  }

  /** `reportMapped` for whichever user the account is linked to; false when none is. */
  reportAccount(account: AccountRef, mapped: MappedPresence, ttlMs: number): Ack | false {
    const userId = this.resolveAccount(account);
    return userId === undefined ? false : this.reportMapped(userId, account.platform, mapped, ttlMs);
  }

  /** A device heartbeat (`POST /v1/heartbeats`): creates the user on first sight. */
  heartbeat(userId: string, deviceId: string, status: Status, activity: Activity | null, ttlMs: number): Ack {
    this.ensureUser(userId);
    return this.report(userId, {
      platform: 'device',
      device: deviceId,
      ttlMs,
      state: {
        status,
        activity,
        customStatus: null,
        source: 'app',
        raw: activity === null ? { status } : { status, activity },
        label: activity === null ? `heartbeat ${status}` : `heartbeat ${status}/${activity}`,
      },
    });
  }

  setOverride(userId: string, input: OverrideInput): Ack {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    const now = this.clock.now();
    this.touch(u);
    u.override = { ...input, setAt: now };
    this.enqueue({ op: 'override', userId, override: u.override });
    this.schedule(u, this.recompute(u, now, 'override'));
    return this.acked();
  }

  /** Clears the override; resolves to false when there was none. */
  async clearOverride(userId: string): Promise<boolean> {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    if (u.override === null) return false;
    const now = this.clock.now();
    this.touch(u);
    u.override = null;
    this.enqueue({ op: 'override', userId, override: null });
    this.schedule(u, this.recompute(u, now, 'override'));
    await this.acked();
    return true;
  }

  // ---------------------------------------------------------------- reads

  get(userId: string): PresenceView | undefined {
    const u = this.users.get(userId);
    if (u === undefined) return undefined;
    const now = this.clock.now();
    this.catchUp(u, now);
    const shown = this.shown(u);
    return shown === null ? undefined : toPresence(shown, now, this.ladder);
  }

  /**
   * What reads show of a user: its state, or while its queued changes wait for a commit that
   * failed and is being retried, its last committed state (null: not created yet).
   */
  private shown(u: UserState): UserSnapshot | null {
    if (u.undo === null || this.failingSince === null) return u;
    return u.undo.created ? null : u.undo;
  }

  getMany(userIds: readonly string[]): { presence: Record<string, PresenceView>; unknown: string[] } {
    const now = this.clock.now();
    const presence: Record<string, PresenceView> = {};
    const unknown: string[] = [];
    for (const id of userIds) {
      const u = this.users.get(id);
      if (u !== undefined) this.catchUp(u, now);
      const shown = u === undefined ? null : this.shown(u);
      if (shown === null) {
        unknown.push(id);
        continue;
      }
      presence[id] = toPresence(shown, now, this.ladder);
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
      (memo.createdUsers < 0 || memo.createdUsers === this.createdUsers)
    )
      return memo.body;
    const userIds = typeof ids === 'string' ? ids.split(',') : ids;
    const parts: Buffer[] = [OPEN];
    let length = OPEN.length;
    const unknown = new Set<string>();
    const users: UserState[] = [];
    let until = Number.POSITIVE_INFINITY;
    // Each id once, so the object has no duplicate keys: known users carry the mark of this read.
    const mark = ++this.readMarks;
    for (const id of userIds) {
      const u = this.users.get(id);
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
      until = u.undo !== null && this.failingSince !== null ? now : Math.min(until, u.jsonUntil, u.dueAt);
    }
    const tail = Buffer.from(`},"unknown":${JSON.stringify([...unknown])}}`);
    parts.push(tail);
    const body = Buffer.concat(parts, length + tail.length);
    // A stale entry shows the list is asked for again; any other list must first be asked twice.
    if (typeof ids === 'string' && (memo !== undefined || this.batchMemo.admit(ids))) {
      const entry: BatchEntry = {
        body,
        until,
        createdUsers: unknown.size > 0 ? this.createdUsers : -1,
        validity: { stale: false },
      };
      if (this.batchMemo.set(ids, entry)) for (const u of users) u.watch(entry.validity);
    }
    return body;
  }

  /** The user's `"<id>":<presence>` member, or null while its creation waits for a commit. */
  private memberJson(u: UserState, now: number): Buffer | null {
    this.catchUp(u, now);
    if (u.undo !== null && this.failingSince !== null) {
      // Built afresh and not cached: the cache follows the user's current state.
      const shown = this.shown(u);
      return shown === null
        ? null
        : Buffer.from(`${JSON.stringify(u.userId)}:${JSON.stringify(toPresence(shown, now, this.ladder))}`);
    }
    if (u.json !== null && now < u.jsonUntil) return u.json;
    const fresh = u.json === null;
    u.json = Buffer.from(`${JSON.stringify(u.userId)}:${JSON.stringify(toPresence(u, now, this.ladder))}`);
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

  history(userId: string, query: HistoryQuery): TransitionRecord[] {
    this.flushForRead();
    return this.store.history(userId, query);
  }

  // ---------------------------------------------------------------- the reducer, applied

  /**
   * Reduces the user's state as of `at` and, when the answer differs from the last one, records a
   * change. Returns the next moment the answer could change.
   */
  private recompute(u: UserState, at: number, cause: string | null): number {
    u.invalidate();
    this.prune(u, at);
    const r = reduce(u.observations, u.override, at, this.ladder);
    const changed = changedFields(u, r);
    if (changed.length > 0) this.touch(u);
    u.source = r.source;
    if (changed.length > 0) {
      const previous: PresenceState = {
        status: u.status,
        activity: u.activity,
        customStatus: u.customStatus,
      };
      u.status = r.status;
      u.activity = r.activity;
      u.customStatus = r.customStatus;
      u.version += 1;
      this.enqueue({
        op: 'aggregate',
        userId: u.userId,
        aggregate: {
          status: r.status,
          activity: r.activity,
          customStatus: r.customStatus,
          source: r.source,
          version: u.version,
          lastActiveAt: u.lastActiveAt,
          updatedAt: at,
        },
      });
      this.enqueue({
        op: 'transition',
        transition: {
          userId: u.userId,
          version: u.version,
          at,
          fromStatus: previous.status,
          toStatus: r.status,
          fromActivity: previous.activity,
          toActivity: r.activity,
          source: r.source,
          platform: cause,
        },
      });
      this.queued.push({
        userId: u.userId,
        version: u.version,
        at,
        previous,
        current: r,
        changed,
        cause,
        explain: explain(r, u.observations, at),
        presence: this.sinks.listened ? toPresence(u, at, this.ladder, r) : null,
      });
    }
    return Math.min(nextCheckAt(u.observations, u.override, at), this.pruneAt(u));
  }

  /** Forgets device entries that have been expired for longer than the retention. */
  private prune(u: UserState, now: number): void {
    const limit = now - this.deviceRetentionMs;
    let kept: Observation[] | null = null;
    for (let i = 0; i < u.observations.length; i++) {
      const o = u.observations[i]!;
      const drop = o.device !== '' && o.expiresAt <= limit;
      if (drop && kept === null) kept = u.observations.slice(0, i);
      if (drop)
        this.enqueue({ op: 'observation-delete', userId: u.userId, platform: o.platform, device: o.device });
      else kept?.push(o);
    }
    if (kept !== null) {
      this.touch(u);
      u.observations = kept;
    }
  }

  private pruneAt(u: UserState): number {
    let at = Number.POSITIVE_INFINITY;
    for (const o of u.observations)
      if (o.device !== '') at = Math.min(at, o.expiresAt + this.deviceRetentionMs);
    return at;
  }

  // ---------------------------------------------------------------- the timing wheel

  /**
   * Applies every boundary of the user that has passed. Each change is recorded at the moment it
   * happened, also after downtime (online → idle → away of a fading signal, say). Reads call it
   * too, so an answer never lags the sweep.
   */
  private catchUp(u: UserState, now: number): void {
    if (u.dueAt > now) return;
    let next = u.dueAt;
    // dueAt is moved only afterwards, so an undo record taken on the way keeps the boundary.
    do next = this.recompute(u, next, null);
    while (next <= now);
    u.dueAt = Number.POSITIVE_INFINITY;
    this.schedule(u, next);
  }

  private schedule(u: UserState, at: number): void {
    if (!Number.isFinite(at) || at >= u.dueAt) return;
    u.dueAt = at;
    const bucket = Math.ceil(at / BUCKET_MS);
    const list = this.wheel.get(bucket);
    if (list === undefined) this.wheel.set(bucket, [u]);
    else list.push(u);
  }

  /**
   * Looks at every user whose boundary has passed: expiries become transitions (to offline and
   * stale when nothing live is left). Resolves to the number of users looked at.
   */
  sweep(): Promise<number> {
    this.sweeping ??= this.runSweep().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  private async runSweep(): Promise<number> {
    let looked = 0;
    for (;;) {
      const now = this.clock.now();
      const due = Math.floor(now / BUCKET_MS);
      const started = performance.now();
      let more = false;
      for (const [bucket, list] of this.wheel) {
        if (bucket > due) continue;
        while (list.length > 0) {
          const u = list.pop()!;
          if (u.deleted || u.dueAt > now) continue; // re-filed later, or gone
          this.catchUp(u, now);
          looked += 1;
          if ((looked & 63) === 0 && performance.now() - started > this.sweepBudgetMs) {
            more = true;
            break;
          }
        }
        if (list.length === 0) this.wheel.delete(bucket);
        if (more) break;
      }
      this.commitQueued(); // one short transaction per chunk
      if (!more || this.stopped) {
        this.stats.sweeps += 1;
        return looked;
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  // ---------------------------------------------------------------- durability

  private enqueue(op: WriteOp): void {
    this.ops.push(op);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => {
        this.flushScheduled = false;
        this.commitQueued();
      });
    }
  }

  /** Records the user's committed state before queued changes alter it (once per commit). */
  private touch(u: UserState): void {
    if (u.undo !== null) return;
    u.undo = new Undo(u, false);
    this.touched.push(u);
  }

  /** The promise that settles when everything queued so far is committed, or is refused. */
  private ack(): Ack {
    if (this.ops.length === 0 && this.waiters.length === 0) return DONE;
    if (this.pendingAck === null) {
      const ack = new Promise<void>((resolve, reject) => {
        this.waiters.push({ resolve, reject });
      });
      // A caller that drops the promise (a connector's fire-and-forget report) must not turn a
      // refused commit into an unhandled rejection; callers that await it still see the error.
      ack.catch(ignore);
      this.pendingAck = ack;
    }
    return this.pendingAck;
  }

  /**
   * The acknowledgement of a public write, taken before anything is committed. A full queue is
   * committed here, at the end of a whole write and never in its middle, so that a refused
   * commit rolls back whole writes only.
   */
  private acked(): Ack {
    const ack = this.ack();
    if (this.ops.length >= this.maxBatch) this.commitQueued();
    return ack;
  }

  /** Commits what is queued, unless a retry is already scheduled (the queue then joins it). */
  private commitQueued(): void {
    if (this.retryTimer === null) this.attempt();
  }

  /**
   * One commit of everything queued, in one transaction. Returns null when it is durable (or
   * nothing was queued), otherwise the fault; the queue is then kept for a retry (another
   * connection's lock, within `commitRetryMs`) or rolled back and its writes refused.
   */
  private attempt(): StoreFault | null {
    if (this.ops.length === 0 && this.queued.length === 0) {
      for (const w of this.takeWaiters()) w.resolve();
      return null;
    }
    const ops = this.ops;
    const changes = this.queued;
    this.ops = [];
    this.queued = [];
    try {
      this.store.write(
        ops,
        changes.length === 0 || !this.sinks.staging ? undefined : (tx) => this.sinks.stage(tx, changes),
      );
    } catch (error) {
      // Back in front of anything queued meanwhile (a sink could have), in order.
      this.ops = ops.concat(this.ops);
      this.queued = changes.concat(this.queued);
      return this.failed(error);
    }
    const waiters = this.takeWaiters();
    for (const u of this.touched) u.undo = null;
    this.touched = [];
    this.endRetries();
    this.healthy();
    for (const w of waiters) w.resolve();
    this.stats.changesCommitted += changes.length;
    if (changes.length > 0) this.sinks.committed(changes);
    return null;
  }

  private failed(error: unknown): StoreFault {
    const fault = this.noteFault(error);
    const now = this.clock.now();
    this.failingSince ??= now;
    if (fault.transient && !this.stopped && now - this.failingSince < this.commitRetryMs) {
      if (this.retryTimer === null) {
        this.retryDelayMs = Math.min(Math.max(this.retryDelayMs * 2, RETRY_FIRST_MS), RETRY_MAX_MS);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = null;
          this.attempt();
        }, this.retryDelayMs);
        this.retryTimer.unref();
      }
      return fault;
    }
    this.rollBack(fault);
    return fault;
  }

  /**
   * Forgets everything queued: each touched user gets its committed state back, users the queue
   * created are gone again, and every waiting write is refused with the fault.
   */
  private rollBack(fault: StoreFault): void {
    const touched = this.touched;
    const waiters = this.takeWaiters();
    const dropped = this.queued.length;
    this.touched = [];
    this.ops = [];
    this.queued = [];
    this.endRetries();
    for (const u of touched) this.restore(u);
    // Refused writes are worth a warning; the sweep's expiries, found again every second while
    // the fault lasts, only at debug (the fault itself was logged once).
    const summary = { reason: fault.reason, users: touched.length, changes: dropped, writes: waiters.length };
    if (waiters.length > 0) this.log.warn(summary, 'rolled back changes the store could not commit');
    else this.log.debug(summary, 'rolled back changes the store could not commit');
    const refusal = new StoreUnavailableError(fault);
    for (const w of waiters) w.reject(refusal);
  }

  private restore(u: UserState): void {
    const s = u.undo!;
    u.undo = null;
    u.invalidate();
    if (s.created) {
      if (this.users.get(u.userId) === u) this.users.delete(u.userId);
      u.deleted = true;
      this.refreshDirty.delete(u);
      this.createdUsers += 1; // remembered batch bodies that listed it are stale
      return;
    }
    u.observations = s.observations;
    u.override = s.override;
    u.status = s.status;
    u.activity = s.activity;
    u.customStatus = s.customStatus;
    u.source = s.source;
    u.version = s.version;
    u.lastActiveAt = s.lastActiveAt;
    // The earlier of the two: a boundary the queued change handled is handled again (and its
    // change queued again), one a refresh brought forward is kept.
    const due = Math.min(s.dueAt, u.dueAt);
    u.dueAt = Number.POSITIVE_INFINITY;
    this.schedule(u, due);
  }

  private endRetries(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.retryDelayMs = 0;
    this.failingSince = null;
  }

  private noteFault(error: unknown): StoreFault {
    const fault = classifyStoreError(error, this.clock.now());
    if (this.fault?.reason === fault.reason) return this.fault;
    // Said once per cause, not once per attempt.
    this.log.error(
      { err: error, reason: fault.reason },
      'the store cannot commit; writes answer 503 until it can',
    );
    this.fault = fault;
    return fault;
  }

  private healthy(): void {
    if (this.fault === null) return;
    this.log.info({ reason: this.fault.reason }, 'the store commits again');
    this.fault = null;
  }

  /**
   * Runs a synchronous store call of a write outside the group commit (users, accounts). A
   * SQLite failure is noted like a failed commit and refused with 503; anything else is a bug.
   */
  private guarded<T>(call: () => T): T {
    let result: T;
    try {
      result = call();
    } catch (error) {
      if (!isStoreFault(error)) throw error;
      throw new StoreUnavailableError(this.noteFault(error));
    }
    return result;
  }

  /** Before a read from the store: commit what is queued if that can be done now, else read what is committed. */
  private flushForRead(): void {
    if (this.retryTimer === null) this.attempt();
  }

  /**
   * Commits what is queued now, in one transaction. Throws `StoreUnavailableError` when the
   * store refuses it (the queue is then retried or rolled back, as for a group commit).
   */
  flushSync(): void {
    const fault = this.attempt();
    if (fault !== null) throw new StoreUnavailableError(fault);
  }

  /**
   * Why the store cannot commit, or null when it can. While it cannot, and no commit is being
   * retried anyway, a probe commit is tried at most every `probeIntervalMs`, so that readiness
   * comes back once the fault is gone even when no write arrives to find out.
   */
  storeFault(): StoreFault | null {
    if (this.fault === null || this.retryTimer !== null) return this.fault;
    const now = this.clock.now();
    if (now - this.lastProbeAt >= this.probeIntervalMs) {
      this.lastProbeAt = now;
      try {
        this.store.probe(now);
        this.healthy();
      } catch (error) {
        this.noteFault(error);
      }
    }
    return this.fault;
  }

  private takeWaiters(): Waiter[] {
    const waiters = this.waiters;
    this.waiters = [];
    this.pendingAck = null;
    return waiters;
  }

  /**
   * Writes refreshed times (observations' observed_at/expires_at, last_active_at) of the users
   * refreshed since the last run, a chunk per transaction, yielding between chunks.
   */
  async persistRefreshes(chunk = 250): Promise<number> {
    let written = 0;
    while (this.refreshDirty.size > 0) {
      // Changes first, then times. While the store fails, the times wait in memory for a later
      // run: they were acknowledged as refreshes, which never waited for a commit.
      if (this.retryTimer !== null || this.attempt() !== null) return written;
      const ops: WriteOp[] = [];
      for (const u of this.refreshDirty) {
        this.refreshDirty.delete(u);
        u.refreshDirty = false;
        if (u.deleted) continue;
        ops.push({
          op: 'refresh',
          userId: u.userId,
          observations: u.observations,
          lastActiveAt: u.lastActiveAt,
        });
        if (ops.length >= chunk) break;
      }
      try {
        this.store.write(ops);
        this.healthy();
      } catch (error) {
        this.noteFault(error);
        for (const op of ops) {
          const u = op.op === 'refresh' ? this.users.get(op.userId) : undefined;
          if (u !== undefined && !u.refreshDirty) {
            u.refreshDirty = true;
            this.refreshDirty.add(u);
          }
        }
        return written;
      }
      written += ops.length;
      if (this.refreshDirty.size > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    return written;
  }
}
