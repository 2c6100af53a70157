/**
 * The Redis hot state against the real Redis (127.0.0.1:6379), each test on a key prefix of its
 * own, deleted after: observations and their expiries, the batched refresh, the sweep (and two
 * sweepers racing), compare-and-bump with the change log, retention, the epoch and the
 * generation that tells a node Redis came back empty.
 */

import { FakeClock } from '../../../src/core/clock';
import { logPositionAt, offsetOfId, type RedisHotState } from '../../../src/store/redis';

import { Deployment } from './helpers';

let d: Deployment;
beforeEach(() => {
  d = new Deployment();
});
afterEach(async () => {
  await d.close();
});

describe('observations', () => {
  it('upserts a hash field and its expiry together, overwrites, and removes both', async () => {
    const s = await d.node();
    const t = d.clock.now();
    await s.upsertObservation('u1', 'slack:A', '{"s":"online"}', t + 60_000);
    await s.upsertObservation('u1', 'device:d1', '{"s":"away"}', t + 30_000);
    await s.upsertObservation('u1', 'slack:A', '{"s":"dnd"}', t + 90_000);

    expect(await s.observations('u1')).toEqual(
      new Map([
        ['slack:A', '{"s":"dnd"}'],
        ['device:d1', '{"s":"away"}'],
      ]),
    );
    expect(await s.expiryOf('u1', 'slack:A')).toBe(t + 90_000);
    expect(await s.removeObservation('u1', 'slack:A')).toBe(true);
    expect(await s.removeObservation('u1', 'slack:A')).toBe(false);
    expect(await s.expiryOf('u1', 'slack:A')).toBeNull();
    expect([...(await s.observations('u1')).keys()]).toEqual(['device:d1']);
  });

  it('user ids and sources with separators of any kind stay apart', async () => {
    const s = await d.node();
    const t = d.clock.now();
    await s.upsertObservation('a:b', 'c', 'x', t + 1);
    await s.upsertObservation('a', 'b:c', 'y', t + 2);
    expect(await s.expiryOf('a:b', 'c')).toBe(t + 1);
    expect(await s.expiryOf('a', 'b:c')).toBe(t + 2);
    d.clock.advance(5);
    const swept = await s.sweep();
    expect(swept).toEqual(
      expect.arrayContaining([
        { userId: 'a:b', source: 'c', observation: 'x' },
        { userId: 'a', source: 'b:c', observation: 'y' },
      ]),
    );
    expect(swept).toHaveLength(2);
  });

  it('refreshes many expiries in one round trip, never earlier, and returns the ones gone', async () => {
    const s = await d.node();
    const t = d.clock.now();
    for (let i = 0; i < 500; i++) await s.upsertObservation(`u${i}`, 'device:d', 'obs', t + 10_000);
    await s.removeObservation('u7', 'device:d');

    const sent = jest.spyOn(s.client, 'sendCommand');
    const refreshes = Array.from({ length: 500 }, (_, i) => ({
      userId: `u${i}`,
      source: 'device:d',
      expiresAt: i === 3 ? t + 5_000 : t + 20_000,
    }));
    const missing = await s.refreshExpiries(refreshes);
    expect(sent).toHaveBeenCalledTimes(1);
    sent.mockRestore();

    expect(missing).toEqual([{ userId: 'u7', source: 'device:d' }]);
    expect(await s.expiryOf('u0', 'device:d')).toBe(t + 20_000);
    expect(await s.expiryOf('u499', 'device:d')).toBe(t + 20_000);
    // earlier than stored: kept
    expect(await s.expiryOf('u3', 'device:d')).toBe(t + 10_000);
    // gone: not brought back
    expect(await s.expiryOf('u7', 'device:d')).toBeNull();
    expect(await s.refreshExpiries([])).toEqual([]);
  });
});

