import type { RefreshedTimes } from '../../../src/core/ports';
import { decodeSlot, encodeSlot, SLOT_COUNT, slotOf } from '../../../src/store/refresh-slots';

const decoded = (data: Buffer): RefreshedTimes[] => {
  const out: RefreshedTimes[] = [];
  decodeSlot(data, (e) => out.push({ ...e, observations: e.observations.map((o) => ({ ...o })) }));
  return out;
};

describe('refresh slots', () => {
  it('decodes what it encodes: ids and devices of any script, no activity, several devices', () => {
    const entries: RefreshedTimes[] = [
      {
        userId: 'ana-łódź-東京',
        lastActiveAt: 1_795_000_000_123,
        observations: [
          {
            platform: 'device',
            device: 'laptop',
            observedAt: 1_795_000_000_123,
            expiresAt: 1_795_000_060_123,
          },
          {
            platform: 'device',
            device: 'téléphone',
            observedAt: 1_795_000_000_001,
            expiresAt: 1_795_003_600_001,
          },
          { platform: 'slack', device: '', observedAt: 1_795_000_000_500, expiresAt: 1_795_000_300_500 },
        ],
      },
      { userId: 'bo', lastActiveAt: null, observations: [] },
      {
        userId: 'cy',
        lastActiveAt: 5,
        observations: [{ platform: 'device', device: 'laptop', observedAt: 1, expiresAt: 2 }],
      },
    ];
    expect(decoded(Buffer.from(encodeSlot(entries)))).toEqual(entries);
  });

  it('writes each distinct device once per slot', () => {
    const many = (n: number): RefreshedTimes[] =>
      Array.from({ length: n }, (_, i) => ({
        userId: `user-${i}`,
        lastActiveAt: i,
        observations: [{ platform: 'device', device: 'a-long-device-name', observedAt: i, expiresAt: i + 1 }],
      }));
    const perUser = encodeSlot(many(101)).length - encodeSlot(many(100)).length;
    expect(perUser).toBeLessThan('user-100'.length + 2 + 8 + 2 + 18 + 'a-long-device-name'.length);
  });

  it('skips data of a format it does not know', () => {
    expect(decoded(Buffer.from([9, 0, 0, 1, 2, 3]))).toEqual([]);
    expect(decoded(Buffer.alloc(0))).toEqual([]);
  });

  it('puts a user in the same slot for good (rows written by earlier versions stay right)', () => {
    expect(SLOT_COUNT).toBe(8192);
    // FNV-1a of the id's UTF-16 units, modulo the count: pinned values, so a change shows here.
    expect([slotOf(''), slotOf('user-0'), slotOf('alice')]).toEqual([0x811c9dc5 % SLOT_COUNT, 6919, 5095]);
    const seen = new Set<number>();
    for (let i = 0; i < 10_000; i++) seen.add(slotOf(`user-${i}`));
    expect(seen.size).toBeGreaterThan(5000); // spread, not clustered
  });
});
