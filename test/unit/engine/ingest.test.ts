import { ChangeSinks } from '../../../src/aggregator/change-pipeline';
import { GroupCommit } from '../../../src/aggregator/group-commit';
import { Ingest } from '../../../src/aggregator/ingest';
import { RefreshPersister } from '../../../src/aggregator/refresh';
import { UserState, UserTable } from '../../../src/aggregator/user-state';
import { TimingWheel } from '../../../src/aggregator/wheel';
import type { PresenceChange } from '../../../src/core/changes';
import { FakeClock } from '../../../src/core/clock';
import { silentLog } from '../../../src/core/log';
import { Ladder, type NormalizedState } from '../../../src/core/presence';
import { MemoryStore } from '../../helpers/memory-store';

const state = (fields: Partial<NormalizedState> = {}): NormalizedState => ({
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
  ...fields,
});

function setup() {
  const store = new MemoryStore();
  const clock = new FakeClock();
  const sinks = new ChangeSinks(silentLog);
  const stats = { sweeps: 0, changesCommitted: 0 };
  const table = new UserTable();
  const commit = new GroupCommit({
    store,
    clock,
    log: silentLog,
    sinks,
    stats,
    maxBatch: 2048,
    commitRetryMs: 5000,
    probeIntervalMs: 1000,
    restore: (u) => void u.rollBack(),
  });
  let ingest: Ingest | null = null;
  const wheel = new TimingWheel(
    clock,
    4,
    {
      catchUp: (u, now) => ingest!.catchUp(u, now),
      endOfChunk: () => commit.commitQueued(),
      stopped: () => false,
    },
    stats,
  );
  const refresh = new RefreshPersister(store, commit, table.byId);
  ingest = new Ingest({
    users: table.byId,
    clock,
    ladder: new Ladder(),
    commit,
    wheel,
    refresh,
    sinks,
    deviceRetentionMs: 60_000,
  });
  const alice = new UserState('alice');
  table.add(alice);
  const changes: PresenceChange[] = [];
  sinks.add({ committed: (c) => changes.push(...c) });
  return { store, clock, commit, wheel, ingest, alice, changes };
}

describe('Ingest', () => {
  it('a new state queues the observation, the aggregate, the transition and the change', async () => {
    const t = setup();
    expect(t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 60_000 })).toBe(true);
    await t.commit.flush();
    expect(t.store.ops.map((op) => op.op)).toEqual(['observation', 'aggregate', 'transition']);
    expect(t.store.ops[2]).toMatchObject({
      transition: { fromStatus: 'offline', toStatus: 'online', platform: 'slack' },
    });
    expect(t.changes).toMatchObject([
      { userId: 'alice', version: 1, cause: 'slack', changed: ['status'], presence: { status: 'online' } },
    ]);
    expect(t.alice).toMatchObject({ status: 'online', version: 1, dueAt: t.clock.now() + 60_000 });
  });

  it('the same state again only moves times in memory', async () => {
    const t = setup();
    t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    await t.commit.flush();
    t.clock.advance(1000);
    expect(t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 60_000 })).toBe(false);
    await t.commit.flush();
    expect(t.store.transactions).toHaveLength(1);
    expect(t.alice.refreshDirty).toBe(true);
    expect(t.alice.observations[0]).toMatchObject({
      observedAt: t.clock.now(),
      expiresAt: t.clock.now() + 60_000,
    });
  });

  it('ignores a report older than the one held, one already expired, and throws for an unknown user', () => {
    const t = setup();
    t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const older = {
      platform: 'slack' as const,
      state: state({ status: 'busy' }),
      ttlMs: 60_000,
      at: t.clock.now() - 1,
    };
    expect(t.ingest.record('alice', older)).toBe(false);
    expect(
      t.ingest.record('alice', { platform: 'teams', state: state(), ttlMs: 10, at: t.clock.now() - 10 }),
    ).toBe(false);
    expect(() => t.ingest.record('bob', { platform: 'slack', state: state(), ttlMs: 1 })).toThrow(
      'unknown user bob',
    );
  });

  it('catches up with an expiry at its own time, caused by time (no platform)', async () => {
    const t = setup();
    t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 30_000 });
    const expiry = t.clock.now() + 30_000;
    t.clock.advance(45_000);
    t.ingest.catchUp(t.alice, t.clock.now());
    await t.commit.flush();
    expect(t.changes.map((c) => [c.version, c.current.status, c.cause, c.at])).toEqual([
      [1, 'online', 'slack', expiry - 30_000],
      [2, 'offline', null, expiry],
    ]);
  });

  it('ends devices a platform no longer lists, and forgets expired devices after the retention', async () => {
    const t = setup();
    const devices = { desktop: state(), mobile: state() };
    void t.ingest.reportMapped('alice', 'discord', { state: state(), devices }, 30_000);
    t.clock.advance(1000);
    void t.ingest.reportMapped('alice', 'discord', { state: state(), devices: { desktop: state() } }, 30_000);
    const mobile = t.alice.observations.find((o) => o.device === 'mobile');
    expect(mobile?.expiresAt).toBe(t.clock.now());
    t.clock.advance(61_000);
    t.ingest.catchUp(t.alice, t.clock.now());
    expect(t.alice.observations.map((o) => o.device).sort()).toEqual(['', 'desktop']);
    await t.commit.flush();
    expect(t.store.ops.filter((op) => op.op === 'observation-delete')).toMatchObject([{ device: 'mobile' }]);
  });

  it('an override wins over reports and is cleared again', async () => {
    const t = setup();
    t.ingest.record('alice', { platform: 'slack', state: state(), ttlMs: 60_000 });
    const set = t.ingest.setOverride('alice', {
      status: 'busy',
      activity: null,
      customStatus: null,
      expiresAt: t.clock.now() + 10_000,
    });
    await t.commit.flush();
    await set;
    expect(t.alice.status).toBe('busy');
    const cleared = t.ingest.clearOverride('alice');
    await t.commit.flush();
    expect(await cleared).toBe(true);
    expect(await t.ingest.clearOverride('alice')).toBe(false);
    expect(t.changes.map((c) => [c.current.status, c.cause])).toEqual([
      ['online', 'slack'],
      ['busy', 'override'],
      ['online', 'override'],
    ]);
  });
});
