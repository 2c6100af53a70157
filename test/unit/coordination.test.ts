/**
 * The in-process coordination (one node, no Redis): locks with owner tokens and TTLs on the
 * injected clock, the sliding-window budget, the delivery memory, the sole node's shares, and
 * `withLock`'s single flight.
 */

import { FakeClock } from '../../src/core/clock';
import {
  accountTarget,
  inProcessCoordination,
  InProcessLocks,
  InProcessRateBuckets,
  inProcessDeliveries,
  SlidingWindow,
  soleNodeShares,
  withLock,
} from '../../src/core/coordination';

describe('in-process locks', () => {
  it('one acquirer wins; the other gets null until the lease ends, then takes it', async () => {
    const clock = new FakeClock();
    const locks = new InProcessLocks(clock);
    const a = await locks.acquire('refresh:c1', 10_000);
    expect(a).toMatchObject({ key: 'refresh:c1', expiresAt: clock.now() + 10_000 });
    expect(await locks.acquire('refresh:c1', 10_000)).toBeNull();
    expect(await locks.acquire('refresh:c2', 10_000)).not.toBeNull(); // another key is free
    clock.advance(9_999);
    expect(await locks.acquire('refresh:c1', 10_000)).toBeNull();
    clock.advance(1);
    const b = await locks.acquire('refresh:c1', 10_000);
    expect(b).not.toBeNull();
    expect(b!.token).not.toBe(a!.token);
  });

  it('renew and release are refused to a token that does not own the lock', async () => {
    const clock = new FakeClock();
    const locks = new InProcessLocks(clock);
    const a = (await locks.acquire('k', 1_000))!;
    clock.advance(1_000);
    const b = (await locks.acquire('k', 1_000))!; // a's lease ended and b took it
    expect(await locks.release(a)).toBe(false);
    expect(await locks.renew(a, 1_000)).toBeNull();
    expect(await locks.acquire('k', 1_000)).toBeNull(); // still b's
    const renewed = await locks.renew(b, 5_000);
    expect(renewed?.expiresAt).toBe(clock.now() + 5_000);
    expect(await locks.release(b)).toBe(true);
    expect(await locks.release(b)).toBe(false);
    expect(await locks.acquire('k', 1_000)).not.toBeNull(); // released: free at once
  });

  it("a holder's note is written only by the lease's token and read by anyone; not shared", async () => {
    const clock = new FakeClock();
    const locks = new InProcessLocks(clock);
    expect(locks.shared).toBe(false);
    const a = (await locks.acquire('k', 1_000))!;
    expect(await locks.writeNote(a, 'one', 60_000)).toBe(true);
    expect(await locks.writeNote({ ...a, token: 'forged' }, 'two', 60_000)).toBe(false);
    expect(await locks.readNote('k')).toBe('one');
    expect(await locks.release(a)).toBe(true);
    expect(await locks.writeNote(a, 'three', 60_000)).toBe(false);
    expect(await locks.readNote('k')).toBe('one');
    expect(await locks.readNote('other')).toBeNull();
  });

  it('withLock runs once while held and releases after, even when fn throws', async () => {
    const clock = new FakeClock();
    const locks = new InProcessLocks(clock);
    let release!: () => void;
    const slow = withLock(locks, 'k', 60_000, () => new Promise<string>((r) => (release = () => r('done'))));
    await Promise.resolve();
    expect(await withLock(locks, 'k', 60_000, () => Promise.resolve('second'))).toBeNull();
    release();
    expect(await slow).toEqual({ value: 'done' });
    await expect(withLock(locks, 'k', 60_000, () => Promise.reject(new Error('boom')))).rejects.toThrow(
      'boom',
    );
    expect(await withLock(locks, 'k', 60_000, () => Promise.resolve(3))).toEqual({ value: 3 });
  });
});

describe('in-process rate buckets', () => {
  it('allow `limit` calls per window by the clock, then say how long to wait', async () => {
    const clock = new FakeClock();
    const b = new InProcessRateBuckets(clock);
    const rate = { limit: 3, windowMs: 60_000 };
    for (let i = 0; i < 3; i++) {
      expect(await b.take('slack:T1:presence', rate)).toBe(0);
      clock.advance(1_000);
    }
    expect(await b.take('slack:T1:presence', rate)).toBe(57_000);
    expect(await b.take('slack:T2:presence', rate)).toBe(0); // its own budget
    clock.advance(57_000);
    expect(await b.take('slack:T1:presence', rate)).toBe(0);
    expect(await b.take('slack:T1:presence', rate)).toBe(1_000);
  });

  it('starts a new window when the limit of a key changes', async () => {
    const clock = new FakeClock();
    const b = new InProcessRateBuckets(clock);
    expect(await b.take('k', { limit: 1, windowMs: 1_000 })).toBe(0);
    expect(await b.take('k', { limit: 1, windowMs: 1_000 })).toBe(1_000);
    expect(await b.take('k', { limit: 2, windowMs: 1_000 })).toBe(0);
  });

  it('the window never holds more than the limit, whatever the pattern', () => {
    const w = new SlidingWindow(5, 1_000);
    const taken: number[] = [];
    for (let t = 0; t < 10_000; t += 37) if (w.take(t) === 0) taken.push(t);
    for (const t of taken) expect(taken.filter((u) => u > t - 1000 && u <= t).length).toBeLessThanOrEqual(5);
    expect(taken.length).toBeGreaterThan(40);
  });
});

describe('in-process delivery memory', () => {
  it('takes an id once within its TTL, again after it or after forget', async () => {
    const clock = new FakeClock();
    const seen = inProcessDeliveries(clock)('slack:events', { ttlMs: 60_000, max: 10 });
    expect(await seen.firstTime('Ev1')).toBe(true);
    expect(await seen.firstTime('Ev1')).toBe(false);
    await seen.forget('Ev1');
    expect(await seen.firstTime('Ev1')).toBe(true);
    clock.advance(60_000);
    expect(await seen.firstTime('Ev1')).toBe(true);
  });

  it('each route has its own memory, bounded by its size', async () => {
    const clock = new FakeClock();
    const open = inProcessDeliveries(clock);
    const a = open('zoom:webhooks', { ttlMs: 60_000, max: 2 });
    const b = open('slack:events', { ttlMs: 60_000, max: 2 });
    expect(await a.firstTime('x')).toBe(true);
    expect(await b.firstTime('x')).toBe(true);
    expect(await a.firstTime('y')).toBe(true);
    expect(await a.firstTime('z')).toBe(true); // over the cap: the oldest, x, is dropped
    expect(await a.firstTime('x')).toBe(true);
    expect(await b.firstTime('x')).toBe(false);
  });
});

describe('in-process shares', () => {
  it('the sole node owns every target at once, with nothing to renew', async () => {
    const co = inProcessCoordination(new FakeClock());
    expect(co.shares).toBe(soleNodeShares);
    expect(co.shares.owns('slack', accountTarget({ workspaceId: 'T1', externalId: 'U1' }))).toBe(true);
    await co.shares.renew('slack', []);
    await co.shares.release('slack');
    expect(co.shares.owns('slack', 'anything')).toBe(true);
  });

  it('account targets keep workspace and id apart', () => {
    expect(accountTarget({ workspaceId: 'a:b', externalId: 'c' })).not.toBe(
      accountTarget({ workspaceId: 'a', externalId: 'b:c' }),
    );
  });
});