describe('the sweep', () => {
  it('takes the observations due by now with their values, and only those', async () => {
    const s = await d.node();
    const t = d.clock.now();
    await s.upsertObservation('u1', 'device:a', 'A', t + 1_000);
    await s.upsertObservation('u1', 'device:b', 'B', t + 2_000);
    await s.upsertObservation('u2', 'slack:x', 'X', t + 1_000);

    expect(await s.sweep()).toEqual([]);
    d.clock.advance(1_000);
    const first = await s.sweep();
    expect(first).toHaveLength(2);
    expect(first).toEqual(
      expect.arrayContaining([
        { userId: 'u1', source: 'device:a', observation: 'A' },
        { userId: 'u2', source: 'slack:x', observation: 'X' },
      ]),
    );
    expect(await s.observations('u1')).toEqual(new Map([['device:b', 'B']]));
    expect(await s.observations('u2')).toEqual(new Map());
    expect(await s.sweep()).toEqual([]);

    // an observation refreshed before the sweep is not taken
    await s.refreshExpiries([{ userId: 'u1', source: 'device:b', expiresAt: t + 5_000 }]);
    d.clock.advance(1_000);
    expect(await s.sweep()).toEqual([]);
    d.clock.advance(3_000);
    expect(await s.sweep()).toEqual([{ userId: 'u1', source: 'device:b', observation: 'B' }]);
    // the emptied hashes are gone with their last field
    expect(await d.keys()).toEqual([]);
  });

  it('honours its limit', async () => {
    const s = await d.node();
    const t = d.clock.now();
    for (let i = 0; i < 30; i++) await s.upsertObservation(`u${i}`, 'd', 'o', t);
    expect(await s.sweep(10)).toHaveLength(10);
    expect(await s.sweep(100)).toHaveLength(20);
  });

  it('two nodes sweeping at once never both take the same observation', async () => {
    const a = await d.node();
    const b = await d.node();
    const t = d.clock.now();
    const n = 3_000;
    const pending: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      pending.push(a.upsertObservation(`u${i % 300}`, `device:${i}`, `o${i}`, t - (i % 7)));
    }
    await Promise.all(pending);

    const takenBy = async (s: RedisHotState): Promise<string[]> => {
      const taken: string[] = [];
      for (;;) {
        const batch = await s.sweep(25);
        if (batch.length === 0) return taken;
        for (const e of batch) taken.push(`${e.userId}/${e.source}/${e.observation}`);
      }
    };
    const [byA, byB] = await Promise.all([takenBy(a), takenBy(b)]);

    // both took part (each needs over a hundred round trips, interleaved with the other's)
    expect(byA.length).toBeGreaterThan(0);
    expect(byB.length).toBeGreaterThan(0);
    const all = [...byA, ...byB];
    expect(all).toHaveLength(n);
    expect(new Set(all).size).toBe(n);
    expect(all.every((x) => /^u\d+\/device:(\d+)\/o\1$/.test(x))).toBe(true);
    expect(await d.keys()).toEqual([]);
  });
});

