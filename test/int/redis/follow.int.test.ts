/**
 * `follow`: the change log read by every node's follower, waiting on Redis (XREAD BLOCK) for the
 * next change instead of polling.
 */

import Redis from 'ioredis';

import { Deployment, eventually, REDIS_URL } from './helpers';

let d: Deployment;
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  await d.close();
});

/** Whether a connection of that name is blocked in XREAD now. */
async function blockedInXread(name: string): Promise<boolean> {
  const admin = new Redis(REDIS_URL);
  try {
    const list = await admin.client('LIST');
    return String(list)
      .split('\n')
      .some((line) => line.includes(` name=${name} `) && line.includes(' cmd=xread'));
  } finally {
    admin.disconnect();
  }
}

it('returns what already follows the position at once', async () => {
  const s = await d.node();
  const head = await s.logHead();
  await s.bumpAggregate('u', 1, 'a1', 'c1');
  // a block time far beyond the test's limit: only the entry can end the call
  const r = await s.follow(head, 3_600_000);
  expect(r).toMatchObject({ recovered: true, entries: [{ version: 1, change: 'c1' }] });
});

it('waits on Redis until another node appends, then returns the change', async () => {
  const name = `${d.prefix.replace(/:$/, '')}-follower`;
  const follower = await d.node({ followerName: name });
  const writer = await d.node();
  const head = await follower.logHead();

  const next = follower.follow(head, 3_600_000);
  // the change comes only once the follower waits in Redis
  await eventually(async () => {
    if (!(await blockedInXread(name))) throw new Error('not blocked yet');
  });
  await writer.bumpAggregate('u', 1, 'a1', 'c1');
  expect(await next).toMatchObject({
    recovered: true,
    epoch: head.epoch,
    entries: [{ userId: 'u', version: 1, change: 'c1' }],
  });
});

it('returns nothing when the block time passes without a change', async () => {
  const s = await d.node();
  const head = await s.logHead();
  expect(await s.follow(head, 5)).toEqual({ recovered: true, epoch: head.epoch, entries: [] });
});

it('answers recovered: false for a position of a lost epoch, without waiting', async () => {
  const s = await d.node();
  const head = await s.logHead();
  await d.wipe();
  expect(await s.follow(head, 3_600_000)).toMatchObject({ recovered: false });
});
