import { FakeClock } from '../../../src/core/clock';
import { ChangeLog } from '../../../src/stream/change-log';
import { parsePosition } from '../../../src/stream/position';

function logOf(clock: FakeClock, options: { minAgeMs?: number; minCount?: number; maxCount?: number } = {}) {
  return new ChangeLog<string>({ clock, epoch: 'e1', ...options });
}

describe('change log', () => {
  it('gives each change the next offset once, in append order', () => {
    const log = logOf(new FakeClock());
    expect(log.position).toBe('e1:0');
    const a = log.append('a', (o) => `a@${o}`);
    const b = log.append('b', (o) => `b@${o}`);
    expect([a.offset, b.offset, a.value, b.value]).toEqual([1, 2, 'a@1', 'b@2']);
    expect(log.position).toBe('e1:2');
  });

  it('takes offsets given elsewhere (the shared log): a gap drops what it held, a restart changes the epoch', () => {
    const log = logOf(new FakeClock());
    log.restart('g1', 40);
    expect(log.position).toBe('g1:40');
    expect(log.since('e1:0', () => true)).toEqual({ hit: false, reason: 'epoch' });
    log.appendAt(41, 'a', 'a41');
    log.appendAt(42, 'b', 'b42');
    expect(log.since('g1:40', () => true)).toMatchObject({
      hit: true,
      changes: [{ offset: 41 }, { offset: 42 }],
    });
    expect(() => log.appendAt(42, 'c', 'again')).toThrow(/not after 42/);
    // a gap: 43 and 44 were never seen here, so nothing from before 45 can be answered whole
    log.appendAt(45, 'c', 'c45');
    expect(log.since('g1:41', () => true)).toEqual({ hit: false, reason: 'expired' });
    expect(log.since('g1:44', () => true)).toMatchObject({ hit: true, changes: [{ value: 'c45' }] });
    log.restart('g2', 0);
    expect(log.position).toBe('g2:0');
    expect(log.since('g1:45', () => true)).toEqual({ hit: false, reason: 'epoch' });
    expect(log.since('g2:0', () => true)).toEqual({ hit: true, changes: [] });
  });

  it('replays every change after a position for the wanted users, in order', () => {
    const log = logOf(new FakeClock());
    for (const u of ['a', 'b', 'a', 'c', 'a']) log.append(u, (o) => `${u}${o}`);
    const d = log.since('e1:1', (u) => u === 'a' || u === 'c');
    expect(d).toEqual({ hit: true, changes: expect.any(Array) });
    expect(d.hit && d.changes.map((c) => c.value)).toEqual(['a3', 'c4', 'a5']);
    expect(log.since('e1:5', () => true)).toEqual({ hit: true, changes: [] });
  });

  it('misses (never a partial answer) for another epoch, a future offset, garbage, or a dropped change', () => {
    const clock = new FakeClock();
    const log = logOf(clock, { minAgeMs: 1000, minCount: 3 });
    for (let i = 0; i < 3; i++) log.append('a', String);
    expect(log.since('e2:1', () => true)).toEqual({ hit: false, reason: 'epoch' });
    expect(log.since('e1:9', () => true)).toEqual({ hit: false, reason: 'future' });
    expect(log.since('nonsense', () => true)).toEqual({ hit: false, reason: 'malformed' });
    clock.advance(2000);
    log.append('a', String); // 4 entries, the first is old: dropped
    expect(log.oldest).toBe(2);
    expect(log.since('e1:0', () => true)).toEqual({ hit: false, reason: 'expired' });
    const d = log.since('e1:1', () => true);
    expect(d.hit && d.changes.map((c) => c.offset)).toEqual([2, 3, 4]);
  });

  it('keeps at least the last minCount changes however old, and every change younger than minAgeMs', () => {
    const clock = new FakeClock();
    const log = logOf(clock, { minAgeMs: 120_000, minCount: 100 });
    for (let i = 0; i < 500; i++) log.append('a', String); // all young
    expect(log.size).toBe(500);
    clock.advance(120_001);
    log.append('a', String);
    expect(log.size).toBe(100); // the old ones go, down to minCount
    clock.advance(1_000_000);
    log.append('a', String);
    expect(log.size).toBe(100);
    expect(log.oldest).toBe(403); // 502 appended, the last 100 kept
  });

  it('the defaults are 2 minutes and 100,000 changes', () => {
    const clock = new FakeClock();
    const log = logOf(clock);
    for (let i = 0; i < 100_050; i++) log.append('a', String);
    expect(log.size).toBe(100_050); // none older than 2 minutes
    clock.advance(119_999);
    log.append('a', String);
    expect(log.size).toBe(100_051);
    clock.advance(2);
    log.append('a', String);
    expect(log.size).toBe(100_000);
    expect(log.since(`e1:${log.offset - 100_000}`, () => false).hit).toBe(true);
    expect(log.since(`e1:${log.offset - 100_001}`, () => false).hit).toBe(false);
  });

  it('a hard cap bounds memory in a burst; a resume from before it misses', () => {
    const log = logOf(new FakeClock(), { minCount: 10, maxCount: 20 });
    for (let i = 0; i < 50; i++) log.append('a', String);
    expect(log.size).toBe(20);
    expect(log.since('e1:29', () => true).hit).toBe(false);
    expect(log.since('e1:30', () => true).hit).toBe(true);
  });

  it('positions parse strictly', () => {
    expect(parsePosition('ab12:0')).toEqual({ epoch: 'ab12', offset: 0 });
    expect(parsePosition('ab12:01')).toBeNull();
    expect(parsePosition('ab12:-1')).toBeNull();
    expect(parsePosition(':5')).toBeNull();
    expect(parsePosition('a:99999999999999999')).toBeNull();
  });
});
