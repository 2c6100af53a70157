import { BatchMemo, watchList, type BatchEntry, type Validity } from '../../src/aggregator/batch-memo';

const entry = (bytes: number): BatchEntry => ({
  body: Buffer.alloc(bytes),
  until: Number.POSITIVE_INFINITY,
  createdUsers: -1,
  validity: { stale: false },
});

describe('BatchMemo', () => {
  it('keeps entries within its byte budget; the oldest leaves unless used since it was passed over', () => {
    const memo = new BatchMemo(100);
    const a = entry(25);
    memo.set('a', a);
    for (const k of ['b', 'c', 'd']) memo.set(k, entry(25));
    expect(memo.byteSize).toBe(100);
    memo.set('e', entry(25)); // every entry is new, so each gets its pass; then a leaves
    expect(memo.byteSize).toBe(100);
    expect(a.validity.stale).toBe(true);
    memo.get('c');
    memo.set('f', entry(25)); // b, oldest and unused since, leaves
    memo.set('g', entry(25)); // c was used: it moves back, and d leaves
    expect(memo.byteSize).toBe(100);
    const kept = ['b', 'c', 'd', 'e', 'f', 'g'].map((k) => memo.get(k) !== undefined);
    expect(kept).toEqual([false, true, false, true, true, true]);
  });

  it('replacing a key counts its bytes once', () => {
    const memo = new BatchMemo(100);
    memo.set('a', entry(20));
    memo.set('a', entry(24));
    expect(memo.size).toBe(1);
    expect(memo.byteSize).toBe(24);
  });

  it('does not keep a body larger than a quarter of the budget, nor anything with a budget of 0', () => {
    const memo = new BatchMemo(100);
    expect(memo.set('small', entry(25))).toBe(true);
    expect(memo.set('big', entry(26))).toBe(false);
    expect(memo.get('big')).toBeUndefined();
    expect(memo.get('small')).toBeDefined();
    const none = new BatchMemo(0);
    none.set('a', entry(1));
    expect(none.size).toBe(0);
  });

  it('admits a list on its second request, and forgets lists asked for once as new ones come', () => {
    const memo = new BatchMemo(16 * 100); // room for 100 characters of lists asked for once
    expect(memo.admit('a'.repeat(40))).toBe(false);
    expect(memo.admit('a'.repeat(40))).toBe(true);
    expect(memo.admit('a'.repeat(40))).toBe(false); // admitted lists leave the waiting room
    expect(memo.admit('b'.repeat(40))).toBe(false);
    expect(memo.admit('c'.repeat(40))).toBe(false); // 120 characters: the oldest, a…, goes
    expect(memo.admit('a'.repeat(40))).toBe(false);
    expect(memo.admit('c'.repeat(40))).toBe(true);
    expect(memo.admit('x'.repeat(101))).toBe(false); // longer than the room: never waits
    expect(memo.admit('x'.repeat(101))).toBe(false);
  });

  it("a member's list of bodies stays bounded while the memo drops them", () => {
    let list: Validity[] | null = null;
    let longest = 0;
    const live: Validity[] = [];
    for (let i = 0; i < 10_000; i++) {
      const v = { stale: false };
      list = watchList(list, v);
      live.push(v);
      // The memo holds three bodies at a time: older ones have left it.
      if (live.length > 3) live.shift()!.stale = true;
      longest = Math.max(longest, list.length);
    }
    expect(longest).toBeLessThanOrEqual(16);
    expect(list!.filter((v) => !v.stale)).toHaveLength(3);
  });
});
