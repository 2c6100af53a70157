/**
 * The Redis coordination against the real Redis (127.0.0.1:6379), each test on a key prefix of
 * its own, deleted after, with several "nodes" (connections with their own node ids) sharing one
 * FakeClock: locks (a race has one winner, a lease ends by the injected clock and is taken over,
 * a non-owner cannot renew or release), polling shares spread over three nodes and taken over
 * from one that stops renewing, budgets shared by two clients never exceeding the limit, delivery
 * memories shared across nodes, and Redis unreachable failing fast.
 */

import { withLock } from '../../../src/core/coordination';
import { RedisUnavailableError, type RedisCoordination } from '../../../src/store/redis';
import { freePort } from '../../helpers/free-port';

import { CuttableProxy, Deployment, eventually } from './helpers';

let d: Deployment;
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  await d.close();
});

describe('locks', () => {
  it('of owners racing for a lock, exactly one wins each round', async () => {
    const nodes = await Promise.all([d.coordination(), d.coordination(), d.coordination()]);
    for (let round = 0; round < 20; round++) {
      const leases = await Promise.all(nodes.map((n) => n.locks.acquire(`refresh:${round}`, 30_000)));
      expect(leases.filter((l) => l !== null)).toHaveLength(1);
    }
  });

  it('a lease ends by the injected clock and another owner takes it over; the old owner cannot renew it', async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    const la = (await a.locks.acquire('renew:sub1', 10_000))!;
    expect(la.expiresAt).toBe(d.clock.now() + 10_000);
    d.clock.advance(9_999);
    expect(await b.locks.acquire('renew:sub1', 10_000)).toBeNull();
    d.clock.advance(1);
    const lb = await b.locks.acquire('renew:sub1', 10_000);
    expect(lb).not.toBeNull();
    expect(await a.locks.renew(la, 10_000)).toBeNull();
    expect(await a.locks.release(la)).toBe(false);
    // b still holds it
    expect(await a.locks.acquire('renew:sub1', 10_000)).toBeNull();
  });

  it('release and renew by a token that does not own the lock are refused; the owner can do both', async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    const la = (await a.locks.acquire('k', 10_000))!;
    const forged = { ...la, token: 'not-the-token' };
    expect(await b.locks.release(forged)).toBe(false);
    expect(await b.locks.renew(forged, 10_000)).toBeNull();
    expect(await b.locks.acquire('k', 10_000)).toBeNull();
    d.clock.advance(5_000);
    const renewed = await a.locks.renew(la, 10_000);
    expect(renewed?.expiresAt).toBe(d.clock.now() + 10_000);
    d.clock.advance(9_000); // past the first end, within the renewed one
    expect(await b.locks.acquire('k', 10_000)).toBeNull();
    expect(await a.locks.release(la)).toBe(true);
    expect(await b.locks.acquire('k', 10_000)).not.toBeNull(); // released: free at once
  });

  it("a holder's note: written only while its token owns the lock, read by any node after it died", async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    expect(a.locks.shared).toBe(true);
    expect(await b.locks.readNote('subs')).toBeNull();
    const la = (await a.locks.acquire('subs', 10_000))!;
    expect(await a.locks.writeNote(la, '{"n":1}', 60_000)).toBe(true);
    expect(await b.locks.writeNote({ ...la, token: 'forged' }, 'x', 60_000)).toBe(false);
    expect(await b.locks.readNote('subs')).toBe('{"n":1}');
    // a dies: its lease ends, b takes the lock and reads a's note
    d.clock.advance(10_000);
    const lb = (await b.locks.acquire('subs', 10_000))!;
    expect(await b.locks.readNote('subs')).toBe('{"n":1}');
    // a, back from a stall, can no longer write
    expect(await a.locks.writeNote(la, '{"n":"stale"}', 60_000)).toBe(false);
    expect(await b.locks.writeNote(lb, '{"n":2}', 60_000)).toBe(true);
    // the note outlives a released lease (a graceful handover)
    expect(await b.locks.release(lb)).toBe(true);
    expect(await a.locks.readNote('subs')).toBe('{"n":2}');
  });

  it('withLock runs a job once across nodes', async () => {
    const nodes = await Promise.all([d.coordination(), d.coordination()]);
    let runs = 0;
    let finish!: () => void;
    const gate = new Promise<void>((r) => (finish = r));
    const job = async (): Promise<number> => {
      runs += 1;
      await gate;
      return runs;
    };
    const first = withLock(nodes[0].locks, 'job', 60_000, job);
    await eventually(() => (runs === 1 ? Promise.resolve() : Promise.reject(new Error('not yet'))));
    expect(await withLock(nodes[1].locks, 'job', 60_000, job)).toBeNull();
    finish();
    expect(await first).toEqual({ value: 1 });
    expect(await withLock(nodes[1].locks, 'job', 60_000, job)).toEqual({ value: 2 });
  });
});

