/**
 * @module cluster/expiry
 * Time decided once, in Redis (CONTRACT §10, issue #16). With several nodes, the engine's own
 * timing wheel ends no observation (aggregator/expiry-hold.ts); this module keeps every live
 * observation and its expiry in Redis (the hash and sorted set of store/redis/hot-state.ts) and
 * runs the shared sweep:
 *
 * - writes: every observation the engine keeps (new, changed, ended) is written to Redis right
 *   after it is queued, many in one round trip (`upsertObservations`);
 * - refreshes: a heartbeat that changes nothing only moves an expiry; those are gathered and sent
 *   every `flushMs` in one `refreshExpiries` (never a round trip per heartbeat; /metrics counts
 *   round trips per refresh). One Redis says is gone (swept meanwhile) is written whole again if
 *   this node still holds it;
 * - the sweep, every `sweepMs` on every node: takes what is due by now − `flushMs` − `slackMs`
 *   (the margin lets a refresh still buffered on some node land first, so it never makes a false
 *   offline), and ends each taken observation in the engine here, committed like any change
 *   (PostgreSQL's conditional version write decides; the appender tells the others). The script
 *   gives one observation to one sweeper only: one transition, one webhook per expiry. A taken
 *   observation this node knows to be fresher (a refresh not yet sent) is written back instead;
 * - device connections held here (stream/devices.ts): their expiry in Redis is kept at
 *   now + grace, renewed for all of them in one call every `leaseMs`, whatever the long hold in
 *   memory says; a SIGKILLed node stops renewing, so its devices go offline one grace later
 *   through the others' sweeps, and no node's memory brings them back (a connection entry's
 *   expiry in Redis is never more than one grace past the last renewal);
 * - Redis coming back empty (`checkGeneration` says `lost`, checked every `leaseMs`): this node
 *   seeds Redis again from memory (aggregates with `seedAggregate`, live observations only where
 *   Redis holds none, see `seed`). An observation missing from Redis never means offline by itself:
 *   a seeded expiry is at least one of the observation's own TTLs from the rebuild.
 */

import type { ExpiryHold, PresenceEngine } from '../aggregator/engine';
import { isEnded, sourceOf } from '../aggregator/expiry-hold';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type { Observation } from '../core/presence';
import { SWEEP_LIMIT, type ObservationWrite, type RedisHotState } from '../store/redis';
import { CONNECTION_LABEL, DEFAULT_GRACE_MS } from '../stream/devices';
import { systemTimers, type Timer, type Timers } from '../stream/timers';

/** What the keeper needs of the engine. */
export type ExpiryEngine = Pick<
  PresenceEngine,
  'holdExpiries' | 'observation' | 'liveObservations' | 'expire' | 'state' | 'userIds'
>;

export interface ExpiryOptions {
  readonly hot: RedisHotState;
  readonly engine: ExpiryEngine;
  readonly clock: Clock;
  readonly log: Log;
  /** `PRESENCE_DEVICE_GRACE_MS`: a held connection's expiry in Redis is now + this. */
  readonly graceMs?: number;
  /** How often gathered refreshes are sent (default 250 ms). */
  readonly flushMs?: number;
  /** How often this node sweeps (default 200 ms). */
  readonly sweepMs?: number;
  /** The sweep's margin beyond `flushMs` (default 250 ms). */
  readonly slackMs?: number;
  /** How often held connections are renewed and the generation checked (default 1 s). */
  readonly leaseMs?: number;
  /**
   * The periodic work's timers (default real ones): tests pass timers driven by their fake
   * clock, so a renewal or a sweep happens at a known time on that clock, never late because the
   * machine was busy (a late renewal is a lost lease).
   */
  readonly timers?: Timers;
}

/** Counters for tests and /metrics. */
export interface ExpiryStats {
  /** Refresh heartbeats gathered, and the round trips that sent them. */
  refreshes: number;
  refreshRoundTrips: number;
  /** Observations written, and the round trips. */
  writes: number;
  writeRoundTrips: number;
  /** Observations this node's sweeps took, and those it ended in the engine. */
  swept: number;
  ended: number;
  /** Lease renewals (one round trip each), observations seeded after a loss or at start. */
  renewals: number;
  seeded: number;
  /** Times Redis was found to have lost its state. */
  losses: number;
}

const SEED_CHUNK = 500;
const SEED_PARALLEL = 64;
const deviceKey = (userId: string, deviceId: string): string => `${userId}\u0000${deviceId}`;
const writeKey = (userId: string, source: string): string => `${userId}\u0000${source}`;

