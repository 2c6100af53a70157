/**
 * The operations figures' definitions (core/figures.ts) and their tracker (http/figures.ts), on a
 * FakeClock: the rates over the last minute, flaps (offline reversed within 30 s), the stale
 * ratio and the webhook backlog.
 */

import type { PresenceChange } from '../../src/core/changes';
import { FakeClock } from '../../src/core/clock';
import {
  CounterRate,
  FLAP_WINDOW_MS,
  FlapDetector,
  staleRatio,
  webhookBacklog,
} from '../../src/core/figures';
import type { Status } from '../../src/core/presence';
import { FigureTracker } from '../../src/http/figures';

describe('CounterRate', () => {
  it('is 0 until two samples exist', () => {
    const r = new CounterRate(60_000);
    expect(r.perSecond()).toBe(0);
    r.sample(1000, 50);
    expect(r.perSecond()).toBe(0);
    expect(r.increase()).toBe(0);
  });

  it('divides the rise by the time covered while the window is filling', () => {
    const r = new CounterRate(60_000);
    r.sample(0, 0);
    r.sample(10_000, 30);
    expect(r.perSecond()).toBe(3);
    expect(r.increase()).toBe(30);
  });

  it('looks back one window from the newest sample, not to the start', () => {
    const r = new CounterRate(60_000);
    // 10/s for the first two minutes, then nothing for a minute.
    for (let s = 0; s <= 120; s += 1) r.sample(s * 1000, s * 10);
    expect(r.perSecond()).toBe(10);
    for (let s = 121; s <= 180; s += 1) r.sample(s * 1000, 1200);
    expect(r.perSecond()).toBe(0);
    expect(r.increase()).toBe(0);
    // Half a minute later at 4/s: 120 over the last 60 s.
    for (let s = 181; s <= 210; s += 1) r.sample(s * 1000, 1200 + (s - 180) * 4);
    expect(r.increase()).toBe(120);
    expect(r.perSecond()).toBe(2);
  });

  it('never reports a negative rate (a counter reset reads as no rise)', () => {
    const r = new CounterRate(60_000);
    r.sample(0, 100);
    r.sample(1000, 5);
    expect(r.perSecond()).toBe(0);
  });
});

describe('FlapDetector', () => {
  it('counts an offline reversed within 30 s, and not one reversed later', () => {
    const f = new FlapDetector();
    expect(f.observe('a', 'online', 'offline', 0)).toBe(false);
    expect(f.observe('a', 'offline', 'online', FLAP_WINDOW_MS)).toBe(true);
    expect(f.observe('b', 'busy', 'offline', 0)).toBe(false);
    expect(f.observe('b', 'offline', 'idle', FLAP_WINDOW_MS + 1)).toBe(false);
    expect(f.total).toBe(1);
  });

  it('counts only the first return of one offline, per user', () => {
    const f = new FlapDetector();
    f.observe('a', 'online', 'offline', 0);
    f.observe('b', 'online', 'offline', 0);
    expect(f.observe('a', 'offline', 'away', 1000)).toBe(true);
    expect(f.observe('a', 'away', 'online', 2000)).toBe(false);
    expect(f.observe('b', 'offline', 'online', 3000)).toBe(true);
    expect(f.total).toBe(2);
  });

  it('ignores changes that are not a status move, and a return with no offline before it', () => {
    const f = new FlapDetector();
    expect(f.observe('a', 'offline', 'offline', 0)).toBe(false);
    expect(f.observe('a', 'offline', 'online', 100)).toBe(false);
    expect(f.total).toBe(0);
  });

  it('forgets offline transitions once they are out of the window', () => {
    const f = new FlapDetector();
    f.observe('a', 'online', 'offline', 0);
    f.observe('b', 'online', 'offline', 20_000);
    f.prune(FLAP_WINDOW_MS + 1);
    expect(f.pending).toBe(1);
    expect(f.observe('b', 'offline', 'online', 40_000)).toBe(true);
    expect(f.pending).toBe(0);
  });
});

