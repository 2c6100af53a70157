import { FakeClock } from '../../../src/core/clock';
import type { Status } from '../../../src/core/presence';
import { StreamHub } from '../../../src/stream/hub';
import { change, FakeTransport, fakeReader, ManualTimers } from '../../helpers/stream-fakes';

function setup(options: { limits?: Record<string, number>; log?: Record<string, number> } = {}) {
  const clock = new FakeClock();
  const timers = new ManualTimers(clock);
  const state = new Map<string, { version: number; status: Status }>([
    ['alice', { version: 3, status: 'online' }],
    ['bob', { version: 7, status: 'away' }],
  ]);
  const hub = new StreamHub({
    clock,
    timers,
    reader: fakeReader(state),
    epoch: 'ep',
    defer: (run) => run(), // flush at once: each test reads what was written
    ...options,
  });
  /** Commits a change as the engine would: state first, then the committed phase. */
  const commit = (userId: string, to: Status): void => {
    const s = state.get(userId) ?? { version: 0, status: 'offline' as Status };
    const next = { version: s.version + 1, status: to };
    state.set(userId, next);
    hub.committed([change(userId, next.version, s.status, to, clock.now())]);
  };
  return { clock, timers, state, hub, commit };
}

describe('stream hub', () => {
  it('sends a snapshot of the subscribed ids, then a presence message per change of them only', () => {
    const { hub, commit } = setup();
    const t = new FakeTransport();
    const s = hub.open(t);
    hub.subscribe(s, ['alice', 'nobody']);
    commit('alice', 'busy');
    commit('bob', 'online'); // not subscribed
    const [snap, diff, ...rest] = t.messages();
    expect(snap).toEqual({
      type: 'snapshot',
      presence: { alice: { user_id: 'alice', version: 3, status: 'online' } },
      unknown: ['nobody'],
      position: 'ep:0',
    });
    expect(diff).toMatchObject({
      type: 'presence',
      user_id: 'alice',
      version: 4,
      previous: { status: 'online', activity: null, custom_status: null },
      current: { user_id: 'alice', status: 'busy', version: 4 },
      changed: ['status'],
      position: 'ep:1',
    });
    expect(rest).toEqual([]);
    expect(t.written.flat()[1]!.sse).toBe(`event: presence\nid: ep:1\ndata: ${JSON.stringify(diff)}\n\n`);
  });

  it('keeps the index user → subscribers exact through subscribe, unsubscribe and close', () => {
    const { hub, commit } = setup();
    const t1 = new FakeTransport();
    const t2 = new FakeTransport();
    const s1 = hub.open(t1);
    const s2 = hub.open(t2);
    hub.subscribe(s1, ['alice', 'bob']);
    hub.subscribe(s2, ['alice']);
    expect(hub.subscribersOf('alice')?.size).toBe(2);
    expect(hub.subscriptions).toBe(3);
    hub.unsubscribe(s1, ['alice', 'never-watched']);
    expect([...hub.subscribersOf('alice')!]).toEqual([s2]);
    commit('alice', 'busy');
    expect(t1.messages().filter((m) => m.type === 'presence')).toEqual([]);
    expect(t2.messages().filter((m) => m.type === 'presence')).toHaveLength(1);
    hub.close(s2);
    hub.close(s1);
    expect(hub.indexedUsers).toBe(0);
    expect(hub.subscriptions).toBe(0);
    expect(hub.connections).toBe(0);
  });

  it('subscribing again answers with a snapshot of the newly added ids only', () => {
    const { hub } = setup();
    const t = new FakeTransport();
    const s = hub.open(t);
    hub.subscribe(s, ['alice']);
    hub.subscribe(s, ['alice', 'bob']);
    expect(Object.keys(t.messages()[1].presence)).toEqual(['bob']);
  });

  it('refuses more ids than a connection may watch, changing nothing', () => {
    const clock = new FakeClock();
    const hub = new StreamHub({
      clock,
      reader: fakeReader(new Map()),
      maxIdsPerConnection: 3,
      defer: (r) => r(),
    });
    const s = hub.open(new FakeTransport());
    hub.subscribe(s, ['a', 'b']);
    expect(() => hub.subscribe(s, ['c', 'd'])).toThrow(/at most 3 ids/);
    expect([...s.watching.keys()]).toEqual(['a', 'b']);
    expect(hub.subscriptions).toBe(2);
  });

  it('resume hit: every missed change of the watched ids, in order, none twice, then resumed', () => {
    const { hub, commit } = setup();
    const first = new FakeTransport();
    const s = hub.open(first);
    hub.subscribe(s, ['alice', 'bob']);
    commit('alice', 'busy');
    const lastSeen = first.messages().at(-1).position as string;
    hub.close(s); // the client goes away
    commit('alice', 'away');
    commit('carol', 'online');
    commit('bob', 'online');
    commit('alice', 'online');
    const again = new FakeTransport();
    const s2 = hub.open(again);
    hub.resume(s2, lastSeen, ['alice', 'bob']);
    const got = again.messages();
    expect(got.map((m) => [m.type, m.user_id, m.version, m.position])).toEqual([
      ['presence', 'alice', 5, 'ep:2'],
      ['presence', 'bob', 8, 'ep:4'],
      ['presence', 'alice', 6, 'ep:5'],
      ['resumed', undefined, undefined, 'ep:5'],
    ]);
    expect(got[3]).toEqual({ type: 'resumed', recovered: true, position: 'ep:5' });
    commit('alice', 'busy');
    expect(again.messages().at(-1)).toMatchObject({ user_id: 'alice', version: 7, position: 'ep:6' });
    expect(hub.stats.resumeHits).toBe(1);
  });

  it('several nodes: two changes of a user logged in the other order: nobody gets the older after the newer', () => {
    const { hub } = setup();
    hub.restart('ep', 0);
    const data = (version: number, status: Status) => ({
      user_id: 'alice',
      version,
      previous: { status: 'online' },
      current: { user_id: 'alice', status, version },
      changed: ['status'],
    });
    const live = new FakeTransport();
    hub.subscribe(hub.open(live), ['alice']); // snapshot at version 3
    const since = live.messages()[0].position as string;
    hub.published(1, data(5, 'away')); // committed second on one node, logged first
    hub.published(2, data(4, 'busy')); // committed first on another, logged after it
    hub.published(3, data(6, 'online'));
    const presence = (t: FakeTransport) =>
      t.messages().flatMap((m) => (m.type === 'presence' ? [[m.version, m.position]] : []));
    expect(presence(live)).toEqual([
      [5, 'ep:1'],
      [6, 'ep:3'],
    ]);
    const resumed = new FakeTransport();
    hub.resume(hub.open(resumed), since, ['alice']);
    expect(presence(resumed)).toEqual([
      [5, 'ep:1'],
      [6, 'ep:3'],
    ]);
    expect(resumed.messages().at(-1)).toEqual({ type: 'resumed', recovered: true, position: 'ep:3' });
  });

  it('resume miss: a fresh snapshot with recovered: false, no replay at all', () => {
    const { hub, commit, clock } = setup({ log: { minAgeMs: 1000, minCount: 2 } });
    commit('alice', 'busy');
    commit('alice', 'away');
    clock.advance(5000);
    commit('alice', 'online'); // offset 1 is dropped now
    commit('alice', 'busy');
    for (const since of ['ep:0', 'other:2', 'ep:99', 'junk']) {
      const t = new FakeTransport();
      hub.resume(hub.open(t), since, ['alice']);
      expect(t.messages()).toEqual([
        {
          type: 'snapshot',
          presence: { alice: { user_id: 'alice', version: 7, status: 'busy' } },
          unknown: [],
          position: 'ep:4',
          recovered: false,
        },
      ]);
    }
    expect(hub.stats.resumeMisses).toBe(4);
  });

  it('a change already in the snapshot (committed after it was read) is not sent again', () => {
    const { hub, state } = setup();
    const t = new FakeTransport();
    const s = hub.open(t);
    state.set('alice', { version: 4, status: 'busy' }); // in memory, its commit still to come
    hub.subscribe(s, ['alice']);
    hub.committed([change('alice', 4, 'online', 'busy')]);
    expect(t.messages().map((m) => m.type)).toEqual(['snapshot']);
  });

  it('batches the messages of one turn into one write', () => {
    const clock = new FakeClock();
    const queued: (() => void)[] = [];
    const state = new Map<string, { version: number; status: Status }>([
      ['alice', { version: 0, status: 'offline' }],
    ]);
    const hub = new StreamHub({ clock, reader: fakeReader(state), defer: (r) => queued.push(r) });
    const t = new FakeTransport();
    hub.subscribe(hub.open(t), ['alice']);
    hub.committed([change('alice', 1, 'offline', 'online'), change('alice', 2, 'online', 'busy')]);
    hub.committed([change('alice', 3, 'busy', 'away')]);
    expect(t.written).toEqual([]);
    for (const run of queued.splice(0)) run();
    expect(t.written.map((w) => w.map((m) => m.type))).toEqual([
      ['snapshot', 'presence', 'presence', 'presence'],
    ]);
  });

  it('pings every 25 s; a WebSocket peer that misses two is closed, an answering one is kept', () => {
    const { hub, timers } = setup();
    hub.start();
    const silent = new FakeTransport('ws');
    const answering = new FakeTransport('ws');
    const sse = new FakeTransport('sse');
    const s1 = hub.open(silent);
    const s2 = hub.open(answering);
    hub.open(sse);
    hub.subscribe(s1, ['alice']);
    timers.advance(25_000);
    expect([silent.pings, answering.pings, sse.pings]).toEqual([1, 1, 1]);
    s2.unansweredPings = 0; // its pong
    timers.advance(25_000);
    s2.unansweredPings = 0;
    expect(silent.ended).toBeNull();
    timers.advance(25_000);
    expect(silent.ended).toBe('dead');
    expect(hub.subscribersOf('alice')).toBeUndefined();
    expect(answering.ended).toBeNull();
    expect(sse.ended).toBeNull();
    expect(sse.pings).toBe(3);
  });

  it('pings connections opened together over several sweeps, and they stay spread', () => {
    const { hub, timers, clock } = setup();
    hub.start();
    const n = 1000;
    const budget = (2 * n * 1000) / 25_000; // twice the even share of a 1 s sweep
    const opened = clock.now();
    const pingedAt: number[][] = [];
    for (let i = 0; i < n; i++) {
      const t = new FakeTransport('ws');
      const s = hub.open(t);
      const times: number[] = [];
      pingedAt.push(times);
      t.ping = () => {
        times.push(clock.now());
        s.unansweredPings = 0; // its pong
      };
    }
    const perSweep: number[] = [];
    let total = 0;
    for (let second = 0; second < 90; second++) {
      timers.advance(1000);
      const now = pingedAt.reduce((a, t) => a + t.length, 0);
      perSweep.push(now - total);
      total = now;
    }
    expect(Math.max(...perSweep)).toBe(budget);
    // All opened at once: the first pings take ceil(1000 / 80) = 13 sweeps from 25 s on.
    expect(Math.max(...pingedAt.map((t) => t[0]!)) - opened).toBe(37_000);
    // From then on each is pinged every 25 s exactly: none waits for a sweep's budget again.
    for (const t of pingedAt) {
      expect(t.length).toBeGreaterThanOrEqual(3);
      for (let k = 1; k < t.length; k++) expect(t[k]! - t[k - 1]!).toBe(25_000);
    }
    expect(hub.connections).toBe(n);
  });

  it('drain tells every client to reconnect and refuses new connections', () => {
    const { hub } = setup();
    const t = new FakeTransport();
    hub.subscribe(hub.open(t), ['alice']);
    hub.drain();
    expect(t.ended).toBe('drain');
    expect(hub.connections).toBe(0);
    expect(() => hub.open(new FakeTransport())).toThrow(/restarting/);
  });
});