function isConnection(o: Observation): boolean {
  return o.platform === 'device' && o.label.startsWith(`${CONNECTION_LABEL} `);
}

export class ExpiryKeeper implements ExpiryHold {
  readonly stats: ExpiryStats = {
    refreshes: 0,
    refreshRoundTrips: 0,
    writes: 0,
    writeRoundTrips: 0,
    swept: 0,
    ended: 0,
    renewals: 0,
    seeded: 0,
    losses: 0,
  };
  private readonly graceMs: number;
  private readonly flushMs: number;
  private readonly sweepMs: number;
  private readonly slackMs: number;
  private readonly leaseMs: number;
  private writes = new Map<string, ObservationWrite>();
  private refreshes = new Map<string, { userId: string; source: string; expiresAt: number }>();
  /** Devices a connection on this node holds. */
  private readonly leases = new Map<string, { userId: string; source: string }>();
  private writeScheduled = false;
  private readonly clockTimers: Timers;
  private timers: Timer[] = [];
  /** The periodic task of each kind now running (one at a time each), and the write in flight. */
  private running: Record<'flush' | 'sweep' | 'lease' | 'write', Promise<void> | null> = {
    flush: null,
    sweep: null,
    lease: null,
    write: null,
  };
  private stopped = false;
  /** Set while a Redis call of this module fails (logged once per outage). */
  failing = false;

  constructor(private readonly o: ExpiryOptions) {
    this.graceMs = o.graceMs ?? DEFAULT_GRACE_MS;
    this.flushMs = o.flushMs ?? 250;
    this.sweepMs = o.sweepMs ?? 200;
    this.slackMs = o.slackMs ?? 250;
    this.leaseMs = o.leaseMs ?? 1_000;
    this.clockTimers = o.timers ?? systemTimers;
    o.engine.holdExpiries(this);
  }

  /** Round trips per refresh heartbeat so far (0 before any). */
  get roundTripsPerRefresh(): number {
    return this.stats.refreshes === 0 ? 0 : this.stats.refreshRoundTrips / this.stats.refreshes;
  }

  // ---- what the engine tells

  observed(userId: string, o: Observation, kind: 'write' | 'refresh'): void {
    const source = sourceOf(o);
    const key = writeKey(userId, source);
    const expiresAt = this.redisExpiry(userId, o);
    const pending = this.writes.get(key);
    if (kind === 'write' || pending !== undefined) {
      this.writes.set(key, { userId, source, observation: JSON.stringify(o), expiresAt });
      this.refreshes.delete(key);
      this.scheduleWrite();
      if (kind === 'refresh') this.stats.refreshes += 1;
      return;
    }
    this.stats.refreshes += 1;
    this.refreshes.set(key, { userId, source, expiresAt });
  }

  /** The expiry Redis should hold: a connection entry's is one grace ahead, renewed while held. */
  private redisExpiry(userId: string, o: Observation): number {
    if (!isConnection(o) || isEnded(o)) return o.expiresAt;
    return Math.min(o.expiresAt, this.o.clock.now() + this.graceMs);
  }

  // ---- device connections (stream/devices.ts DeviceLease)

  hold(userId: string, deviceId: string): void {
    this.leases.set(deviceKey(userId, deviceId), { userId, source: `device/${deviceId}` });
  }

  release(userId: string, deviceId: string): void {
    this.leases.delete(deviceKey(userId, deviceId));
  }

  // ---- lifecycle

  /** Seeds what Redis lacks from memory (after the engine loaded), then starts the timers. */
  async start(): Promise<void> {
    this.stopped = false;
    try {
      // Aggregates only into a Redis just started empty; at an ordinary start it holds newer.
      const { fresh } = await this.o.hot.checkGeneration();
      await this.seed({ aggregates: fresh });
    } catch (error) {
      this.fail(error, 'the hot state could not be seeded at start; retrying with the next check');
    }
    if (this.stopped) return;
    const every = (ms: number, which: 'flush' | 'sweep' | 'lease', f: () => Promise<unknown>): void => {
      this.timers.push(this.clockTimers.every(ms, () => this.once(which, f)));
    };
    every(this.flushMs, 'flush', () => this.flushRefreshes());
    every(this.sweepMs, 'sweep', () => this.sweep());
    every(this.leaseMs, 'lease', () => this.renew());
  }

