/**
 * Helpers of the Redis hot-state tests: the real Redis on 127.0.0.1:6379, shared with other
 * tests and the bench, so every store gets a random key prefix of its own and its keys are
 * deleted after; a loopback TCP proxy in front of it that a test can cut and restore.
 */

import { randomBytes } from 'node:crypto';
import { createServer, Socket, type Server } from 'node:net';

import Redis from 'ioredis';

import { FakeClock } from '../../../src/core/clock';
import {
  RedisCoordination,
  RedisHotState,
  type HotStateOptions,
  type RedisCoordinationOptions,
} from '../../../src/store/redis';
import { sleep } from '../../helpers/wait';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export const newPrefix = (): string => `presence_t_${randomBytes(6).toString('hex')}:`;

/** Opens stores on one prefix (a shared deployment), closes them and deletes its keys. */
export class Deployment {
  readonly prefix = newPrefix();
  readonly clock = new FakeClock();
  private readonly open: { close(): Promise<void> }[] = [];

  async node(extra: Partial<HotStateOptions> = {}): Promise<RedisHotState> {
    const s = await RedisHotState.open({
      url: REDIS_URL,
      prefix: this.prefix,
      clock: this.clock,
      ...extra,
    });
    this.open.push(s);
    return s;
  }

  /** A node's coordination (locks, budgets, delivery memory, shares) on the deployment's prefix. */
  async coordination(extra: Partial<RedisCoordinationOptions> = {}): Promise<RedisCoordination> {
    const c = await RedisCoordination.open({
      url: REDIS_URL,
      prefix: this.prefix,
      clock: this.clock,
      ...extra,
    });
    this.open.push(c);
    return c;
  }

  /** Every key under the prefix. */
  async keys(): Promise<string[]> {
    const admin = new Redis(REDIS_URL);
    try {
      return await admin.keys(`${this.prefix}*`);
    } finally {
      admin.disconnect();
    }
  }

  /** Deletes every key of the deployment: what a Redis restarted empty looks like to it. */
  async wipe(): Promise<void> {
    const admin = new Redis(REDIS_URL);
    try {
      const keys = await admin.keys(`${this.prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
    } finally {
      admin.disconnect();
    }
  }

  async close(): Promise<void> {
    for (const s of this.open) await s.close();
    await this.wipe();
  }
}

/** Retries `f` until it resolves (a condition, not a stopwatch; the limit only ends a stuck wait). */
export async function eventually<T>(f: () => Promise<T>, limitMs = 60_000): Promise<T> {
  const end = performance.now() + limitMs;
  for (;;) {
    try {
      return await f();
    } catch (err) {
      if (performance.now() > end) throw err;
      await sleep(25);
    }
  }
}

/**
 * A TCP proxy to Redis on a loopback port: `drop()` drops its connections, `cut()` also stops
 * listening until `start()` again; `holding` keeps Redis's replies from the client.
 */
export class CuttableProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  /** While set, Redis's replies are dropped: commands sent stay in flight. */
  holding = false;
  port = 0;

  /** Listens (on the same port as before, if it listened before); nothing if it listens. */
  async start(): Promise<void> {
    if (this.server) return;
    const server = createServer((down) => {
      const up = new Socket();
      up.connect(6379, '127.0.0.1');
      for (const s of [down, up]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => {
          this.sockets.delete(s);
          down.destroy();
          up.destroy();
        });
      }
      down.pipe(up);
      up.on('data', (chunk: Buffer) => {
        if (!this.holding) down.write(chunk);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  /** Drops every connection but keeps listening: a reconnection succeeds at once. */
  drop(): void {
    this.holding = false;
    for (const s of this.sockets) s.destroy();
  }

  async cut(): Promise<void> {
    this.holding = false;
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }
}
