import { FakeClock } from '../../../src/core/clock';
import type { Status } from '../../../src/core/presence';
import { StreamHub } from '../../../src/stream/hub';
import { change, FakeTransport, fakeReader, ManualTimers } from '../../helpers/stream-fakes';

function setup(limits: Record<string, number> = {}) {
  const clock = new FakeClock();
  const timers = new ManualTimers(clock);
  const versions = new Map<string, number>();
  const statuses = new Map<string, Status>();
  const hub = new StreamHub({
    clock,
    timers,
    reader: fakeReader(new Map()),
    epoch: 'ep',
    defer: (run) => run(),
    limits,
  });
  const commit = (userId: string, to: Status): void => {
    const v = (versions.get(userId) ?? 0) + 1;
    versions.set(userId, v);
    const from = statuses.get(userId) ?? 'offline';
    statuses.set(userId, to);
    hub.committed([change(userId, v, from, to, clock.now())]);
  };
  return { clock, timers, hub, commit };
}

const presence = (t: FakeTransport) => t.messages().filter((m) => m.type === 'presence');

describe('coalescing (coalesce_ms)', () => {
  it('sends at most one message per user per window, with the latest state and the first previous', () => {
    const { hub, commit, timers } = setup();
    const t = new FakeTransport();
    hub.subscribe(hub.open(t, 1000), ['alice', 'bob']);
    commit('alice', 'online');
    commit('alice', 'busy');
    commit('bob', 'away');
    timers.advance(500);
    commit('alice', 'away');
    expect(presence(t)).toEqual([]);
    timers.advance(500);
    const got = presence(t);
    expect(got).toHaveLength(2);
    expect(got[0]).toMatchObject({
      user_id: 'alice',
      version: 3,
      previous: { status: 'offline' },
      current: { status: 'away' },
      changed: ['status'],
      position: 'ep:4',
    });
    expect(got[1]).toMatchObject({ user_id: 'bob', version: 1, position: 'ep:3' });
    expect(hub.stats.droppedCoalesced).toBe(2);
    // The next change opens a new window.
    commit('alice', 'online');
    expect(presence(t)).toHaveLength(2);
    timers.advance(1000);
    expect(presence(t).at(-1)).toMatchObject({ version: 4, previous: { status: 'away' } });
  });

  it('a change undone within the window sends nothing', () => {
    const { hub, commit, timers } = setup();
    const t = new FakeTransport();
    hub.subscribe(hub.open(t, 2000), ['alice']);
    commit('alice', 'online');
    timers.advance(10_000);
    commit('alice', 'away');
    commit('alice', 'online');
    timers.advance(2000);
    expect(presence(t).map((m) => m.version)).toEqual([1]);
    expect(hub.stats.droppedCoalesced).toBe(2);
  });

  it('unsubscribing cancels what a window held', () => {
    const { hub, commit, timers } = setup();
    const t = new FakeTransport();
    const s = hub.open(t, 1000);
    hub.subscribe(s, ['alice']);
    commit('alice', 'online');
    hub.unsubscribe(s, ['alice']);
    timers.advance(1000);
    expect(presence(t)).toEqual([]);
    expect(timers.armed).toBe(0);
  });
});

describe('slow consumers', () => {
  const limits = { highWaterBytes: 1000, compactBytes: 4000, closeBytes: 16_000, blockedMs: 30_000 };

  it('past the compaction limit, keeps only the latest queued message per user', () => {
    const { hub, commit } = setup(limits);
    const t = new FakeTransport();
    t.autoFlush = false;
    hub.subscribe(hub.open(t), ['alice', 'bob']);
    const states: Status[] = ['online', 'busy', 'away', 'idle'];
    for (let i = 0; i < 40; i++) commit(i % 5 === 0 ? 'bob' : 'alice', states[i % 4]!);
    expect(hub.stats.droppedCompacted).toBeGreaterThan(0);
    t.flushAll(); // the client reads again
    t.flushAll();
    const got = presence(t);
    // Every message is of a newer version than the one before it for its user; the last of each is there.
    const last = new Map<string, number>();
    for (const m of got) {
      expect(m.version).toBeGreaterThan(last.get(m.user_id) ?? 0);
      last.set(m.user_id, m.version);
    }
    expect(last.get('alice')).toBe(32);
    expect(last.get('bob')).toBe(8);
    expect(got.length + hub.stats.droppedCompacted).toBe(40);
    expect(t.ended).toBeNull();
  });

  it('still past the close limit after compaction: closed with resync, dropped from the index', () => {
    const { hub, commit } = setup(limits);
    const t = new FakeTransport();
    t.autoFlush = false;
    const s = hub.open(t);
    const ids = Array.from({ length: 200 }, (_, i) => `u${i}`);
    hub.subscribe(s, ids);
    for (const id of ids) commit(id, 'online'); // one message each: nothing to compact
    expect(t.ended).toBe('resync');
    expect(hub.stats.resyncs).toBe(1);
    expect(hub.connections).toBe(0);
    expect(hub.subscribersOf('u0')).toBeUndefined();
  });

  it('blocked for 30 s: closed with resync', () => {
    const { hub, commit, timers } = setup(limits);
    hub.start();
    const t = new FakeTransport();
    t.autoFlush = false;
    const s = hub.open(t);
    hub.subscribe(s, ['u0', 'u1', 'u2', 'u3', 'u4']);
    for (let i = 0; i < 5; i++) commit(`u${i}`, 'online');
    expect(s.isBlocked).toBe(true);
    timers.advance(25_000);
    expect(t.ended).toBeNull();
    timers.advance(5_000);
    expect(t.ended).toBe('resync');
  });

  it('a slow subscriber does not hold back the others', () => {
    const { hub, commit } = setup(limits);
    const slow = new FakeTransport();
    slow.autoFlush = false;
    const fast = new FakeTransport();
    hub.subscribe(hub.open(slow), ['alice']);
    hub.subscribe(hub.open(fast), ['alice']);
    const states: Status[] = ['online', 'busy'];
    for (let i = 0; i < 100; i++) commit('alice', states[i % 2]!);
    expect(presence(fast)).toHaveLength(100);
  });

  it('a big snapshot asked for does not count towards the limits', () => {
    const { hub } = setup({ ...limits, closeBytes: 1000, compactBytes: 500 });
    const t = new FakeTransport();
    t.autoFlush = false;
    const s = hub.open(t);
    hub.subscribe(
      s,
      Array.from({ length: 500 }, (_, i) => `user-with-a-long-name-${i}`),
    );
    expect(t.ended).toBeNull();
    expect(s.unsentBytes).toBeGreaterThan(1000);
  });
});
