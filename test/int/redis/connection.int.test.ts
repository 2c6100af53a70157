/**
 * The hot state when Redis is not there: a closed port fails the open fast with
 * `RedisUnavailableError`; a connection cut under a running store fails its commands at once
 * (no offline queue) and the store works again by itself once Redis is reachable; a connection
 * killed by Redis (`CLIENT KILL`) is replaced the same way.
 */

import Redis from 'ioredis';

import { RedisHotState, RedisUnavailableError } from '../../../src/store/redis';
import { freePort } from '../../helpers/free-port';

import { CuttableProxy, Deployment, eventually, REDIS_URL } from './helpers';

let d: Deployment;
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  await d.close();
});

it('a closed port fails the open with RedisUnavailableError naming the address, not the password', async () => {
  const port = await freePort();
  const err = await RedisHotState.open({
    url: `redis://:s3cret@127.0.0.1:${port}`,
    clock: d.clock,
  }).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RedisUnavailableError);
  const message = (err as Error).message;
  expect(message).toContain(`127.0.0.1:${port}`);
  expect(message).not.toContain('s3cret');
});

it('a cut connection fails commands at once, and the store recovers when Redis is back', async () => {
  const proxy = new CuttableProxy();
  await proxy.start();
  const s = await d.node({ url: proxy.url });
  const t = d.clock.now();
  await s.upsertObservation('u', 'device:a', 'A', t + 1_000);

  await proxy.cut();
  // no offline queue: while the connection is down, every call is refused, none waits for it
  await eventually(async () => {
    const e = await s.observations('u').then(
      () => null,
      (x: unknown) => x,
    );
    if (!(e instanceof RedisUnavailableError)) throw new Error('still answering');
  });
  await expect(s.bumpAggregate('u', 1, 'a', 'c')).rejects.toBeInstanceOf(RedisUnavailableError);
  await expect(s.sweep()).rejects.toThrow(/Redis at 127\.0\.0\.1:\d+ is unavailable/);

  await proxy.start(); // the same port again
  expect(await eventually(() => s.observations('u'))).toEqual(new Map([['device:a', 'A']]));
  expect(await s.bumpAggregate('u', 1, 'a', 'c')).toMatchObject({ ok: true });
  await proxy.cut();
});

it.each([
  ['dropped and reconnecting at once', (p: CuttableProxy) => Promise.resolve(p.drop())],
  ['cut until Redis is back', (p: CuttableProxy) => p.cut()],
])(
  'a command in flight when the connection is %s fails then, it does not wait for a timeout',
  async (_how, breakIt) => {
    const proxy = new CuttableProxy();
    await proxy.start();
    // a command timeout far beyond the test's own limit: only the drop can settle the call
    const s = await d.node({ url: proxy.url, commandTimeoutMs: 3_600_000 });
    proxy.holding = true;
    const inFlight = s.bumpAggregate('u', 1, 'a', 'c').then(
      () => null,
      (e: unknown) => e,
    );
    await breakIt(proxy);
    expect(await inFlight).toBeInstanceOf(RedisUnavailableError);
    await proxy.start();
    // it may have landed (only the reply was lost): the caller reads before retrying
    const stored = await eventually(() => s.aggregate('u'));
    expect(stored === null || stored.version === 1).toBe(true);
    await proxy.cut();
  },
);

it('a connection killed by Redis (CLIENT KILL) is replaced, and the scripts still run', async () => {
  const s = await d.node();
  await s.upsertObservation('u', 'device:a', 'A', d.clock.now());
  const before = await s.client.client('ID');

  const admin = new Redis(REDIS_URL);
  try {
    expect(await admin.client('KILL', 'ID', String(before))).toBe(1);
  } finally {
    admin.disconnect();
  }

  const after = await eventually(() => s.client.client('ID'));
  expect(after).not.toBe(before);
  expect(await eventually(() => s.sweep())).toEqual([{ userId: 'u', source: 'device:a', observation: 'A' }]);
});

it('a failed command of Redis itself stays a Redis reply error, not "unavailable"', async () => {
  const s = await d.node();
  // the aggregate's key holds a string: HGET on it is a WRONGTYPE reply
  await s.client.set(`${d.prefix}agg:u`, 'not a hash');
  const err = await s.bumpAggregate('u', 1, 'a', 'c').then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(err).not.toBeInstanceOf(RedisUnavailableError);
  expect((err as Error).message).toMatch(/WRONGTYPE/);
});
