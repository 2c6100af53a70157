/**
 * @module store/redis/hot-state
 * The hot state several nodes share in Redis: live observations and their expiries, aggregates
 * and their versions, the change log, and the generation that tells a node Redis lost it all.
 * Values (observations, aggregates, changes) are strings the caller serialized; this module
 * does not read them. Every method is one round trip, atomic on the Redis side.
 */

import { randomUUID } from 'node:crypto';

import type Redis from 'ioredis';

import type { Clock } from '../../core/clock';

import {
  closeRedis,
  describeRedisTarget,
  guardRedis,
  openRedis,
  RedisUnavailableError,
  type RedisOptions,
} from './client';
import { SCRIPTS, type ScriptName } from './scripts';

/** The change log keeps whichever is more: the last two minutes, or the last 100,000 changes. */
export const LOG_MIN_AGE_MS = 120_000;
export const LOG_MIN_COUNT = 100_000;
/** How many due observations one sweep call takes at most. */
export const SWEEP_LIMIT = 1_000;

export interface HotStateOptions extends RedisOptions {
  /** Prefix of every key (default `presence:`), so several deployments can share one Redis. */
  readonly prefix?: string;
  readonly clock: Clock;
  readonly logMinAgeMs?: number;
  readonly logMinCount?: number;
  /** The client name of the follower's connection (CLIENT LIST), if one is wanted. */
  readonly followerName?: string;
}

/**
 * A place in the change log: the epoch it belongs to and an entry id in it. An entry's id is
 * `<offset>-0`, its offset being the number of changes appended before it plus one, so a stream
 * position `<epoch>:<offset>` (CONTRACT §8) and a log position are one and the same.
 */
export interface LogPosition {
  readonly epoch: string;
  readonly id: string;
}

/** The log position of a stream offset (0: before the first change). */
export function logPositionAt(epoch: string, offset: number): LogPosition {
  return { epoch, id: `${offset}-0` };
}

/** The offset of a log entry id (`<offset>-0`). */
export function offsetOfId(id: string): number {
  return Number(id.slice(0, id.indexOf('-')));
}

export interface LogEntry {
  readonly id: string;
  /** The entry's offset in its epoch (its id's first part). */
  readonly offset: number;
  readonly userId: string;
  readonly version: number;
  readonly change: string;
}

/** The log after a position, or `recovered: false` when it cannot be given whole. */
export type LogRead =
  | { readonly recovered: true; readonly epoch: string; readonly entries: LogEntry[] }
  | { readonly recovered: false; readonly epoch: string | null };

export type BumpResult =
  | { readonly ok: true; readonly position: LogPosition }
  | { readonly ok: false; readonly storedVersion: number };

/** An append: where it landed, or `duplicate` when that version was already appended. */
export type AppendResult =
  | { readonly appended: true; readonly position: LogPosition }
  | { readonly appended: false; readonly duplicate: true };

export interface ExpiredObservation {
  readonly userId: string;
  readonly source: string;
  /** The observation as it was stored (null if its hash field was already gone). */
  readonly observation: string | null;
}

export interface ObservationRef {
  readonly userId: string;
  readonly source: string;
}

export interface ObservationWrite extends ObservationRef {
  readonly observation: string;
  readonly expiresAt: number;
}

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;

export class RedisHotState {
  private readonly p: string;
  private readonly target: string;
  private readonly logMinAgeMs: number;
  private readonly logMinCount: number;
  /** The generation this node last saw; a different one means Redis lost the state meanwhile. */
  private knownGeneration: string | undefined;
  /** The connection of `follow`'s blocking reads, opened on first use. */
  private blocking: Promise<Redis> | undefined;
  /** Set by `close`: a follow still running then must not open the blocking connection again. */
  private closed = false;

