/**
 * @module connectors/simulated/world
 * A seeded simulation of people going through a working day, and of what each platform would
 * say about them in its OWN vocabulary: Teams `Busy/InAMeeting`, Slack `active`/`away` with DND
 * and custom status, Discord `dnd` with `client_status`, Zoom `In_Meeting`, WhatsApp message
 * webhooks, and device heartbeats. Nothing here is normalized: the real mappers do that.
 *
 * What each platform says about a state is words.ts.
 *
 * Deterministic: the output depends only on the seed, the start time and the time advanced to,
 * not on how often `advanceTo` is called.
 */

import type { AccountRef } from '../../src/core/ports';
import type { Activity, RealPlatform, Status } from '../../src/core/presence';
import type { DiscordPresence } from '../discord/types';
import type { SlackUserState } from '../slack/types';
import type { GraphPresence } from '../teams/types';
import type { WhatsAppWebhook } from '../whatsapp/types';
import type { ZoomPresenceEventObject } from '../zoom/types';
import { Random, TimeQueue } from './random';
import { discordWords, heartbeatWords, slackWords, teamsWords, whatsappWords, zoomWords } from './words';

/** What a person is really doing. */
export type Life =
  'working' | 'idle' | 'meeting' | 'call' | 'presenting' | 'focus' | 'break' | 'mobile' | 'offline';

const SECOND = 1000;
const MINUTE = 60 * SECOND;

/** Where a person goes next from each state, by weight. */
const NEXT: Record<Life, Partial<Record<Life, number>>> = {
  working: { idle: 4, meeting: 3, call: 2, focus: 2, break: 2, mobile: 1, offline: 1 },
  idle: { working: 6, break: 2, offline: 1, meeting: 1 },
  meeting: { working: 5, presenting: 1, idle: 1, call: 1 },
  call: { working: 5, meeting: 1, idle: 1 },
  presenting: { meeting: 2, working: 3 },
  focus: { working: 5, break: 1, meeting: 1 },
  break: { working: 5, mobile: 2, offline: 1 },
  mobile: { working: 4, break: 1, offline: 2 },
  offline: { working: 4, mobile: 2 },
};
/**
 * How long a person stays in each state, in seconds. The simulated day is compressed: a meeting
 * lasts half a minute, not an hour, so that a one-minute demo at real speed shows about fifty
 * changes with 12 people, all the way through, instead of two or three in the first seconds.
 */
const DWELL: Record<Life, readonly [number, number]> = {
  working: [8, 30],
  idle: [5, 15],
  meeting: [15, 45],
  call: [8, 25],
  presenting: [8, 20],
  focus: [15, 40],
  break: [8, 25],
  mobile: [8, 25],
  offline: [10, 35],
};

export interface SimPerson {
  readonly userId: string;
  readonly displayName: string;
  readonly accounts: readonly AccountRef[];
  life: Life;
  lifeSince: number;
  lifeUntil: number;
}

export type SimEvent =
  | {
      readonly kind: 'slack';
      readonly at: number;
      readonly account: AccountRef;
      readonly raw: SlackUserState;
    }
  | { readonly kind: 'teams'; readonly at: number; readonly account: AccountRef; readonly raw: GraphPresence }
  | {
      readonly kind: 'discord';
      readonly at: number;
      readonly account: AccountRef;
      readonly raw: DiscordPresence;
    }
  | {
      readonly kind: 'zoom';
      readonly at: number;
      readonly account: AccountRef;
      readonly raw: ZoomPresenceEventObject;
    }
  | { readonly kind: 'whatsapp'; readonly at: number; readonly raw: WhatsAppWebhook }
  | {
      readonly kind: 'heartbeat';
      readonly at: number;
      readonly userId: string;
      readonly deviceId: string;
      readonly status: Status;
      readonly activity: Activity | null;
      readonly ttlMs: number;
    }
  | {
      readonly kind: 'life';
      readonly at: number;
      readonly userId: string;
      readonly from: Life;
      readonly to: Life;
    };

export interface WorldOptions {
  readonly seed: number;
  readonly users: number;
  readonly start: number;
  /** Slack and Teams poll interval (simulated time); 10 s by default, times `pace`. */
  readonly pollMs?: number;
  /**
   * How many times slower than the compressed default each person's day runs (1 or more): states
   * last `pace` times longer, and polls, heartbeats and messages come `pace` times less often.
   * First reports spread over up to `8 s × pace` (the first people still within 8 s), so the
   * start is no burst either.
   */
  readonly pace?: number;
}

