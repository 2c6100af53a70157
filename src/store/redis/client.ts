/**
 * @module store/redis/client
 * The Redis connection (ioredis) for the hot state, set up to fail fast rather than wait: a short
 * connect timeout, no offline queue (a command while disconnected fails at once instead of being
 * held), commands in flight when the connection drops fail then and are not resent (a resent
 * compare-and-bump could look like a conflict of its own making), and a bounded command timeout. It keeps reconnecting
 * in the background, so the store works again by itself when Redis is back.
 */

import Redis, { ReplyError } from 'ioredis';

/** How long connecting may take before it fails. */
export const REDIS_CONNECT_TIMEOUT_MS = 2_000;
/** How long a command may wait for its reply on a connection that is up but silent. */
export const REDIS_COMMAND_TIMEOUT_MS = 5_000;
/** The longest pause between two reconnection attempts. */
export const REDIS_MAX_RECONNECT_DELAY_MS = 1_000;

export interface RedisOptions {
  /** `redis://[[user]:password@]host[:port][/db]` */
  readonly url: string;
  readonly connectTimeoutMs?: number;
  readonly commandTimeoutMs?: number;
}

/** Redis cannot be reached (or the connection dropped mid-command). Says where, never the password. */
export class RedisUnavailableError extends Error {
  override name = 'RedisUnavailableError';
}

/** Where a Redis URL points, without its credentials. */
export function describeRedisTarget(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port || '6379'}${u.pathname === '/' ? '' : u.pathname}`;
  } catch {
    return 'the configured address';
  }
}

/**
 * An error of a command as the store reports it: Redis's own replies (a script error, a wrong
 * type) stay as they are; anything else is the connection's failure, a `RedisUnavailableError`.
 */
export function toStoreError(err: unknown, target: string): Error {
  if (err instanceof ReplyError) return err as Error;
  const detail = err instanceof Error ? err.message : String(err);
  return new RedisUnavailableError(`Redis at ${target} is unavailable: ${detail}`, { cause: err });
}

/** Runs one command (or script call), reporting its failure as `toStoreError` does. */
export async function guardRedis<T>(target: string, f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (err) {
    throw toStoreError(err, target);
  }
}

/** Closes a connection: QUIT when it is up, else stops it reconnecting. */
export async function closeRedis(client: Redis): Promise<void> {
  if (client.status === 'ready') {
    try {
      await client.quit();
      return;
    } catch {
      // fall through: the connection went away meanwhile
    }
  }
  client.disconnect();
}

/**
 * Connects and waits until the connection is ready (`forBlocking`: a connection for blocking
 * reads, whose replies may take their BLOCK time longer); fails with `RedisUnavailableError` (and
 * closes the client) if the first attempt does not succeed within the connect timeout.
 */
export async function openRedis(
  options: RedisOptions,
  extra: { readonly forBlocking?: boolean; readonly name?: string } = {},
): Promise<Redis> {
  const target = describeRedisTarget(options.url);
  const connectTimeout = options.connectTimeoutMs ?? REDIS_CONNECT_TIMEOUT_MS;
  const commandTimeout = options.commandTimeoutMs ?? REDIS_COMMAND_TIMEOUT_MS;
  const client = new Redis(options.url, {
    lazyConnect: true,
    connectTimeout,
    // A blocking read waits for its BLOCK time plus the usual command timeout, not less.
    ...(extra.forBlocking
      ? { blockingTimeout: commandTimeout, blockingTimeoutGrace: commandTimeout }
      : { commandTimeout }),
    ...(extra.name === undefined ? {} : { connectionName: extra.name }),
    enableOfflineQueue: false,
    // 0: the commands in flight when the connection drops fail at once (MaxRetriesPerRequestError)
    // instead of being held; with resending off they would otherwise wait for the command timeout.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(attempt * 100, REDIS_MAX_RECONNECT_DELAY_MS),
  });
  // Without a listener an 'error' event would crash the process; each failed command reports
  // its own error, and the client reconnects by itself.
  client.on('error', () => {});
  try {
    await connectOnce(client, connectTimeout);
  } catch (err) {
    client.disconnect();
    throw toStoreError(err, target);
  }
  return client;
}

/** The first connection: ready, or the first error, or the timeout, whichever comes first. */
function connectOnce(client: Redis, timeoutMs: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = (err?: unknown): void => {
      clearTimeout(timer);
      client.off('error', onError);
      if (err === undefined) resolve();
      else reject(err instanceof Error ? err : new Error('the connection failed'));
    };
    const onError = (err: unknown): void => done(err);
    const timer = setTimeout(() => done(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
    client.once('error', onError);
    client.connect().then(
      () => done(),
      (err: unknown) => done(err),
    );
  });
}