  private constructor(
    readonly client: Redis,
    private readonly options: HotStateOptions,
  ) {
    this.p = options.prefix ?? 'presence:';
    this.target = describeRedisTarget(options.url);
    this.logMinAgeMs = options.logMinAgeMs ?? LOG_MIN_AGE_MS;
    this.logMinCount = Math.max(1, options.logMinCount ?? LOG_MIN_COUNT);
    for (const [name, def] of Object.entries(SCRIPTS)) client.defineCommand(name, def);
  }

  /** Connects (failing fast with `RedisUnavailableError`). */
  static async open(options: HotStateOptions): Promise<RedisHotState> {
    return new RedisHotState(await openRedis(options), options);
  }

  /**
   * Whether the connection is up now (no round trip): a write that must reach the change log
   * checks it before committing anything, so a Redis outage refuses it up front.
   */
  get connected(): boolean {
    return this.client.status === 'ready';
  }

  /** Closes the connection; when it is down, stops reconnecting too. */
  async close(): Promise<void> {
    this.closed = true;
    const blocking = this.blocking;
    this.blocking = undefined;
    if (blocking) await blocking.then((b) => b.disconnect()).catch(() => {});
    await closeRedis(this.client);
  }

  // ---- keys

  private get genKey(): string {
    return `${this.p}gen`;
  }
  private get expKey(): string {
    return `${this.p}exp`;
  }
  private get logKey(): string {
    return `${this.p}log`;
  }
  private get trimmedKey(): string {
    return `${this.p}log:trimmed`;
  }
  private get offsetKey(): string {
    return `${this.p}log:offset`;
  }
  private obsKey(userId: string): string {
    return `${this.p}obs:${userId}`;
  }
  private aggKey(userId: string): string {
    return `${this.p}agg:${userId}`;
  }
  private static member(userId: string, source: string): string {
    return JSON.stringify([userId, source]);
  }

  private async run(name: ScriptName, ...args: (string | number)[]): Promise<unknown> {
    const fn = (this.client as unknown as Record<ScriptName, ScriptCall>)[name];
    return this.guard(() => fn.apply(this.client, args));
  }

  private guard<T>(f: () => Promise<T>): Promise<T> {
    return guardRedis(this.target, f);
  }

  // ---- empty-Redis detection

  /**
   * Reads (or creates) the generation: `lost` is true when it is not the one this node saw
   * before, i.e. Redis lost the hot state (restarted empty) since; every node learns it once.
   * The first call answers `fresh`: whether this call found Redis without state and started it.
   */
  async checkGeneration(): Promise<{ generation: string; fresh: boolean; lost: boolean }> {
    const [created, generation] = (await this.run('hsEnsureGeneration', this.genKey, randomUUID())) as [
      number,
      string,
    ];
    const lost = this.knownGeneration !== undefined && this.knownGeneration !== generation;
    this.knownGeneration = generation;
    return { generation, fresh: created === 1, lost };
  }

  // ---- observations

  async upsertObservation(
    userId: string,
    source: string,
    observation: string,
    expiresAt: number,
  ): Promise<void> {
    await this.run(
      'hsUpsertObservation',
      this.obsKey(userId),
      this.expKey,
      source,
      observation,
      expiresAt,
      RedisHotState.member(userId, source),
    );
  }

  /** `upsertObservation` for many observations, in one round trip. */
  async upsertObservations(list: readonly ObservationWrite[]): Promise<void> {
    if (list.length === 0) return;
    await this.run('hsUpsertObservations', ...this.observationArgs(list));
  }

  /**
   * Adds the observations Redis does not hold, with their expiries, and leaves those it holds
   * as they are (their expiries may have moved on another node). Returns how many were added.
   */
  async seedObservations(list: readonly ObservationWrite[]): Promise<number> {
    if (list.length === 0) return 0;
    return (await this.run('hsSeedObservations', ...this.observationArgs(list))) as number;
  }

  private observationArgs(list: readonly ObservationWrite[]): (string | number)[] {
    const args: (string | number)[] = [this.expKey, `${this.p}obs:`];
    for (const w of list)
      args.push(w.userId, w.source, w.observation, w.expiresAt, RedisHotState.member(w.userId, w.source));
    return args;
  }

