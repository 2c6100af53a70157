import { IdentifyGate } from '../../connectors/discord/identify-gate';

const DAY = 24 * 3600_000;

describe('Discord IDENTIFY gate', () => {
  it('lets the first IDENTIFY go at once and keeps later ones at least 5 s apart', () => {
    const gate = new IdentifyGate();
    expect(gate.reserve(0)).toBe(0);
    gate.ready(100);
    expect(gate.reserve(1000)).toBe(4000); // Discord's max_concurrency 1: one per 5 s
    expect(gate.reserve(60_000)).toBe(0);
  });

  it('doubles the gap while sessions keep failing, up to the maximum', () => {
    const gate = new IdentifyGate({ minGapMs: 1000, backoffMaxMs: 8000 });
    let now = 0;
    const waits: number[] = [];
    for (let i = 0; i < 7; i++) {
      const wait = gate.reserve(now);
      waits.push(wait);
      now += wait + 10; // each session fails right after its IDENTIFY
    }
    expect(waits).toEqual([0, 990, 1990, 3990, 7990, 7990, 7990]);
  });

  it('a session that lasted stableMs resets the backoff; a short one does not', () => {
    const gate = new IdentifyGate({ minGapMs: 1000, stableMs: 60_000 });
    expect(gate.reserve(0)).toBe(0);
    expect(gate.reserve(0)).toBe(1000);
    expect(gate.reserve(1000)).toBe(2000); // goes at 3000
    gate.ready(3000); // ends before a minute: still counts as failing
    expect(gate.reserve(4000)).toBe(3000); // 4 s after 3000
    gate.ready(7000); // this one lasts
    expect(gate.reserve(67_000)).toBe(0);
    expect(gate.reserve(67_000)).toBe(2000); // doubling starts afresh: 1 s, then 2 s, …
  });

  it('never lets more than dailyCap IDENTIFYs through in 24 hours', () => {
    const gate = new IdentifyGate({ minGapMs: 1, dailyCap: 3, stableMs: 0 });
    let now = 0;
    for (let i = 0; i < 3; i++) {
      gate.ready(now);
      now += 1000;
      expect(gate.reserve(now)).toBe(0);
    }
    expect(gate.countSince(now)).toBe(3);
    gate.ready(now);
    // The fourth waits until the first of the three is a day old.
    expect(gate.reserve(now + 1000)).toBe(1000 + DAY - (now + 1000));
    expect(gate.countSince(now + 1000)).toBe(4);
    expect(gate.countSince(1000 + DAY + 1)).toBe(3);
  });
});