describe('polling shares', () => {
  const TTL = 30_000;
  const targets = Array.from({ length: 10 }, (_, i) => JSON.stringify(['T1', `U${i}`]));

  const owned = (n: RedisCoordination): string[] => targets.filter((t) => n.shares.owns('slack', t));
  /** Every target held by exactly one of `nodes`. */
  const expectDisjointCover = (nodes: readonly RedisCoordination[]): void => {
    for (const t of targets) expect(nodes.filter((n) => n.shares.owns('slack', t))).toHaveLength(1);
  };

  it('spread over 3 nodes, one owner per target; a node that stops renewing has its shares taken over', async () => {
    const nodes = await Promise.all([1, 2, 3].map(() => d.coordination({ shareTtlMs: TTL })));
    // A few rounds: the first node takes everything, then gives up what is over its part as the
    // others appear among the live nodes.
    for (let round = 0; round < 3; round++) for (const n of nodes) await n.shares.renew('slack', targets);
    expectDisjointCover(nodes);
    expect(nodes.map((n) => owned(n).length).sort()).toEqual([2, 4, 4]);

    // Node 3 stops renewing; the others renew every third of the TTL.
    const [a, b, c] = nodes as [RedisCoordination, RedisCoordination, RedisCoordination];
    const lost = owned(c);
    expect(lost.length).toBeGreaterThan(0);
    for (let step = 0; step < 4; step++) {
      d.clock.advance(TTL / 3);
      await a.shares.renew('slack', targets);
      await b.shares.renew('slack', targets);
    }
    await a.shares.renew('slack', targets);
    expect(owned(c)).toEqual([]); // its leases ended: it polls nothing, by its own reckoning too
    expectDisjointCover([a, b]);
    expect([owned(a).length, owned(b).length]).toEqual([5, 5]);
  });

  it('a graceful stop frees its shares at once: the others take them at their next renewal', async () => {
    const nodes = await Promise.all([1, 2].map(() => d.coordination({ shareTtlMs: TTL })));
    const [a, b] = nodes as [RedisCoordination, RedisCoordination];
    for (let round = 0; round < 2; round++) for (const n of nodes) await n.shares.renew('slack', targets);
    expect([owned(a).length, owned(b).length]).toEqual([5, 5]);
    await b.shares.release('slack');
    expect(owned(b)).toEqual([]);
    await a.shares.renew('slack', targets); // no time passed
    expect(owned(a)).toEqual(targets);
  });

  it('a target no longer listed is freed; groups are apart', async () => {
    const a = await d.coordination({ shareTtlMs: TTL });
    await a.shares.renew('slack', targets);
    await a.shares.renew('zoom', ['x']);
    expect(owned(a)).toEqual(targets);
    await a.shares.renew('slack', targets.slice(0, 3));
    expect(owned(a)).toEqual(targets.slice(0, 3));
    expect(a.shares.owns('zoom', 'x')).toBe(true);
    const fields = await a.client.hkeys(`${d.prefix}share:slack`);
    expect(fields.sort()).toEqual(targets.slice(0, 3).sort());
  });
});