  /** Removes one observation and its expiry; true if there was one. */
  async removeObservation(userId: string, source: string): Promise<boolean> {
    const n = (await this.run(
      'hsRemoveObservation',
      this.obsKey(userId),
      this.expKey,
      source,
      RedisHotState.member(userId, source),
    )) as number;
    return n === 1;
  }

  /** A user's observations, source → observation. */
  async observations(userId: string): Promise<Map<string, string>> {
    const h = await this.guard(() => this.client.hgetall(this.obsKey(userId)));
    return new Map(Object.entries(h));
  }

  /** An observation's expiry (ms), or null if there is none. */
  async expiryOf(userId: string, source: string): Promise<number | null> {
    const s = await this.guard(() => this.client.zscore(this.expKey, RedisHotState.member(userId, source)));
    return s === null ? null : Number(s);
  }

  /**
   * Moves many expiries later in one call (the node batches its heartbeats' refreshes). An
   * expiry never moves earlier; observations already gone are not brought back but returned,
   * so the caller can write them whole again.
   */
  async refreshExpiries(
    refreshes: ReadonlyArray<ObservationRef & { readonly expiresAt: number }>,
  ): Promise<ObservationRef[]> {
    if (refreshes.length === 0) return [];
    const args: (string | number)[] = [this.expKey];
    for (const r of refreshes) args.push(RedisHotState.member(r.userId, r.source), r.expiresAt);
    const missing = (await this.run('hsRefreshExpiries', ...args)) as string[];
    return missing.map(parseMember);
  }

  /**
   * Takes the observations due by `dueBy` (default now; at most `limit`), removing each with
   * its expiry. Any node may sweep; two sweeps at once never both take the same observation.
   */
  async sweep(limit = SWEEP_LIMIT, dueBy = this.options.clock.now()): Promise<ExpiredObservation[]> {
    const flat = (await this.run('hsSweep', this.expKey, dueBy, limit, `${this.p}obs:`)) as (string | null)[];
    const out: ExpiredObservation[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      out.push({ ...parseMember(flat[i] as string), observation: flat[i + 1] ?? null });
    }
    return out;
  }

  // ---- aggregates and the change log

  async aggregate(userId: string): Promise<{ version: number; aggregate: string } | null> {
    const [v, a] = await this.guard(() => this.client.hmget(this.aggKey(userId), 'v', 'a'));
    if (v === null || v === undefined || a === null || a === undefined) return null;
    return { version: Number(v), aggregate: a };
  }

  /**
   * Writes `aggregate` as version `version` only if the stored version is `version - 1` (none
   * counts as 0), appending `change` to the change log in the same step. Otherwise nothing is
   * written and the stored version is returned, so the caller reads again and retries. A call
   * that fails with `RedisUnavailableError` may or may not have landed: read before retrying.
   */
  async bumpAggregate(
    userId: string,
    version: number,
    aggregate: string,
    change: string,
  ): Promise<BumpResult> {
    const r = (await this.run('hsBumpAggregate', ...this.appendArgs(userId, version, aggregate, change))) as [
      number,
      number | string,
      string?,
    ];
    if (r[0] === 1) return { ok: true, position: logPositionAt(r[2] as string, Number(r[1])) };
    return { ok: false, storedVersion: Number(r[1]) };
  }

  /**
   * Appends a change whose version was decided elsewhere (PostgreSQL's conditional write, in
   * several-node mode): never refused for its version. The aggregate is kept when it is newer
   * than the stored one. A version equal to the stored one is a repeat (an append retried after
   * a failure that had landed): nothing is appended then. Like `bumpAggregate`, a call failing
   * with `RedisUnavailableError` may have landed; calling it again is safe.
   */
  async appendChange(
    userId: string,
    version: number,
    aggregate: string,
    change: string,
  ): Promise<AppendResult> {
    const r = (await this.run('hsAppendChange', ...this.appendArgs(userId, version, aggregate, change))) as [
      number,
      number | string,
      string?,
    ];
    if (r[0] === 1) return { appended: true, position: logPositionAt(r[2] as string, Number(r[1])) };
    return { appended: false, duplicate: true };
  }