describe('aggregates and the change log', () => {
  it('bumps version n only over n - 1, else returns the stored version', async () => {
    const s = await d.node();
    const other = await d.node();
    const head = await s.logHead();
    expect(head.id).toBe('0-0');

    const one = await s.bumpAggregate('u1', 1, 'agg1', 'change1');
    expect(one).toEqual({ ok: true, position: { epoch: head.epoch, id: expect.any(String) } });
    // another node making the same change loses
    expect(await other.bumpAggregate('u1', 1, 'agg1-other', 'dup')).toEqual({
      ok: false,
      storedVersion: 1,
    });
    expect(await other.bumpAggregate('u1', 3, 'agg3', 'skip')).toEqual({
      ok: false,
      storedVersion: 1,
    });
    const two = await other.bumpAggregate('u1', 2, 'agg2', 'change2');
    expect(two.ok).toBe(true);
    expect(await s.aggregate('u1')).toEqual({ version: 2, aggregate: 'agg2' });
    expect(await s.aggregate('nobody')).toBeNull();

    const read = await s.readLog(head);
    expect(read).toEqual({
      recovered: true,
      epoch: head.epoch,
      entries: [
        { id: '1-0', offset: 1, userId: 'u1', version: 1, change: 'change1' },
        { id: '2-0', offset: 2, userId: 'u1', version: 2, change: 'change2' },
      ],
    });
    if (!read.recovered || !one.ok || !two.ok) throw new Error('unreachable');
    expect(read.entries.map((e) => e.id)).toEqual([one.position.id, two.position.id]);
    // from a position: what follows it; from the newest: nothing
    expect(await other.readLog(one.position)).toMatchObject({
      recovered: true,
      entries: [{ version: 2 }],
    });
    expect(await other.readLog(two.position)).toEqual({
      recovered: true,
      epoch: head.epoch,
      entries: [],
    });
    expect(await other.logHead()).toEqual(two.position);
  });

  it('appends a change decided elsewhere: never refused, offsets one by one, a repeat skipped', async () => {
    const a = await d.node();
    const b = await d.node();
    const head = await a.logHead();
    expect(await a.appendChange('u', 1, 'a1', 'c1')).toEqual({
      appended: true,
      position: { epoch: head.epoch, id: '1-0' },
    });
    // another node's later version, then an earlier one that arrives late: both logged
    expect(await b.appendChange('u', 3, 'a3', 'c3')).toMatchObject({
      appended: true,
      position: { id: '2-0' },
    });
    expect(await a.appendChange('u', 2, 'a2', 'c2')).toMatchObject({
      appended: true,
      position: { id: '3-0' },
    });
    // the aggregate kept is the newest; a repeat of it (a retried append) is not logged again
    expect(await a.aggregate('u')).toEqual({ version: 3, aggregate: 'a3' });
    expect(await b.appendChange('u', 3, 'a3', 'c3')).toEqual({ appended: false, duplicate: true });
    // bumps and appends share one offset counter
    expect(await a.bumpAggregate('v', 1, 'b1', 'd1')).toMatchObject({ ok: true, position: { id: '4-0' } });
    const r = await b.readLog(head);
    expect(r.recovered && r.entries.map((e) => [e.offset, e.userId, e.version, e.change])).toEqual([
      [1, 'u', 1, 'c1'],
      [2, 'u', 3, 'c3'],
      [3, 'u', 2, 'c2'],
      [4, 'v', 1, 'd1'],
    ]);
    expect(await b.readLog(logPositionAt(head.epoch, 2))).toMatchObject({
      recovered: true,
      entries: [{ offset: 3 }, { offset: 4 }],
    });
    expect(offsetOfId((await a.logHead()).id)).toBe(4);
  });

  it('a deletion takes no offset, and the user made again starts at version 1', async () => {
    const s = await d.node();
    const head = await s.logHead();
    await s.appendChange('u', 1, 'a1', 'c1');
    await s.appendChange('u', 2, 'a2', 'c2');
    await s.appendDeletion('u', 'gone');
    await s.appendDeletion('u', 'gone again');
    expect(await s.aggregate('u')).toBeNull();
    expect(await s.appendChange('u', 1, 'b1', 'again')).toMatchObject({
      appended: true,
      position: { id: '3-0' },
    });
    const r = await s.readLog(head);
    expect(r.recovered && r.entries.map((e) => [e.id, e.offset, e.change])).toEqual([
      ['1-0', 1, 'c1'],
      ['2-0', 2, 'c2'],
      ['2-1', 2, 'gone'],
      ['2-2', 2, 'gone again'],
      ['3-0', 3, 'again'],
    ]);
  });

  it('reads in pages of `count`', async () => {
    const s = await d.node();
    let pos = await s.logHead();
    for (let v = 1; v <= 7; v++) await s.bumpAggregate('u', v, `a${v}`, `c${v}`);
    const versions: number[] = [];
    for (;;) {
      const r = await s.readLog(pos, 3);
      if (!r.recovered) throw new Error('lost');
      if (r.entries.length === 0) break;
      expect(r.entries.length).toBeLessThanOrEqual(3);
      versions.push(...r.entries.map((e) => e.version));
      pos = { epoch: r.epoch, id: r.entries[r.entries.length - 1]!.id };
    }
    expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7]);
  });

  it('seeds an aggregate only over an older version, without a change', async () => {
    const s = await d.node();
    const head = await s.logHead();
    expect(await s.seedAggregate('u', 57, 'from-pg')).toBe(true);
    expect(await s.seedAggregate('u', 57, 'again')).toBe(false);
    expect(await s.seedAggregate('u', 12, 'older')).toBe(false);
    expect(await s.aggregate('u')).toEqual({ version: 57, aggregate: 'from-pg' });
    expect(await s.bumpAggregate('u', 58, 'next', 'c58')).toMatchObject({ ok: true });
    const r = await s.readLog(head);
    expect(r.recovered && r.entries.map((e) => e.version)).toEqual([58]);
  });

  it('retention by count: the oldest beyond the count go once they are older than the age', async () => {
    const s = await d.node({ logMinCount: 5, logMinAgeMs: 0 });
    const head = await s.logHead();
    const positions = [];
    for (let v = 1; v <= 20; v++) {
      const r = await s.bumpAggregate('u', v, `a${v}`, `c${v}`);
      if (!r.ok) throw new Error('conflict');
      positions.push(r.position);
    }
    expect(await s.logLength()).toBe(5);
    // the entries after these positions were trimmed: not recoverable
    expect(await s.readLog(head)).toEqual({ recovered: false, epoch: head.epoch });
    expect(await s.readLog(positions[13]!)).toEqual({ recovered: false, epoch: head.epoch });
    // the newest trimmed entry is the last one that can be resumed from
    const r = await s.readLog(positions[14]!);
    expect(r.recovered && r.entries.map((e) => e.version)).toEqual([16, 17, 18, 19, 20]);
  });

  it('an append trims at most 100 of the oldest; a backlog drains over the next appends', async () => {
    const roomy = await d.node({ logMinCount: 1_000, logMinAgeMs: 0 });
    for (let v = 1; v <= 300; v++) await roomy.bumpAggregate('u', v, `a${v}`, `c${v}`);
    expect(await roomy.logLength()).toBe(300);
    // a node with a smaller count on the same log (as after a change of setting)
    const tight = await d.node({ logMinCount: 5, logMinAgeMs: 0 });
    const lengths: number[] = [];
    for (let v = 301; v <= 304; v++) {
      await tight.bumpAggregate('u', v, `a${v}`, `c${v}`);
      lengths.push(await tight.logLength());
    }
    expect(lengths).toEqual([201, 102, 5, 5]);
  });

  it('retention by age keeps more than the count while the changes are recent', async () => {
    const s = await d.node({ logMinCount: 5, logMinAgeMs: 3_600_000 });
    const head = await s.logHead();
    for (let v = 1; v <= 20; v++) await s.bumpAggregate('u', v, `a${v}`, `c${v}`);
    expect(await s.logLength()).toBe(20);
    const r = await s.readLog(head, 100);
    expect(r.recovered && r.entries.map((e) => e.version)).toEqual(
      Array.from({ length: 20 }, (_, i) => i + 1),
    );
  });
});

