import { ChangeSinks } from '../../src/aggregator/change-pipeline';
import { presenceChangedEvent, type PresenceChange, type StoreTx } from '../../src/core/changes';
import type { Log } from '../../src/core/log';

const change = (fields: Partial<PresenceChange> = {}): PresenceChange => ({
  userId: 'alice',
  version: 3,
  at: Date.UTC(2026, 0, 2, 3, 4, 5),
  previous: { status: 'online', activity: null, customStatus: null },
  current: {
    status: 'busy',
    activity: 'in_meeting',
    customStatus: { text: 'Standup', emoji: null, expiresAt: null },
    source: 'app',
    winner: null,
    override: null,
  },
  changed: ['status', 'activity', 'custom_status'],
  cause: 'teams',
  explain: 'busy (in_meeting) from teams',
  presence: null,
  ...fields,
});

const tx: StoreTx = { store: 'test' };

function recordingLog(): Log & { errors: object[] } {
  const errors: object[] = [];
  const none = (): void => undefined;
  return { errors, debug: none, info: none, warn: none, error: (obj) => void errors.push(obj) };
}

describe('ChangeSinks', () => {
  it('runs each phase over the sinks in the order they were added, with the same batch', () => {
    const sinks = new ChangeSinks(recordingLog());
    const seen: string[] = [];
    const batch = [change()];
    sinks.add({
      stage: (t, c) => void seen.push(`a.stage ${t.store} ${c === batch}`),
      committed: (c) => seen.push(`a.committed ${c === batch}`),
    });
    sinks.add({ committed: (c) => seen.push(`b.committed ${c === batch}`) });
    sinks.add({ stage: () => void seen.push('c.stage') });
    void sinks.stage(tx, batch);
    sinks.committed(batch);
    expect(seen).toEqual(['a.stage test true', 'c.stage', 'a.committed true', 'b.committed true']);
  });

  it('says whether anyone listens or stages, and forgets a removed sink', () => {
    const sinks = new ChangeSinks(recordingLog());
    expect([sinks.listened, sinks.staging]).toEqual([false, false]);
    const removeListener = sinks.add({ committed: () => undefined });
    expect([sinks.listened, sinks.staging]).toEqual([true, false]);
    const seen: number[] = [];
    const removeStager = sinks.add({ stage: () => void seen.push(1) });
    expect(sinks.staging).toBe(true);
    removeStager();
    void sinks.stage(tx, [change()]);
    expect(seen).toEqual([]);
    expect(sinks.staging).toBe(false);
    removeListener();
    expect(sinks.listened).toBe(false);
  });

  it('lets a stage failure through (it aborts the commit) and stops there', () => {
    const sinks = new ChangeSinks(recordingLog());
    const seen: string[] = [];
    sinks.add({
      stage: () => {
        throw new Error('refused');
      },
    });
    sinks.add({ stage: () => void seen.push('later') });
    expect(() => sinks.stage(tx, [change()])).toThrow('refused');
    expect(seen).toEqual([]);
  });

  it('logs a committed-phase failure and still tells the other sinks', () => {
    const log = recordingLog();
    const sinks = new ChangeSinks(log);
    const seen: string[] = [];
    sinks.add({
      committed: () => {
        throw new Error('broken sink');
      },
    });
    sinks.add({ committed: () => seen.push('told') });
    sinks.committed([change()]);
    expect(seen).toEqual(['told']);
    expect(log.errors).toHaveLength(1);
  });

  it('a sink removed while a phase runs does not disturb that phase', () => {
    const sinks = new ChangeSinks(recordingLog());
    const seen: string[] = [];
    let removeB = (): void => undefined;
    sinks.add({ committed: () => removeB() });
    removeB = sinks.add({ committed: () => seen.push('b') });
    sinks.committed([change()]);
    sinks.committed([change()]);
    expect(seen).toEqual(['b']);
  });
});

describe('presenceChangedEvent', () => {
  it('builds the presence.changed body, with the presence object when the engine built it', () => {
    const presence = { user_id: 'alice', status: 'busy' } as unknown as NonNullable<
      PresenceChange['presence']
    >;
    expect(JSON.stringify(presenceChangedEvent(change({ presence })))).toBe(
      JSON.stringify({
        type: 'presence.changed',
        timestamp: '2026-01-02T03:04:05.000Z',
        data: {
          user_id: 'alice',
          version: 3,
          previous: { status: 'online', activity: null, custom_status: null },
          current: presence,
          changed: ['status', 'activity', 'custom_status'],
        },
      }),
    );
  });

  it('falls back to the aggregate when no presence object was built', () => {
    expect(presenceChangedEvent(change()).data.current).toEqual({
      user_id: 'alice',
      status: 'busy',
      activity: 'in_meeting',
      custom_status: { text: 'Standup', emoji: null, expires_at: null },
      source: 'app',
      version: 3,
      explain: 'busy (in_meeting) from teams',
    });
  });
});
