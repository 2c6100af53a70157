import { changeEntry, decodeEntry, encodeEntry } from '../../src/cluster/entry';
import type { PresenceChange } from '../../src/core/changes';
import type { Observation } from '../../src/core/presence';
import { change } from '../helpers/stream-fakes';

const phone: Observation = {
  platform: 'device',
  device: 'phone',
  status: 'online',
  activity: null,
  customStatus: { text: 'on call', emoji: null, expiresAt: null },
  source: 'app',
  raw: { status: 'online' },
  label: 'heartbeat online',
  decay: null,
  observedAt: 1_000,
  changedAt: 900,
  expiresAt: 61_000,
};

describe('change log entries', () => {
  it('carry the presence.changed data and the state it was reduced from, through JSON unchanged', () => {
    const c: PresenceChange = {
      ...change('ann', 3, 'away', 'online', 1_000),
      reducedFrom: { observations: [phone], override: null, lastActiveAt: 1_000 },
    };
    const e = changeEntry('node-a', c);
    expect(e).toMatchObject({
      kind: 'change',
      node: 'node-a',
      state: {
        userId: 'ann',
        version: 3,
        at: 1_000,
        aggregate: { status: 'online', activity: null, customStatus: null, source: 'app' },
        observations: [phone],
        override: null,
        lastActiveAt: 1_000,
      },
      data: { user_id: 'ann', version: 3, previous: { status: 'away' }, changed: ['status'] },
    });
    expect(decodeEntry(encodeEntry(e))).toEqual(e);
    expect(decodeEntry(encodeEntry({ kind: 'delete', node: 'n', userId: 'ann' }))).toEqual({
      kind: 'delete',
      node: 'n',
      userId: 'ann',
    });
  });

  it('a change without its state cannot become one (the appender asks the engine for it)', () => {
    expect(() => changeEntry('n', change('ann', 1, 'offline', 'online'))).toThrow(/carries no state/);
  });

  it('text that is not an entry decodes to null, not an exception', () => {
    for (const bad of [
      '',
      '{',
      'null',
      '[]',
      '{"kind":"change"}',
      '{"kind":"delete","node":"n"}',
      '{"node":"n"}',
    ])
      expect(decodeEntry(bad)).toBeNull();
  });
});