  /**
   * Stops the timers, waits for the work they started, and sends what is gathered (once, not
   * retried): nothing of this module runs or is armed after it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) t.cancel();
    this.timers = [];
    await this.idle();
    await this.flushWrites().catch(() => undefined);
    await this.flushRefreshes().catch(() => undefined);
  }

  /** Settles once the periodic work started so far and the write in flight are done. */
  async idle(): Promise<void> {
    for (;;) {
      const running = Object.values(this.running).filter((p): p is Promise<void> => p !== null);
      if (running.length === 0 && !this.writeScheduled) return;
      if (running.length === 0) await new Promise((resolve) => setImmediate(resolve));
      else await Promise.all(running);
    }
  }

  /** Runs `f` unless the same kind of work still runs (a slow Redis skips ticks, never piles). */
  private once(which: 'flush' | 'sweep' | 'lease', f: () => Promise<unknown>): void {
    if (this.running[which] !== null || this.stopped) return;
    this.running[which] = (async () => {
      try {
        await f();
        if (this.failing) this.o.log.info({}, 'the hot state (Redis) answers again');
        this.failing = false;
      } catch (error) {
        this.fail(error, 'the hot state (Redis) failed; retrying');
      } finally {
        this.running[which] = null;
      }
    })();
  }

  private fail(error: unknown, message: string): void {
    if (!this.failing) this.o.log.warn({ err: error }, message);
    this.failing = true;
  }

  // ---- writes and refreshes

  private scheduleWrite(): void {
    if (this.writeScheduled || this.stopped) return;
    this.writeScheduled = true;
    // The observations queued in this turn of the event loop go in one round trip.
    setImmediate(() => {
      this.writeScheduled = false;
      if (this.running.write !== null) {
        // One write in flight at a time: the next batch goes once it is answered.
        void this.running.write.then(() => this.scheduleWrite());
        return;
      }
      this.running.write = this.flushWrites()
        .catch((error: unknown) => {
          this.fail(error, 'observations could not be written to the hot state; retrying');
          // Kept (unless something newer was queued meanwhile) for the next attempt.
          this.clockTimers.after(this.flushMs, () => this.scheduleWrite());
        })
        .finally(() => {
          this.running.write = null;
        });
    });
  }

  private async flushWrites(): Promise<void> {
    if (this.writes.size === 0) return;
    const batch = this.writes;
    this.writes = new Map();
    const list = [...batch.values()].flatMap((w) => this.asHeld(w));
    if (list.length === 0) return;
    try {
      this.stats.writeRoundTrips += 1;
      await this.o.hot.upsertObservations(list);
      this.stats.writes += list.length;
    } catch (error) {
      for (const [k, w] of batch) if (!this.writes.has(k)) this.writes.set(k, w);
      throw error;
    }
  }

  /**
   * A queued write as the engine holds the observation now: a commit refused meanwhile (Redis or
   * the database down) rolled it back in memory, and Redis must not get what no node holds (a
   * new observation rolled away is dropped; a changed one goes as memory has it again). One
   * written just before its commit was refused stays in Redis until its expiry, when the sweep
   * finds no node holding it and ends nothing.
   */
  private asHeld(w: ObservationWrite): ObservationWrite[] {
    const o = this.o.engine.observation(w.userId, w.source);
    if (o === undefined) return [];
    const observation = JSON.stringify(o);
    if (observation === w.observation) return [w];
    return [{ ...w, observation, expiresAt: this.redisExpiry(w.userId, o) }];
  }

  private async flushRefreshes(): Promise<void> {
    if (this.refreshes.size === 0) return;
    const batch = this.refreshes;
    this.refreshes = new Map();
    let missing;
    try {
      this.stats.refreshRoundTrips += 1;
      missing = await this.o.hot.refreshExpiries([...batch.values()]);
    } catch (error) {
      // Later ones queued meanwhile win; an expiry only ever moves later.
      for (const [k, r] of batch) {
        const now = this.refreshes.get(k);
        if (now === undefined || now.expiresAt < r.expiresAt) this.refreshes.set(k, r);
      }
      throw error;
    }
    for (const m of missing) this.rewrite(m.userId, m.source);
  }

  /** Writes the observation whole again if this node holds it live. */
  private rewrite(userId: string, source: string): boolean {
    const o = this.o.engine.observation(userId, source);
    if (o === undefined || isEnded(o)) return false;
    this.observed(userId, o, 'write');
    return true;
  }

  // ---- the sweep