describe('rate buckets', () => {
  it('two clients sharing a budget never exceed it in any window, and are told how long to wait', async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    const rate = { limit: 5, windowMs: 1_000 };
    const taken: number[] = [];
    let waits = 0;
    for (let i = 0; i < 300; i++) {
      d.clock.advance(37);
      const node = i % 3 === 0 ? a : b;
      const [w1, w2] = await Promise.all([
        node.buckets.take('teams:T1', rate),
        a.buckets.take('teams:T1', rate),
      ]);
      for (const w of [w1, w2]) {
        if (w === 0) taken.push(d.clock.now());
        else {
          waits += 1;
          expect(w).toBeGreaterThan(0);
          expect(w).toBeLessThanOrEqual(rate.windowMs);
        }
      }
    }
    for (const t of taken) expect(taken.filter((u) => u > t - 1_000 && u <= t).length).toBeLessThanOrEqual(5);
    // 11.1 s of calls at 5 a second: the budget was used, not just refused
    expect(taken.length).toBeGreaterThanOrEqual(50);
    expect(waits).toBeGreaterThan(0);
  });

  it('the wait is until the oldest call in the window leaves it, the same on every node', async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    const rate = { limit: 2, windowMs: 60_000 };
    expect(await a.buckets.take('slack:T1:presence', rate)).toBe(0);
    d.clock.advance(10_000);
    expect(await b.buckets.take('slack:T1:presence', rate)).toBe(0);
    d.clock.advance(5_000);
    expect(await a.buckets.take('slack:T1:presence', rate)).toBe(45_000);
    expect(await b.buckets.take('slack:T1:presence', rate)).toBe(45_000);
    expect(await b.buckets.take('slack:T2:presence', rate)).toBe(0); // another key, another budget
    d.clock.advance(45_000);
    expect(await b.buckets.take('slack:T1:presence', rate)).toBe(0);
    expect(await a.buckets.take('slack:T1:presence', rate)).toBe(10_000);
  });
});

describe('delivery memory', () => {
  it('a delivery is taken once across nodes within its TTL; forget lets the retry in', async () => {
    const [a, b] = [await d.coordination(), await d.coordination()];
    const sa = a.deliveries('slack:events', { ttlMs: 60_000, max: 10 });
    const sb = b.deliveries('slack:events', { ttlMs: 60_000, max: 10 });
    const other = b.deliveries('zoom:webhooks', { ttlMs: 60_000, max: 10 });
    const results = await Promise.all([sa.firstTime('Ev1'), sb.firstTime('Ev1')]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(await other.firstTime('Ev1')).toBe(true); // each route its own memory
    await sa.forget('Ev1');
    expect(await sb.firstTime('Ev1')).toBe(true);
    d.clock.advance(59_999);
    expect(await sa.firstTime('Ev1')).toBe(false);
    d.clock.advance(1);
    expect(await sa.firstTime('Ev1')).toBe(true);
  });
});

describe('Redis unavailable', () => {
  it('a closed port fails the open with RedisUnavailableError naming the address, not the password', async () => {
    const port = await freePort();
    const err = await d.coordination({ url: `redis://:s3cret@127.0.0.1:${port}` }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(RedisUnavailableError);
    expect((err as Error).message).toContain(`127.0.0.1:${port}`);
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('a cut connection fails every call at once (no hang), shares lapse at their end, and it recovers', async () => {
    const proxy = new CuttableProxy();
    await proxy.start();
    // a command timeout far beyond the test's own limit: only failing fast can settle the calls
    const n = await d.coordination({ url: proxy.url, commandTimeoutMs: 3_600_000, shareTtlMs: 30_000 });
    await n.shares.renew('zoom', ['u1']);
    expect(n.shares.owns('zoom', 'u1')).toBe(true);

    await proxy.cut();
    await eventually(async () => {
      const e = await n.locks.acquire('k', 1_000).then(
        () => null,
        (x: unknown) => x,
      );
      if (!(e instanceof RedisUnavailableError)) throw new Error('still answering');
    });
    const lease = { key: 'k', token: 't', expiresAt: 0 };
    for (const call of [
      () => n.locks.renew(lease, 1_000),
      () => n.locks.release(lease),
      () => n.buckets.take('b', { limit: 1, windowMs: 1_000 }),
      () => n.deliveries('s', { ttlMs: 1_000, max: 1 }).firstTime('x'),
      () => n.shares.renew('zoom', ['u1']),
    ])
      await expect(call()).rejects.toThrow(/Redis at 127\.0\.0\.1:\d+ is unavailable/);
    // Its renewal failed: it still owns the share until the lease ends, not after.
    expect(n.shares.owns('zoom', 'u1')).toBe(true);
    d.clock.advance(30_000);
    expect(n.shares.owns('zoom', 'u1')).toBe(false);

    await proxy.start();
    await eventually(() => n.shares.renew('zoom', ['u1']));
    expect(n.shares.owns('zoom', 'u1')).toBe(true);
    await n.close();
    await proxy.cut();
  });
});
