/**
 * @module http/figures
 * The operations figures (core/figures.ts defines them) fed from the running service: a change
 * sink sees every committed status change (changes, flaps), and a sample a second of the engine's
 * counters gives the rates. The figures reach `/metrics` as gauges (`presence_ops_*`) and the
 * dashboard reads them there.
 */

import type { ChangeSink, PresenceChange } from '../core/changes';
import type { Clock } from '../core/clock';
import {
  CounterRate,
  FlapDetector,
  RECENT_FLAPS_MS,
  staleRatio,
  webhookBacklog,
  type OpsFigures,
} from '../core/figures';
import type { ExtraGauges } from './metrics';

/** What the figures read from the parts of the service. */
export interface FigureSources {
  readonly clock: Clock;
  /** Users tracked, and each one's id (to count the stale ones). */
  readonly userIds: () => Iterable<string>;
  readonly trackedUsers: () => number;
  readonly isStale: (userId: string) => boolean;
  /** Monotonic totals. */
  readonly changesTotal: () => number;
  readonly heartbeatsTotal: () => number;
  readonly missedDevicePingsTotal: () => number;
  readonly streamConnections: () => number;
  readonly webhooks: () => { readonly queued: number; readonly in_flight: number };
}

/** Counting the stale users walks every user, so one count serves the reads of this long. */
const STALE_COUNT_MAX_AGE_MS = 5000;

export class FigureTracker {
  private readonly changes = new CounterRate();
  private readonly heartbeats = new CounterRate();
  private readonly recentFlaps = new CounterRate(RECENT_FLAPS_MS);
  private readonly flaps = new FlapDetector();
  private stale: { at: number; count: number } | null = null;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(private readonly sources: FigureSources) {
    this.sample();
  }

  /** The change sink that sees every committed change (flaps come from it). */
  readonly sink: ChangeSink = {
    committed: (changes: readonly PresenceChange[]) => {
      for (const c of changes) this.flaps.observe(c.userId, c.previous.status, c.current.status, c.at);
    },
  };

  /** Takes one sample of the counters (the timer does each second; tests call it after moving the clock). */
  sample(): void {
    const now = this.sources.clock.now();
    this.changes.sample(now, this.sources.changesTotal());
    this.heartbeats.sample(now, this.sources.heartbeatsTotal());
    this.recentFlaps.sample(now, this.flaps.total);
    this.flaps.prune(now);
  }

  /** Samples every second until `stop` (the timer never holds the process open). */
  start(): void {
    if (this.timer !== null) return;
    this.timer = setInterval(() => this.sample(), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  private staleUsers(): number {
    const now = this.sources.clock.now();
    if (this.stale !== null && now - this.stale.at < STALE_COUNT_MAX_AGE_MS) return this.stale.count;
    let count = 0;
    for (const id of this.sources.userIds()) if (this.sources.isStale(id)) count += 1;
    this.stale = { at: now, count };
    return count;
  }

  figures(): OpsFigures {
    const w = this.sources.webhooks();
    const tracked = this.sources.trackedUsers();
    return {
      tracked_users: tracked,
      changes_per_second: this.changes.perSecond(),
      heartbeats_per_second: this.heartbeats.perSecond(),
      stream_connections: this.sources.streamConnections(),
      stale_ratio: staleRatio(this.staleUsers(), tracked),
      flaps_total: this.flaps.total,
      flaps_recent: this.recentFlaps.increase(),
      missed_device_pings_total: this.sources.missedDevicePingsTotal(),
      webhook_backlog: webhookBacklog(w.queued, w.in_flight),
    };
  }

  /** The figures as /metrics gauges, each read at scrape time. */
  gauges(): ExtraGauges {
    const one = (key: keyof OpsFigures) => () => this.figures()[key];
    return {
      presence_ops_tracked_users: { help: 'Users the engine tracks', read: one('tracked_users') },
      presence_ops_changes_per_second: {
        help: 'Committed presence changes per second, over the last minute',
        read: one('changes_per_second'),
      },
      presence_ops_heartbeats_per_second: {
        help: 'Device heartbeats (HTTP and stream devices) per second, over the last minute',
        read: one('heartbeats_per_second'),
      },
      presence_ops_stream_connections: {
        help: 'Open stream connections (SSE and WebSocket)',
        read: one('stream_connections'),
      },
      presence_ops_stale_ratio: {
        help: 'Share of tracked users whose presence is stale (had reports, none live)',
        read: one('stale_ratio'),
      },
      presence_ops_flaps_total: {
        help: 'Offline transitions reversed within 30 s, since start',
        read: one('flaps_total'),
        counter: true,
      },
      presence_ops_flaps_recent: {
        help: 'Offline transitions reversed within 30 s, over the last 10 minutes',
        read: one('flaps_recent'),
      },
      presence_ops_missed_device_pings_total: {
        help: 'Keepalive pings a device stream connection left unanswered, since start',
        read: one('missed_device_pings_total'),
        counter: true,
      },
      presence_ops_webhook_backlog: {
        help: 'Webhook deliveries not finished: waiting (first attempts and retries) and in flight',
        read: one('webhook_backlog'),
      },
    };
  }
}
