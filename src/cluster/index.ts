/**
 * @module cluster
 * Several nodes sharing their changes through Redis (CONTRACT §10, issue #16). Every node keeps
 * the whole presence state in memory and answers reads from it; every committed change goes to
 * the shared change log (cluster/appender.ts), and every node follows that log
 * (cluster/follower.ts), taking other nodes' changes into its memory and feeding its stream hub
 * with all of them at the log's positions. The version of a change is decided by the durable
 * store's conditional write (PostgreSQL), not here.
 *
 * Expiries are decided once, in Redis (cluster/expiry.ts): every observation and its expiry is
 * kept there, every node runs the shared sweep, and no node's own timing wheel ends one.
 *
 * Users, linked accounts and privacy other nodes write are followed apart from the log, through
 * PostgreSQL's announcements at commit (cluster/row-follower.ts, wired by main.ts).
 */

import { randomBytes } from 'node:crypto';

import type { PresenceEngine } from '../aggregator/engine';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import { classifyStoreError, type StoreFault } from '../store/faults';
import { RedisHotState, type LogPosition } from '../store/redis';
import type { ExtraGauges } from '../http/metrics';
import type { Timers } from '../stream/timers';
import { Appender, ChangeLogUnavailableError } from './appender';
import { ExpiryKeeper, type ExpiryStats } from './expiry';
import { Follower, type PublishTarget } from './follower';

export { Appender, ChangeLogUnavailableError } from './appender';
export { Follower } from './follower';
export { ExpiryKeeper, type ExpiryStats } from './expiry';

export interface ClusterOptions {
  /** `PRESENCE_REDIS_URL`. */
  readonly url: string;
  /** `PRESENCE_REDIS_PREFIX` (default `presence:`). */
  readonly prefix?: string;
  readonly clock: Clock;
  readonly log: Log;
  /** This node's id in the log (default: random per start). */
  readonly node?: string;
  /** How long one wait of the follower on Redis lasts. */
  readonly blockMs?: number;
  /** `PRESENCE_DEVICE_GRACE_MS`: how long Redis keeps a held connection's entry past a renewal. */
  readonly deviceGraceMs?: number;
  /** The expiry keeper's periods (tests may shorten them; see cluster/expiry.ts). */
  readonly expiryFlushMs?: number;
  readonly sweepMs?: number;
  /** The expiry keeper's timers (tests drive them with their fake clock). */
  readonly timers?: Timers;
  /** Change log retention (tests shorten it). */
  readonly logMinCount?: number;
  readonly logMinAgeMs?: number;
}

export class Cluster {
  readonly node: string;
  private appender: Appender | null = null;
  private follower: Follower | null = null;
  private engine: PresenceEngine | null = null;
  private from: LogPosition | null = null;
  private expiry: ExpiryKeeper | null = null;
  /** Settles once the expiry keeper has seeded Redis and runs (after `start`). */
  ready: Promise<void> = Promise.resolve();
  private closed: Promise<void> | null = null;

  private constructor(
    readonly hot: RedisHotState,
    private readonly o: ClusterOptions,
  ) {
    this.node = o.node ?? randomBytes(6).toString('hex');
  }

  /** Connects to Redis (failing fast with `RedisUnavailableError`, never naming the password). */
  static async open(o: ClusterOptions): Promise<Cluster> {
    const hot = await RedisHotState.open({
      url: o.url,
      prefix: o.prefix,
      clock: o.clock,
      ...(o.logMinCount === undefined ? {} : { logMinCount: o.logMinCount }),
      ...(o.logMinAgeMs === undefined ? {} : { logMinAgeMs: o.logMinAgeMs }),
    });
    return new Cluster(hot, o);
  }

  /**
   * The order at start: `attach(engine)` before the engine commits anything (its first sweep),
   * `prepare()` before it loads (so that no change committed after the load is missed), then
   * `start(stream)` once the stream exists.
   *
   * `attach`: the engine's commits append to the log (and are refused while Redis is down), its
   * deletions too; from here on the engine's expiries are decided in Redis (cluster/expiry.ts).
   */
  attach(engine: PresenceEngine): void {
    this.expiry = new ExpiryKeeper({
      hot: this.hot,
      engine,
      clock: this.o.clock,
      log: this.o.log,
      ...(this.o.deviceGraceMs === undefined ? {} : { graceMs: this.o.deviceGraceMs }),
      ...(this.o.expiryFlushMs === undefined ? {} : { flushMs: this.o.expiryFlushMs }),
      ...(this.o.sweepMs === undefined ? {} : { sweepMs: this.o.sweepMs }),
      ...(this.o.timers === undefined ? {} : { timers: this.o.timers }),
    });
    const appender = new Appender(this.hot, this.node, this.o.log);
    this.appender = appender;
    this.engine = engine;
    engine.changes.add(appender);
    engine.onUserDelete({
      stage: () => appender.check(),
      committed: (userId) => appender.deleted(userId),
    });
  }

