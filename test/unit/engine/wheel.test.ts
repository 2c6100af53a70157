import { FakeClock } from '../../../src/core/clock';
import { UserState } from '../../../src/aggregator/user-state';
import { TimingWheel, type EngineStats } from '../../../src/aggregator/wheel';

function setup(budgetMs = 1000) {
  const clock = new FakeClock(1_000_000);
  const visited: string[] = [];
  let chunks = 0;
  let stopped = false;
  const stats: EngineStats = { sweeps: 0, changesCommitted: 0 };
  const wheel: TimingWheel = new TimingWheel(
    clock,
    budgetMs,
    {
      catchUp: (u, now) => {
        visited.push(u.userId);
        wheel.reschedule(u, Number.POSITIVE_INFINITY);
        expect(u.dueAt).toBe(Number.POSITIVE_INFINITY);
        expect(now).toBe(clock.now());
      },
      endOfChunk: () => {
        chunks += 1;
      },
      stopped: () => stopped,
    },
    stats,
  );
  return {
    clock,
    wheel,
    visited,
    stats,
    chunks: () => chunks,
    stop: () => {
      stopped = true;
    },
  };
}

describe('TimingWheel', () => {
  it('looks only at users whose boundary has passed, each once', async () => {
    const t = setup();
    const soon = new UserState('soon');
    const later = new UserState('later');
    t.wheel.schedule(soon, t.clock.now() + 500);
    t.wheel.schedule(later, t.clock.now() + 5000);
    expect(await t.wheel.sweep()).toBe(0);
    t.clock.advance(1000);
    expect(await t.wheel.sweep()).toBe(1);
    expect(t.visited).toEqual(['soon']);
    t.clock.advance(10_000);
    expect(await t.wheel.sweep()).toBe(1);
    expect(t.visited).toEqual(['soon', 'later']);
    expect(t.stats.sweeps).toBe(3);
  });

  it('finds a boundary that passed within the current second, and leaves the rest of it filed', async () => {
    const t = setup();
    const early = new UserState('early');
    const late = new UserState('late');
    // Both in the bucket of the second that ends at now + 1000.
    t.wheel.schedule(early, t.clock.now() + 300);
    t.wheel.schedule(late, t.clock.now() + 700);
    t.clock.advance(400);
    expect(await t.wheel.sweep()).toBe(1);
    expect(t.visited).toEqual(['early']);
    t.clock.advance(200); // 100 ms short of late's boundary: still filed, not looked at
    expect(await t.wheel.sweep()).toBe(0);
    t.clock.advance(100);
    expect(await t.wheel.sweep()).toBe(1);
    expect(t.visited).toEqual(['early', 'late']);
  });

  it('keeps the earlier boundary: a later one never moves the user, an earlier one does', async () => {
    const t = setup();
    const u = new UserState('u');
    t.wheel.schedule(u, t.clock.now() + 3000);
    t.wheel.schedule(u, t.clock.now() + 9000);
    expect(u.dueAt).toBe(t.clock.now() + 3000);
    t.wheel.schedule(u, t.clock.now() + 1000);
    expect(u.dueAt).toBe(t.clock.now() + 1000);
    t.clock.advance(1000);
    expect(await t.wheel.sweep()).toBe(1); // filed twice, looked at once
    t.clock.advance(5000);
    expect(await t.wheel.sweep()).toBe(0);
  });

  it('skips users that are gone or were filed later meanwhile', async () => {
    const t = setup();
    const gone = new UserState('gone');
    const moved = new UserState('moved');
    t.wheel.schedule(gone, t.clock.now() + 100);
    t.wheel.schedule(moved, t.clock.now() + 100);
    gone.deleted = true;
    t.wheel.reschedule(moved, t.clock.now() + 60_000);
    t.clock.advance(1000);
    expect(await t.wheel.sweep()).toBe(0);
    expect(t.visited).toEqual([]);
  });

  it('works in chunks when the budget runs out, one commit per chunk, and loses nobody', async () => {
    const t = setup(-1); // every budget check finds it spent: a chunk per 64 users
    for (let i = 0; i < 200; i++) t.wheel.schedule(new UserState(`u${i}`), t.clock.now() + i);
    t.clock.advance(1000);
    expect(await t.wheel.sweep()).toBe(200);
    expect(new Set(t.visited).size).toBe(200);
    expect(t.chunks()).toBe(4); // 64 + 64 + 64 + 8
  });

  it('one sweep at a time: a second call joins the one running; stopping ends after the chunk', async () => {
    const t = setup(-1);
    for (let i = 0; i < 200; i++) t.wheel.schedule(new UserState(`u${i}`), t.clock.now());
    t.clock.advance(1000);
    const first = t.wheel.sweep();
    expect(t.wheel.sweep()).toBe(first);
    expect(t.wheel.running).toBe(first);
    // The first chunk ran at once, within sweep(); the one after the stop is the last.
    expect(t.visited).toHaveLength(64);
    t.stop();
    expect(await first).toBe(128);
    expect(t.wheel.running).toBeNull();
  });
});