  /**
   * One sweep: takes what is due by now minus the margin, ends it here. Calls again while a call
   * comes back full (SWEEP_LIMIT), so a mass expiry (a burst of users gone at once) is ended in
   * this tick, not SWEEP_LIMIT per node per tick over many seconds.
   */
  async sweep(): Promise<number> {
    const dueBy = this.o.clock.now() - this.flushMs - this.slackMs;
    let total = 0;
    for (;;) {
      const taken = await this.o.hot.sweep(SWEEP_LIMIT, dueBy);
      total += taken.length;
      this.stats.swept += taken.length;
      for (const t of taken) this.end(t.userId, t.source, dueBy);
      if (taken.length < SWEEP_LIMIT || this.stopped) return total;
    }
  }

  /** An observation the sweep took: ended here, or written back if this node knows it fresher. */
  private end(userId: string, source: string, dueBy: number): void {
    const o = this.o.engine.observation(userId, source);
    if (o === undefined || isEnded(o)) return;
    if (this.fresher(userId, o, dueBy)) {
      this.observed(userId, o, 'write');
      return;
    }
    const ack = this.o.engine.expire(userId, source);
    if (ack === null) return;
    this.stats.ended += 1;
    // A refused commit rolled the observation back in memory: back in Redis, already due, so
    // the next sweep (here or elsewhere) takes it again.
    ack.catch(() => this.rewriteDue(userId, source, dueBy));
  }

  /**
   * Whether this node knows the observation lives past `dueBy`: a refresh of its own not sent
   * yet, or a connection it holds. A connection entry held elsewhere is never fresher here (the
   * long hold in memory is no expiry: only the holder's renewals are).
   */
  private fresher(userId: string, o: Observation, dueBy: number): boolean {
    if (isConnection(o)) return this.leases.has(deviceKey(userId, o.device));
    return o.expiresAt > dueBy;
  }

  private rewriteDue(userId: string, source: string, dueBy: number): void {
    const o = this.o.engine.observation(userId, source);
    if (o === undefined || isEnded(o)) return;
    const key = writeKey(userId, source);
    this.writes.set(key, { userId, source, observation: JSON.stringify(o), expiresAt: dueBy });
    this.scheduleWrite();
  }

  // ---- leases and the generation

  private async renew(): Promise<void> {
    const { lost } = await this.o.hot.checkGeneration();
    if (lost) {
      this.stats.losses += 1;
      this.o.log.warn({}, 'Redis lost the hot state; seeding it again from this node');
      await this.seed({ aggregates: true });
    }
    if (this.leases.size === 0) return;
    const expiresAt = this.o.clock.now() + this.graceMs;
    const list = [...this.leases.values()].map((l) => ({ ...l, expiresAt }));
    this.stats.renewals += 1;
    const missing = await this.o.hot.refreshExpiries(list);
    for (const m of missing) this.rewrite(m.userId, m.source);
  }

  /**
   * Puts this node's state into Redis where Redis holds none: aggregates (`seedAggregate`, never
   * over a newer version) and live observations (only where Redis has no expiry for them, so one
   * another node's refreshes moved is kept). An expiry from memory may be long past (refreshed on
   * another node), so a seeded one is at least one TTL of the observation from now: a device that
   * stopped during the outage goes offline one TTL after the rebuild, and none goes offline
   * because Redis forgot it. A connection entry gets one grace (its holder renews it).
   */
  async seed(options: { aggregates: boolean }): Promise<number> {
    const now = this.o.clock.now();
    let batch: ObservationWrite[] = [];
    let added = 0;
    const send = async (): Promise<void> => {
      added += await this.o.hot.seedObservations(batch);
      batch = [];
    };
    for (const { userId, observation: o } of this.o.engine.liveObservations()) {
      const ttl = Math.max(0, o.expiresAt - o.observedAt);
      const expiresAt = isConnection(o) ? this.redisExpiry(userId, o) : Math.max(o.expiresAt, now + ttl);
      batch.push({ userId, source: sourceOf(o), observation: JSON.stringify(o), expiresAt });
      if (batch.length >= SEED_CHUNK) await send();
    }
    if (batch.length > 0) await send();
    this.stats.seeded += added;
    if (!options.aggregates) return added;
    // One round trip per user, SEED_PARALLEL at a time (no multi-user script: keys per user).
    const ids = [...this.o.engine.userIds()];
    for (let i = 0; i < ids.length; i += SEED_PARALLEL) {
      await Promise.all(
        ids.slice(i, i + SEED_PARALLEL).map(async (userId) => {
          const s = this.o.engine.state(userId);
          if (s === undefined || s.version === 0) return;
          const aggregate = {
            status: s.status,
            activity: s.activity,
            customStatus: s.customStatus,
            source: s.source,
          };
          await this.o.hot.seedAggregate(userId, s.version, JSON.stringify(aggregate));
        }),
      );
    }
    return added;
  }
}