  /**
   * Appends a user's deletion: the user's aggregate goes, and an entry that takes no offset
   * (not a presence change) tells the other nodes. Safe to call again after a failure.
   */
  async appendDeletion(userId: string, change: string): Promise<void> {
    await this.run('hsAppendChange', ...this.appendArgs(userId, 0, '', change));
  }

  private appendArgs(
    userId: string,
    version: number,
    aggregate: string,
    change: string,
  ): (string | number)[] {
    return [
      this.aggKey(userId),
      this.logKey,
      this.genKey,
      this.trimmedKey,
      this.offsetKey,
      userId,
      version,
      aggregate,
      change,
      randomUUID(),
      this.logMinAgeMs,
      this.logMinCount,
    ];
  }

  /** Sets an aggregate only over an older version or none, without a change (a rebuild). */
  async seedAggregate(userId: string, version: number, aggregate: string): Promise<boolean> {
    return ((await this.run('hsSeedAggregate', this.aggKey(userId), version, aggregate)) as number) === 1;
  }

  /** The newest position of the log (where a new subscriber starts). */
  async logHead(): Promise<LogPosition> {
    const [epoch, id] = (await this.run('hsLogHead', this.logKey, this.genKey, randomUUID())) as [
      string,
      string,
    ];
    return { epoch, id };
  }

  /** Up to `count` changes after `from`, or `recovered: false` if some after it are lost. */
  async readLog(from: LogPosition, count = 1_000): Promise<LogRead> {
    const r = (await this.run(
      'hsReadLog',
      this.logKey,
      this.genKey,
      this.trimmedKey,
      from.epoch,
      from.id,
      count,
    )) as [number, string | null, RawEntry[]?];
    if (r[0] !== 1) return { recovered: false, epoch: r[1] };
    return { recovered: true, epoch: r[1] as string, entries: (r[2] ?? []).map(parseEntry) };
  }

  /**
   * Like `readLog`, but when nothing follows `from` yet, waits up to `blockMs` for a change
   * (`XREAD BLOCK` on a connection of its own, opened on first use) and reads again; a change
   * appended meanwhile wakes it at once. One follow at a time per store: a node runs one
   * follower and fans the changes out to its subscribers.
   */
  async follow(from: LogPosition, blockMs: number, count = 1_000): Promise<LogRead> {
    const first = await this.readLog(from, count);
    if (!first.recovered || first.entries.length > 0) return first;
    const blocking = await this.blockingClient();
    await this.guard(() =>
      blocking.xread('COUNT', 1, 'BLOCK', Math.max(1, blockMs), 'STREAMS', this.logKey, from.id),
    );
    return this.readLog(from, count);
  }

  private blockingClient(): Promise<Redis> {
    if (this.closed) return Promise.reject(new RedisUnavailableError('the hot state is closed'));
    if (this.blocking === undefined) {
      const opening = openRedis(this.options, {
        forBlocking: true,
        name: this.options.followerName,
      });
      this.blocking = opening;
      opening.catch(() => {
        if (this.blocking === opening) this.blocking = undefined;
      });
    }
    return this.blocking;
  }

  /** How many changes the log holds now. */
  async logLength(): Promise<number> {
    return this.guard(() => this.client.xlen(this.logKey));
  }
}

type RawEntry = [string, string[]];

function parseEntry([id, fields]: RawEntry): LogEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  return {
    id,
    offset: offsetOfId(id),
    userId: f.get('u') ?? '',
    version: Number(f.get('v')),
    change: f.get('c') ?? '',
  };
}

function parseMember(m: string): ObservationRef {
  const [userId, source] = JSON.parse(m) as [string, string];
  return { userId, source };
}
