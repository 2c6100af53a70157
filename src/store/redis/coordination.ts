/**
 * @module store/redis/coordination
 * The coordination ports (core/ports/coordination.ts) on Redis, for several nodes: locks with
 * a compare-and-delete release, sliding-window rate budgets, delivery memories, and the
 * polling shares. Each step is one Lua script (coordination-scripts.ts). The connection is the
 * hot state's kind (`openRedis`: fails fast, reconnects by itself), and so are the errors: a
 * connection failure is a `RedisUnavailableError` naming the address, never the password.
 *
 * Time is the injected clock's, as the port says: a lease's end is written as a time and
 * compared with the caller's now, so a FakeClock drives takeovers in tests and every node reads
 * ends in one frame (the nodes' clocks must agree to well within a TTL). Redis's own expiry only
 * collects keys left behind, `GC_GRACE_MS` past their end.
 */

import { randomBytes } from 'node:crypto';

import type Redis from 'ioredis';

import type { Clock } from '../../core/clock';
import { newLeaseToken } from '../../core/coordination';
import type {
  Coordination,
  DeliveryDedup,
  DeliveryDedupFactory,
  Lease,
  Locks,
  PollShares,
  RateBuckets,
  RateLimit,
} from '../../core/ports/coordination';

import { closeRedis, describeRedisTarget, guardRedis, openRedis, type RedisOptions } from './client';
import { COORDINATION_SCRIPTS, type CoordinationScript } from './coordination-scripts';

/** How long past its end (by the caller's clock) Redis keeps a key before collecting it. */
export const GC_GRACE_MS = 60_000;
/** A polling share's lease, unless configured. */
export const SHARE_TTL_MS = 30_000;

export interface RedisCoordinationOptions extends RedisOptions {
  /** Prefix of every key (default `presence:`, the hot state's): one per deployment. */
  readonly prefix?: string;
  readonly clock: Clock;
  /** This node's name among the share holders (default: random per process). */
  readonly nodeId?: string;
  /** A polling share's lease (default 30 s); the host renews every third of it. */
  readonly shareTtlMs?: number;
}

type ScriptCall = (...args: (string | number)[]) => Promise<unknown>;

/** Caller's times are written as whole milliseconds (the scripts read them as integers). */
const ms = (t: number): number => Math.floor(t);

export class RedisCoordination implements Coordination {
  readonly locks: Locks;
  readonly buckets: RateBuckets;
  readonly deliveries: DeliveryDedupFactory;
  readonly shares: PollShares;
  readonly nodeId: string;

  private readonly p: string;
  private readonly target: string;
  private readonly clock: Clock;
  private seq = 0;

  private constructor(
    readonly client: Redis,
    options: RedisCoordinationOptions,
  ) {
    this.p = options.prefix ?? 'presence:';
    this.target = describeRedisTarget(options.url);
    this.clock = options.clock;
    this.nodeId = options.nodeId ?? randomBytes(8).toString('hex');
    if (this.nodeId.includes('|')) throw new RangeError('a node id cannot contain "|"');
    for (const [name, def] of Object.entries(COORDINATION_SCRIPTS)) client.defineCommand(name, def);
    this.locks = this.makeLocks();
    this.buckets = { take: (key, rate) => this.take(key, rate) };
    this.deliveries = (scope, { ttlMs }) => this.deliveryMemory(scope, ttlMs);
    this.shares = new RedisPollShares(this, options.shareTtlMs ?? SHARE_TTL_MS);
  }

  /** Connects (failing fast with `RedisUnavailableError`). */
  static async open(options: RedisCoordinationOptions): Promise<RedisCoordination> {
    return new RedisCoordination(await openRedis(options), options);
  }

  async close(): Promise<void> {
    await closeRedis(this.client);
  }

  /** @internal The shares' access to the scripts, keys and clock. */
  run(name: CoordinationScript, ...args: (string | number)[]): Promise<unknown> {
    const fn = (this.client as unknown as Record<CoordinationScript, ScriptCall>)[name];
    return guardRedis(this.target, () => fn.apply(this.client, args));
  }

  /** @internal */
  key(kind: string, name: string): string {
    return `${this.p}${kind}:${name}`;
  }

  /** @internal */
  now(): number {
    return ms(this.clock.now());
  }

