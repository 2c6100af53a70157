/**
 * Several nodes as an operator deploys them, for the multi-process tests: a PostgreSQL database
 * of its own on the machine's server, a key prefix of its own on its Redis, `presence migrate`
 * once, then `presence serve` processes of the shipped bin started one at a time (each start
 * applies no migration and reads the change log's head). `close` stops the nodes and removes the
 * database and the keys.
 */

import { randomBytes } from 'node:crypto';

import Redis from 'ioredis';

import { createTestDatabase, type TestDatabase } from '../helpers/pg-database';
import { cleanEnv, runBin, startServe, type ServeProcess } from './serve-process';

export const REDIS_URL = 'redis://127.0.0.1:6379';

export interface Deployment {
  /** The nodes' environment (start another node with `startServe({ env })`). */
  readonly env: Record<string, string>;
  /** The nodes, in start order; a test may replace one it killed. */
  readonly nodes: ServeProcess[];
  readonly database: TestDatabase;
  /** Stops the nodes (a killed one is already gone), drops the database, deletes the keys. */
  close(): Promise<void>;
}

export async function startDeployment(
  name: string,
  options: { readonly nodes?: number; readonly env?: Record<string, string> } = {},
): Promise<Deployment> {
  const database = await createTestDatabase();
  const prefix = `test:${name}:${randomBytes(4).toString('hex')}:`;
  const env = {
    PRESENCE_DATABASE_URL: database.url,
    PRESENCE_REDIS_URL: REDIS_URL,
    PRESENCE_REDIS_PREFIX: prefix,
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', // receivers are on loopback
    // One deployment: every node opens what the others sealed.
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    ...options.env,
  };
  const nodes: ServeProcess[] = [];
  const close = async (): Promise<void> => {
    for (const n of nodes.splice(0)) await n.stop();
    await database.drop();
    const redis = new Redis(REDIS_URL, { lazyConnect: true });
    await redis.connect();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
  };
  try {
    const migrated = await runBin(['migrate'], cleanEnv(env));
    if (migrated.code !== 0) throw new Error(`presence migrate exited ${migrated.code}: ${migrated.stderr}`);
    for (let i = 0; i < (options.nodes ?? 3); i++) nodes.push(await startServe({ env }));
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
  return { env, nodes, database, close };
}