type Task =
  | { readonly t: 'life'; readonly p: SimPerson }
  | { readonly t: 'poll'; readonly p: SimPerson; readonly platform: 'slack' | 'teams' }
  | {
      readonly t: 'push';
      readonly p: SimPerson;
      readonly platform: 'discord' | 'zoom';
      readonly refresh: boolean;
    }
  | { readonly t: 'whatsapp'; readonly p: SimPerson; readonly first: boolean }
  | { readonly t: 'device'; readonly p: SimPerson; readonly device: 'laptop' | 'phone' };

const NAMES = [
  'alice',
  'bob',
  'carol',
  'dave',
  'erin',
  'frank',
  'grace',
  'heidi',
  'ivan',
  'judy',
  'mallory',
  'niaj',
];
export const SIM_WORKSPACE: Readonly<Partial<Record<RealPlatform, string>>> = {
  slack: 'T0SIMULATED',
  teams: '00000000-0000-4000-8000-00000000517e',
};

const PUSH_REFRESH_MS = 5 * MINUTE;
export const DEFAULT_POLL_MS = 10 * SECOND;
/** Heartbeats: a laptop every 10 s, a phone every 15 s, each kept alive for three beats. */
const LAPTOP_EVERY_MS = 10 * SECOND;
const PHONE_EVERY_MS = 15 * SECOND;
/** Every linked platform reports within this long of the start (times `pace`), WhatsApp included. */
const FIRST_REPORT_MS = 8 * SECOND;

export class SimulatedWorld {
  readonly people: SimPerson[] = [];
  private readonly rng: Random;
  private readonly queue = new TimeQueue<Task>();
  /** The Slack and Teams poll interval in effect (pace included). */
  readonly pollMs: number;
  private readonly pace: number;
  private now: number;
  private started = false;
  private messageSeq = 0;

  constructor(options: WorldOptions) {
    this.rng = new Random(options.seed);
    this.now = options.start;
    this.pace = Math.max(1, options.pace ?? 1);
    this.pollMs = (options.pollMs ?? DEFAULT_POLL_MS) * this.pace;
    for (let i = 0; i < options.users; i++) this.people.push(this.makePerson(i, options.start));
    this.people.forEach((p, i) => this.schedulePerson(p, options.start, this.firstWindow(i, options.users)));
  }

  private makePerson(i: number, start: number): SimPerson {
    const base = NAMES[i % NAMES.length]!;
    const userId = i < NAMES.length ? base : `${base}${Math.floor(i / NAMES.length) + 1}`;
    const n = String(i + 1).padStart(4, '0');
    // The first few people have all six platforms so the demo shows each; others a random subset.
    const has = (p: RealPlatform): boolean => i < 4 || p === 'slack' || this.rng.chance(0.6);
    const accounts: AccountRef[] = [];
    if (has('slack'))
      accounts.push({ platform: 'slack', workspaceId: SIM_WORKSPACE.slack!, externalId: `U0SIM${n}` });
    if (has('teams')) {
      accounts.push({
        platform: 'teams',
        workspaceId: SIM_WORKSPACE.teams!,
        // A GUID at any --users: the last group is always 12 hex digits.
        externalId: `5e0c0000-0000-4000-8000-${n.padStart(12, '0')}`,
      });
    }
    if (has('discord'))
      accounts.push({ platform: 'discord', workspaceId: '', externalId: `80351110224${n}` });
    if (has('zoom')) accounts.push({ platform: 'zoom', workspaceId: '', externalId: `zSim${n}` });
    if (has('whatsapp')) accounts.push({ platform: 'whatsapp', workspaceId: '', externalId: `1555000${n}` });
    if (has('linkedin')) accounts.push({ platform: 'linkedin', workspaceId: '', externalId: `li-sim-${n}` });
    const life = this.rng.weighted<Life>({ working: 5, meeting: 2, idle: 1, mobile: 1, offline: 1 });
    const [lo, hi] = DWELL[life];
    return {
      userId,
      displayName: base[0]!.toUpperCase() + base.slice(1),
      accounts,
      life,
      lifeSince: start,
      lifeUntil: start + this.dwell(lo, hi),
    };
  }

  /**
   * How soon person `i` first reports: within 8 s for the first people (the top of the demo's
   * table), up to 8 s × pace for the last, so a large crowd does not all arrive at once.
   */
  private firstWindow(i: number, users: number): number {
    return Math.round(FIRST_REPORT_MS * (1 + ((this.pace - 1) * i) / Math.max(1, users)));
  }

  private schedulePerson(p: SimPerson, start: number, first: number): void {
    this.queue.push(p.lifeUntil, { t: 'life', p });
    for (const a of p.accounts) {
      const jitter = this.rng.int(0, first);
      if (a.platform === 'slack' || a.platform === 'teams')
        this.queue.push(start + jitter, { t: 'poll', p, platform: a.platform });
      if (a.platform === 'discord' || a.platform === 'zoom') {
        this.queue.push(start + jitter, { t: 'push', p, platform: a.platform, refresh: true });
      }
      if (a.platform === 'whatsapp')
        this.queue.push(start + this.rng.int(SECOND, first), { t: 'whatsapp', p, first: true });
    }
    this.queue.push(start + this.rng.int(0, Math.round((3 * first) / 8)), {
      t: 'device',
      p,
      device: 'laptop',
    });
    this.queue.push(start + this.rng.int(0, first), { t: 'device', p, device: 'phone' });
  }