  private makeLocks(): Locks {
    return {
      acquire: async (key, ttlMs) => {
        const now = this.now();
        const lease = { key, token: newLeaseToken(), expiresAt: now + ms(ttlMs) };
        const ok = await this.run(
          'coLockAcquire',
          this.key('lock', key),
          lease.token,
          now,
          lease.expiresAt,
          ms(ttlMs) + GC_GRACE_MS,
        );
        return ok === 1 ? lease : null;
      },
      renew: async (lease: Lease, ttlMs) => {
        const expiresAt = this.now() + ms(ttlMs);
        const ok = await this.run(
          'coLockRenew',
          this.key('lock', lease.key),
          lease.token,
          expiresAt,
          ms(ttlMs) + GC_GRACE_MS,
        );
        return ok === 1 ? { ...lease, expiresAt } : null;
      },
      release: async (lease: Lease) =>
        (await this.run('coLockRelease', this.key('lock', lease.key), lease.token)) === 1,
      // Kept by Redis's own expiry: a note is read and judged by its content (what it says
      // ended is the caller's clock's to tell), so collecting it late or early by a clock
      // apart from the nodes' changes nothing but memory.
      writeNote: async (lease: Lease, note: string, keepMs: number) =>
        (await this.run(
          'coLockNote',
          this.key('lock', lease.key),
          this.key('note', lease.key),
          lease.token,
          note,
          Math.max(1, ms(keepMs)),
        )) === 1,
      readNote: (key: string) => guardRedis(this.target, () => this.client.get(this.key('note', key))),
      shared: true,
    };
  }

  private async take(key: string, rate: RateLimit): Promise<number> {
    if (!Number.isInteger(rate.limit) || rate.limit < 1)
      throw new RangeError('limit must be a positive integer');
    if (!(rate.windowMs > 0)) throw new RangeError('windowMs must be positive');
    const now = this.now();
    const window = ms(rate.windowMs);
    // A member per call: the node and a counter, unique without a random id per call.
    this.seq += 1;
    const wait = await this.run(
      'coBucketTake',
      this.key('bucket', key),
      now,
      rate.limit,
      window,
      `${this.nodeId}:${this.seq}`,
      window + GC_GRACE_MS,
      now - window,
    );
    return Number(wait);
  }

  private deliveryMemory(scope: string, ttlMs: number): DeliveryDedup {
    const ttl = ms(ttlMs);
    return {
      firstTime: async (id) => {
        const now = this.now();
        const r = await this.run(
          'coSeenFirst',
          this.key('seen', `${scope}:${id}`),
          now,
          now + ttl,
          ttl + GC_GRACE_MS,
        );
        return r === 1;
      },
      forget: async (id) => {
        await guardRedis(this.target, () => this.client.del(this.key('seen', `${scope}:${id}`)));
      },
    };
  }
}

/**
 * The node's shares: `renew` asks Redis and remembers what this node holds until when; `owns`
 * answers from that memory, so a node whose renewals fail (Redis down) stops polling when its
 * leases end, as the others may take them then.
 */
class RedisPollShares implements PollShares {
  private readonly held = new Map<
    string,
    { readonly targets: ReadonlySet<string>; readonly until: number }
  >();

  constructor(
    private readonly co: RedisCoordination,
    readonly ttlMs: number,
  ) {}

  owns(group: string, target: string): boolean {
    const h = this.held.get(group);
    return h !== undefined && this.co.now() < h.until && h.targets.has(target);
  }

  async renew(group: string, targets: readonly string[]): Promise<void> {
    const now = this.co.now();
    const until = now + ms(this.ttlMs);
    const mine = (await this.co.run(
      'coSharesRenew',
      this.co.key('share', group),
      this.co.key('share-nodes', group),
      this.co.nodeId,
      now,
      until,
      ms(this.ttlMs) + GC_GRACE_MS,
      ...new Set(targets),
    )) as string[];
    this.held.set(group, { targets: new Set(mine), until });
  }

  async release(group: string): Promise<void> {
    this.held.delete(group);
    await this.co.run(
      'coSharesRelease',
      this.co.key('share', group),
      this.co.key('share-nodes', group),
      this.co.nodeId,
    );
  }
}