describe('staleRatio and webhookBacklog', () => {
  it('is the share of stale users, 0 with nobody tracked', () => {
    expect(staleRatio(0, 0)).toBe(0);
    expect(staleRatio(3, 12)).toBe(0.25);
    expect(staleRatio(12, 12)).toBe(1);
  });

  it('counts deliveries waiting and in flight', () => {
    expect(webhookBacklog(4, 2)).toBe(6);
    expect(webhookBacklog(0, 0)).toBe(0);
  });
});

describe('FigureTracker', () => {
  const change = (userId: string, from: Status, to: Status, at: number): PresenceChange => ({
    userId,
    version: 2,
    at,
    previous: { status: from, activity: null, customStatus: null },
    current: { status: to, activity: null, customStatus: null, source: null, winner: null, override: null },
    changed: ['status'],
    cause: null,
    explain: '',
    presence: null,
  });

  function setup() {
    const clock = new FakeClock(0);
    const counts = { changes: 0, heartbeats: 0, missed: 0, queued: 0, inFlight: 0, connections: 0 };
    const stale = new Set<string>(['c']);
    const users = ['a', 'b', 'c', 'd'];
    const tracker = new FigureTracker({
      clock,
      userIds: () => users,
      trackedUsers: () => users.length,
      isStale: (id) => stale.has(id),
      changesTotal: () => counts.changes,
      heartbeatsTotal: () => counts.heartbeats,
      missedDevicePingsTotal: () => counts.missed,
      streamConnections: () => counts.connections,
      webhooks: () => ({ queued: counts.queued, in_flight: counts.inFlight }),
    });
    return { clock, counts, stale, tracker };
  }

  it('gives the rates from its samples and the rest from the sources', () => {
    const { clock, counts, tracker } = setup();
    for (let s = 1; s <= 60; s += 1) {
      clock.advance(1000);
      counts.changes += 5;
      counts.heartbeats += 20;
      tracker.sample();
    }
    counts.missed = 3;
    counts.queued = 7;
    counts.inFlight = 1;
    counts.connections = 2;
    expect(tracker.figures()).toEqual({
      tracked_users: 4,
      changes_per_second: 5,
      heartbeats_per_second: 20,
      stream_connections: 2,
      stale_ratio: 0.25,
      flaps_total: 0,
      flaps_recent: 0,
      missed_device_pings_total: 3,
      webhook_backlog: 8,
    });
  });

  it('counts flaps from the committed changes, and recent ones over ten minutes', () => {
    const { clock, tracker } = setup();
    tracker.sink.committed!([change('a', 'online', 'offline', clock.now())]);
    clock.advance(5000);
    tracker.sink.committed!([change('a', 'offline', 'online', clock.now())]);
    tracker.sample();
    expect(tracker.figures().flaps_total).toBe(1);
    expect(tracker.figures().flaps_recent).toBe(1);
    for (let s = 0; s < 11; s += 1) {
      clock.advance(60_000);
      tracker.sample();
    }
    expect(tracker.figures().flaps_total).toBe(1);
    expect(tracker.figures().flaps_recent).toBe(0);
  });

  it('counts stale users at most every 5 s (the count walks every user)', () => {
    const { clock, stale, tracker } = setup();
    expect(tracker.figures().stale_ratio).toBe(0.25);
    stale.add('d');
    expect(tracker.figures().stale_ratio).toBe(0.25);
    clock.advance(5000);
    expect(tracker.figures().stale_ratio).toBe(0.5);
  });

  it('exposes every figure as a /metrics gauge', () => {
    const { counts, tracker } = setup();
    counts.queued = 2;
    const gauges = tracker.gauges();
    expect(Object.keys(gauges).sort()).toEqual(
      [
        'presence_ops_changes_per_second',
        'presence_ops_flaps_recent',
        'presence_ops_flaps_total',
        'presence_ops_heartbeats_per_second',
        'presence_ops_missed_device_pings_total',
        'presence_ops_stale_ratio',
        'presence_ops_stream_connections',
        'presence_ops_tracked_users',
        'presence_ops_webhook_backlog',
      ].sort(),
    );
    expect(gauges.presence_ops_webhook_backlog!.read()).toBe(2);
    expect(gauges.presence_ops_tracked_users!.read()).toBe(4);
  });
});