describe('Redis restarted empty', () => {
  it('a fresh Redis is reported once, at the first check', async () => {
    const a = await d.node();
    const b = await d.node();
    const first = await a.checkGeneration();
    expect(first).toMatchObject({ fresh: true, lost: false });
    expect(await b.checkGeneration()).toEqual({
      generation: first.generation,
      fresh: false,
      lost: false,
    });
    expect(await a.checkGeneration()).toEqual({
      generation: first.generation,
      fresh: false,
      lost: false,
    });
  });

  it('every node learns the state was lost, and resumers get recovered: false', async () => {
    const a = await d.node();
    const b = await d.node();
    const g = (await a.checkGeneration()).generation;
    await b.checkGeneration();
    const head = await a.logHead();
    expect(head.epoch).toBe(g);
    const bumped = await a.bumpAggregate('u', 1, 'a1', 'c1');
    if (!bumped.ok) throw new Error('conflict');

    await d.wipe();

    // the next write starts a new epoch; an old position is not resumable in it
    const after = await b.bumpAggregate('u', 1, 'a1-again', 'c1-again');
    if (!after.ok) throw new Error('conflict');
    expect(after.position.epoch).not.toBe(g);
    expect(await a.readLog(bumped.position)).toEqual({
      recovered: false,
      epoch: after.position.epoch,
    });
    expect(await a.readLog({ epoch: after.position.epoch, id: '0-0' })).toMatchObject({
      recovered: true,
      entries: [{ version: 1, change: 'c1-again' }],
    });

    // each node reports the loss once
    const la = await a.checkGeneration();
    expect(la).toEqual({ generation: after.position.epoch, fresh: false, lost: true });
    expect(await a.checkGeneration()).toMatchObject({ lost: false });
    expect(await b.checkGeneration()).toMatchObject({ lost: true });
    expect(await b.checkGeneration()).toMatchObject({ lost: false });
  });

  it('a check on a wiped Redis starts a new generation and reports it lost', async () => {
    const a = await d.node();
    const g = (await a.checkGeneration()).generation;
    await d.wipe();
    const r = await a.checkGeneration();
    expect(r.generation).not.toBe(g);
    expect(r).toMatchObject({ fresh: true, lost: true });
    // with no log at all, an old position reads as not recovered
    expect(await a.readLog({ epoch: g, id: '0-0' })).toEqual({
      recovered: false,
      epoch: r.generation,
    });
  });
});

it('the clock of the sweep is the injected one', async () => {
  const clock = new FakeClock(1_000_000);
  const s = await d.node({ clock });
  await s.upsertObservation('u', 'd', 'o', 1_000_500);
  expect(await s.sweep()).toEqual([]);
  clock.advance(500);
  expect(await s.sweep()).toHaveLength(1);
});
