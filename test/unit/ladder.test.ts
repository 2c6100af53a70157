import { DEFAULT_LADDER, Ladder, effectiveStatus } from '../../src/core/presence';
import { DEFAULT_DECAY } from '../../src/core/signals';
import { T0, obs } from '../helpers/observations';

describe('Ladder', () => {
  it('ranks the default order online > idle > busy > away > offline', () => {
    const l = new Ladder();
    expect(DEFAULT_LADDER).toEqual(['online', 'idle', 'busy', 'away', 'offline']);
    const ranks = DEFAULT_LADDER.map((s) => l.rank(s));
    expect(ranks).toEqual([0, 1, 2, 3, 4]);
  });

  it('parses a configured order', () => {
    const l = Ladder.parse('busy, online,idle,away,offline');
    expect(l.rank('busy')).toBe(0);
    expect(l.rank('online')).toBe(1);
    expect(l.order).toEqual(['busy', 'online', 'idle', 'away', 'offline']);
  });

  it.each([
    ['online,idle,busy,away', 'too short'],
    ['online,idle,busy,away,away', 'duplicate'],
    ['online,idle,busy,away,gone', 'unknown status'],
    ['', 'empty'],
  ])('refuses %j (%s)', (text) => {
    expect(() => Ladder.parse(text)).toThrow(/ladder|status/);
  });
});

describe('effectiveStatus with decay', () => {
  const signal = obs({ source: 'inferred', decay: DEFAULT_DECAY, expiresAt: T0 + 3600_000 });

  it.each([
    [0, 'online'],
    [119_999, 'online'],
    [120_000, 'idle'],
    [599_999, 'idle'],
    [600_000, 'away'],
    [3_599_999, 'away'],
    [3_600_000, 'offline'],
  ] as const)('%i ms after the signal it is %s', (age, status) => {
    expect(effectiveStatus(signal, T0 + age)).toBe(status);
  });

  it('a plain observation does not decay', () => {
    expect(effectiveStatus(obs({ status: 'busy' }), T0 + 10 * 3600_000)).toBe('busy');
  });
});