  /** A stay of `lo`..`hi` seconds, at this world's pace. */
  private dwell(lo: number, hi: number): number {
    return this.rng.int(lo * SECOND * this.pace, hi * SECOND * this.pace);
  }

  /**
   * Moves the whole day to begin at `start` instead, as if constructed with it (the demo registers
   * its people before the day begins, which can take a while). Only before the first `advanceTo`.
   */
  restartAt(start: number): void {
    if (this.started) throw new Error('restartAt after the simulation has advanced');
    const delta = start - this.now;
    this.queue.shift(delta);
    for (const p of this.people) {
      p.lifeSince += delta;
      p.lifeUntil += delta;
    }
    this.now = start;
  }

  /** Runs the simulation up to `now` and returns what happened, in time order. */
  advanceTo(now: number): SimEvent[] {
    this.started = true;
    const events: SimEvent[] = [];
    while (this.queue.peekAt() <= now) {
      const { at, value } = this.queue.pop()!;
      this.now = at;
      this.run(value, at, events);
    }
    this.now = Math.max(this.now, now);
    return events;
  }

  private account(p: SimPerson, platform: RealPlatform): AccountRef | undefined {
    return p.accounts.find((a) => a.platform === platform);
  }

  private run(task: Task, at: number, out: SimEvent[]): void {
    const p = task.p;
    switch (task.t) {
      case 'life': {
        const from = p.life;
        const to = this.rng.weighted<Life>(NEXT[from]);
        const [lo, hi] = DWELL[to];
        p.life = to;
        p.lifeSince = at;
        p.lifeUntil = at + this.dwell(lo, hi);
        out.push({ kind: 'life', at, userId: p.userId, from, to });
        this.queue.push(p.lifeUntil, { t: 'life', p });
        // Push platforms tell within seconds.
        for (const platform of ['discord', 'zoom'] as const) {
          if (this.account(p, platform)) {
            this.queue.push(at + this.rng.int(200, 3 * SECOND), { t: 'push', p, platform, refresh: false });
          }
        }
        return;
      }
      case 'poll': {
        const account = this.account(p, task.platform)!;
        if (task.platform === 'slack') out.push({ kind: 'slack', at, account, raw: slackWords(p, at) });
        else out.push({ kind: 'teams', at, account, raw: teamsWords(p) });
        this.queue.push(at + this.pollMs, task);
        return;
      }
      case 'push': {
        const account = this.account(p, task.platform)!;
        if (task.platform === 'discord') out.push({ kind: 'discord', at, account, raw: discordWords(p) });
        else out.push({ kind: 'zoom', at, account, raw: zoomWords(p, account, at) });
        // Gateway and webhook connectors also reconcile every few minutes.
        if (task.refresh) this.queue.push(at + PUSH_REFRESH_MS, task);
        return;
      }
      case 'whatsapp': {
        const account = this.account(p, 'whatsapp')!;
        // The first one comes whatever the person is doing (the morning's messages, read), so
        // WhatsApp shows from the start of a demo.
        const awake = task.first || (p.life !== 'offline' && p.life !== 'focus' && p.life !== 'presenting');
        if (awake) out.push({ kind: 'whatsapp', at, raw: this.whatsapp(account, at) });
        // Someone on the phone or on a break messages more often than someone at their desk.
        const most = p.life === 'mobile' || p.life === 'break' ? 30 * SECOND : 90 * SECOND;
        this.queue.push(at + this.rng.int(5 * SECOND, most) * this.pace, { ...task, first: false });
        return;
      }
      case 'device': {
        const hb = heartbeatWords(p, task.device);
        const every = (task.device === 'laptop' ? LAPTOP_EVERY_MS : PHONE_EVERY_MS) * this.pace;
        if (hb !== null) {
          out.push({
            kind: 'heartbeat',
            at,
            userId: p.userId,
            deviceId: `${p.userId}-${task.device}`,
            ...hb,
            ttlMs: every * 3,
          });
        }
        this.queue.push(at + every, task);
        return;
      }
    }
  }

  /** A message or a read receipt from the person's phone (the receipt about a third of the time). */
  private whatsapp(account: AccountRef, at: number): WhatsAppWebhook {
    this.messageSeq += 1;
    return whatsappWords(account, at, this.messageSeq, this.rng.chance(0.35));
  }
}