  /** Reads where the log stands now: the follower starts there. */
  async prepare(): Promise<void> {
    this.from = await this.hot.logHead();
  }

  /**
   * Follows the log: other nodes' changes into the engine, every change into `stream`; and
   * starts the expiry keeper (`ready` settles once it has seeded Redis from the loaded memory).
   */
  start(stream: PublishTarget): void {
    if (this.engine === null || this.from === null) throw new Error('attach() and prepare() first');
    this.follower = new Follower({
      hot: this.hot,
      from: this.from,
      node: this.node,
      engine: this.engine,
      stream,
      log: this.o.log,
      ...(this.o.blockMs === undefined ? {} : { blockMs: this.o.blockMs }),
    });
    this.follower.start();
    this.ready = this.expiry!.start();
  }

  /**
   * The device connections held on this node (stream/devices.ts `DeviceLease`): their expiry in
   * Redis is renewed while held. Null before `attach`.
   */
  get deviceLease(): ExpiryKeeper | null {
    return this.expiry;
  }

  /** Why this node cannot take writes now (Redis down), or null; /readyz shows it. */
  fault(): StoreFault | null {
    if (this.hot.connected && this.appender?.failing !== true) return null;
    return classifyStoreError(new ChangeLogUnavailableError(), this.o.clock.now());
  }

  /** What tests and /metrics read. */
  get stats(): {
    appended: number;
    backlog: number;
    applied: number;
    expiry: ExpiryStats | null;
    roundTripsPerRefresh: number;
  } {
    return {
      appended: this.appender?.appended ?? 0,
      backlog: this.appender?.backlog ?? 0,
      applied: this.follower?.applied ?? 0,
      expiry: this.expiry?.stats ?? null,
      roundTripsPerRefresh: this.expiry?.roundTripsPerRefresh ?? 0,
    };
  }

  /**
   * What /metrics shows of the shared expiries, read at scrape time. Round trips per refresh
   * heartbeat are `presence_cluster_expiry_round_trips_total / presence_cluster_refresh_heartbeats_total`
   * (well below 1: a node sends its refreshes in one call every 250 ms, whatever their number).
   */
  metrics(): ExtraGauges {
    const s = (): ExpiryStats | null => this.expiry?.stats ?? null;
    return {
      presence_cluster_refresh_heartbeats_total: {
        help: 'Heartbeats that only moved an expiry (refreshes), taken by this node',
        read: () => s()?.refreshes ?? 0,
        counter: true,
      },
      presence_cluster_expiry_round_trips_total: {
        help: 'Redis round trips that sent refreshes (one per batch)',
        read: () => s()?.refreshRoundTrips ?? 0,
        counter: true,
      },
      presence_cluster_observation_writes_total: {
        help: 'Observations written whole to Redis (new, changed, ended, or gone there)',
        read: () => s()?.writes ?? 0,
        counter: true,
      },
      presence_cluster_expiries_ended_total: {
        help: "Expiries this node's Redis sweeps ended (one node ends each)",
        read: () => s()?.ended ?? 0,
        counter: true,
      },
      presence_cluster_hot_state_losses_total: {
        help: 'Times Redis was found to have lost the hot state (restarted empty) and was seeded again',
        read: () => s()?.losses ?? 0,
        counter: true,
      },
    };
  }

  /** The follower's position (tests wait for it to pass an offset). */
  get followed(): Follower | null {
    return this.follower;
  }

  /** Lands the appends still queued (bounded), stops following, closes the connections. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await this.ready.catch(() => undefined);
      await this.expiry?.stop();
      await this.appender?.stop();
      this.follower?.halt();
      await this.hot.close();
      await this.follower?.done;
    })();
    return this.closed;
  }
}
