/**
 * Which coordination `createService` gives a node (`openCoordination`, main.ts): this process's
 * own without PRESENCE_REDIS_URL; the Redis one, under PRESENCE_REDIS_PREFIX, with it (on the
 * local Redis, a prefix of the test's own, deleted after); an unreachable Redis stops the start.
 */

import { parseEnv } from '../../../src/config/env';
import { openCoordination } from '../../../src/main';
import { RedisCoordination, RedisUnavailableError } from '../../../src/store/redis';
import { freePort } from '../../helpers/free-port';

import { Deployment, REDIS_URL } from './helpers';

let d: Deployment;
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  await d.close();
});

// PRESENCE_REDIS_URL is accepted with a shared database only (config/env.ts).
const DATABASE_URL = 'postgres://127.0.0.1:5432/test';

it('without PRESENCE_REDIS_URL: in-process (locks not shared, every polling share held)', async () => {
  const opened = await openCoordination(parseEnv({}), d.clock);
  expect(opened.coordination).not.toBeInstanceOf(RedisCoordination);
  expect(opened.coordination.locks.shared).toBe(false);
  expect(opened.coordination.shares.owns('slack', 'any')).toBe(true);
  await opened.close();
});

it('with PRESENCE_REDIS_URL: the Redis coordination, its keys under PRESENCE_REDIS_PREFIX', async () => {
  const env = parseEnv({
    PRESENCE_DATABASE_URL: DATABASE_URL,
    PRESENCE_REDIS_URL: REDIS_URL,
    PRESENCE_REDIS_PREFIX: d.prefix,
  });
  const opened = await openCoordination(env, d.clock);
  try {
    expect(opened.coordination).toBeInstanceOf(RedisCoordination);
    expect(opened.coordination.locks.shared).toBe(true);
    expect(await opened.coordination.locks.acquire('k', 10_000)).not.toBeNull();
    expect(await d.keys()).toEqual([`${d.prefix}lock:k`]);
  } finally {
    await opened.close();
  }
});

it('an unreachable PRESENCE_REDIS_URL stops the start', async () => {
  const env = parseEnv({
    PRESENCE_DATABASE_URL: DATABASE_URL,
    PRESENCE_REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    PRESENCE_REDIS_PREFIX: d.prefix,
  });
  await expect(openCoordination(env, d.clock)).rejects.toBeInstanceOf(RedisUnavailableError);
});
