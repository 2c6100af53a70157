/**
 * @module bench/redis
 * The reference design common in presence write-ups, for comparison: per heartbeat, HSET the
 * user's state, SETEX a key that expires with the TTL, and PUBLISH the state, as one pipelined
 * round trip. Used when a Redis server is reachable at PRESENCE_BENCH_REDIS_URL (default
 * redis://127.0.0.1:6379); every key it writes has a per-run prefix and is deleted at the end.
 *
 * It uses the service's own Redis client library (ioredis), with the client's defaults for a
 * pipeline.
 */

import Redis, { type ChainableCommander } from 'ioredis';

export interface HeartbeatFields {
  readonly userId: string;
  readonly deviceId: string;
  readonly status: string;
  readonly activity: string | null;
  readonly ttlSeconds: number;
}

export class RedisDesign {
  private constructor(
    private readonly redis: Redis,
    readonly url: string,
    private readonly prefix: string,
  ) {}

  /** Connects, or says why not. */
  static async connect(): Promise<RedisDesign | string> {
    const url = process.env.PRESENCE_BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';
    const redis = new Redis(url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      connectTimeout: 2000,
      retryStrategy: () => null,
    });
    redis.on('error', () => undefined); // reported through connect() below
    try {
      await redis.connect();
      await redis.ping();
    } catch (error) {
      redis.disconnect();
      return `no Redis server at ${url} (${(error as Error).message}); set PRESENCE_BENCH_REDIS_URL`;
    }
    return new RedisDesign(redis, url, `presence-bench:${process.pid}:${Date.now()}:`);
  }

  /** Adds one heartbeat's three commands to a pipeline. */
  add(p: ChainableCommander, hb: HeartbeatFields): ChainableCommander {
    const at = String(Date.now());
    return p
      .hset(
        `${this.prefix}presence:${hb.userId}`,
        'device',
        hb.deviceId,
        'status',
        hb.status,
        'activity',
        hb.activity ?? '',
        'at',
        at,
      )
      .setex(`${this.prefix}alive:${hb.userId}:${hb.deviceId}`, hb.ttlSeconds, hb.status)
      .publish(
        `${this.prefix}changes`,
        JSON.stringify({ user_id: hb.userId, device_id: hb.deviceId, status: hb.status, at }),
      );
  }

  /** One heartbeat: its three commands in one round trip, as a route would send them. */
  async heartbeat(hb: HeartbeatFields): Promise<void> {
    await this.check(this.add(this.redis.pipeline(), hb).exec());
  }

  /** A batch of heartbeats in one pipeline (three commands each). */
  async batch(hbs: readonly HeartbeatFields[]): Promise<void> {
    const p = this.redis.pipeline();
    for (const hb of hbs) this.add(p, hb);
    await this.check(p.exec());
  }

  private async check(result: Promise<[Error | null, unknown][] | null>): Promise<void> {
    const replies = await result;
    const failed = replies?.find(([error]) => error !== null);
    if (failed !== undefined) throw failed[0]!;
  }

  /** Deletes every key this run wrote, then disconnects. */
  async close(): Promise<void> {
    await deletePrefix(this.redis, this.prefix);
    await this.redis.quit();
  }
}

/** Deletes every key under `prefix` (SCAN, not KEYS: the server keeps answering others meanwhile). */
export async function deletePrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 10_000);
    if (keys.length > 0) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
