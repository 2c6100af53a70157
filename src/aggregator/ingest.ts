/**
 * @module aggregator/ingest
 * Ingestion and reduction: a report (or an override) becomes an observation of the user; the
 * reducer is applied to the user's observations and, when its answer differs from the last one,
 * a change is queued with its transition. Also applies the boundaries time alone passes (an
 * expiry, a decay step) and forgets device entries past their retention.
 *
 * The hot path is a report of the same state again: times move in memory only, and the disk
 * hears of it through the refresh persister.
 */

import type { PresenceState } from '../core/changes';
import type { Clock } from '../core/clock';
import type { MappedPresence } from '../core/connector';
import type { LoadedUser } from '../core/ports';
import {
  effectiveStatus,
  isLive,
  sameCustomStatus,
  type Activity,
  type CustomStatus,
  type DecayStep,
  type Ladder,
  type NormalizedState,
  type Observation,
  type Platform,
  type Status,
} from '../core/presence';
import { changedFields, nextCheckAt, reduce } from '../normalizer/reduce';
import { explain, toPresence } from '../normalizer/view';
import type { ChangeSinks } from './change-pipeline';
import { endObservation, holdOpen, isEnded, shownLive, sourceOf, type ExpiryHold } from './expiry-hold';
import { DONE, type Ack, type GroupCommit } from './group-commit';
import type { RefreshPersister } from './refresh';
import type { Undo, UserState } from './user-state';
import type { TimingWheel } from './wheel';

export interface ReportInput {
  readonly platform: Platform;
  /** '' (default) for a platform-level report, otherwise the device key. */
  readonly device?: string;
  readonly state: NormalizedState;
  /** How long the report counts. Ignored when `decay` is given (its last step ends it). */
  readonly ttlMs: number;
  /** When the platform saw it; defaults to now. A report older than the one held is ignored. */
  readonly at?: number;
  readonly decay?: readonly DecayStep[] | null;
}

export interface OverrideInput {
  readonly status: Status;
  readonly activity: Activity | null;
  readonly customStatus: CustomStatus | null;
  readonly expiresAt: number;
}

export interface IngestParts {
  readonly users: ReadonlyMap<string, UserState>;
  readonly clock: Clock;
  readonly ladder: Ladder;
  readonly commit: GroupCommit;
  readonly wheel: TimingWheel;
  readonly refresh: RefreshPersister;
  readonly sinks: ChangeSinks;
  /** How long an expired device entry is kept for display before it is forgotten. */
  readonly deviceRetentionMs: number;
}

function sameContent(o: Observation, s: NormalizedState): boolean {
  return (
    o.status === s.status &&
    o.activity === s.activity &&
    o.source === s.source &&
    o.label === s.label &&
    sameCustomStatus(o.customStatus, s.customStatus)
  );
}

export class Ingest {
  private readonly users: ReadonlyMap<string, UserState>;
  private readonly clock: Clock;
  private readonly ladder: Ladder;
  private readonly commit: GroupCommit;
  private readonly wheel: TimingWheel;
  private readonly refresh: RefreshPersister;
  private readonly sinks: ChangeSinks;
  private readonly deviceRetentionMs: number;
  /** Set in several-node mode: expiries are decided in Redis, not here (see expiry-hold.ts). */
  hold: ExpiryHold | null = null;

  constructor(parts: IngestParts) {
    this.users = parts.users;
    this.clock = parts.clock;
    this.ladder = parts.ladder;
    this.commit = parts.commit;
    this.wheel = parts.wheel;
    this.refresh = parts.refresh;
    this.sinks = parts.sinks;
    this.deviceRetentionMs = parts.deviceRetentionMs;
  }

  /** Records one report; true when it waits for a commit. Throws for an unknown user. */
  record(userId: string, input: ReportInput): boolean {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    const now = this.clock.now();
    const device = input.device ?? '';
    const at = Math.min(input.at ?? now, now);
    const decay = input.decay ?? null;
    const lastStep = decay === null ? undefined : decay[decay.length - 1];
    const expiresAt = at + (lastStep === undefined ? input.ttlMs : lastStep.untilMs);
    if (expiresAt <= now) return false;

    const obs = u.observations;
    let index = -1;
    for (let i = 0; i < obs.length; i++) {
      const o = obs[i]!;
      if (o.platform === input.platform && o.device === device) {
        index = i;
        break;
      }
    }
    const existing = index >= 0 ? obs[index]! : undefined;
    if (existing !== undefined && at < existing.observedAt) return false; // never move backwards

    if (
      existing !== undefined &&
      decay === null &&
      existing.decay === null &&
      (isLive(existing, now) || (this.hold !== null && !isEnded(existing))) &&
      sameContent(existing, input.state)
    ) {
      // Several nodes (expiries held in Redis): this node's memory may not have followed another
      // node's last change yet, so "the same state again" here may be a change there. The next
      // commit checks the user's version (a `check` op: it writes nothing), finds the user stale
      // then, and the rebase makes the change again on the stored state with this report (it is
      // later than the stored one); batched, and no Redis round trip of its own (the expiry goes
      // as a refresh). The times reach the store through the refresh persister, as on one node.
      const checked = this.hold !== null;
      if (checked) this.commit.check(u);
      // The hot path: same state again. Times move in memory; the disk hears of it later.
      const shortened = expiresAt < existing.expiresAt;
      existing.observedAt = at;
      existing.expiresAt = expiresAt;
      u.invalidate();
      if (input.state.status === 'online' && (u.lastActiveAt === null || at > u.lastActiveAt))
        u.lastActiveAt = at;
      this.refresh.mark(u);
      this.hold?.observed(userId, existing, 'refresh');
      if (shortened) this.wheel.schedule(u, expiresAt);
      if (checked) return true;
      // A refresh of a report still waiting for its commit is only as good as that commit.
      return u.undo !== null && !u.undo.observations.includes(existing);
    }

    const s = input.state;
    const next: Observation = {
      platform: input.platform,
      device,
      status: s.status,
      activity: s.activity,
      customStatus: s.customStatus,
      source: s.source,
      raw: s.raw,
      label: s.label,
      decay,
      observedAt: at,
      changedAt: at,
      expiresAt,
    };
    this.commit.touch(u);
    if (index >= 0) obs[index] = next;
    else obs.push(next);
    if (effectiveStatus(next, now) === 'online' && (u.lastActiveAt === null || at > u.lastActiveAt))
      u.lastActiveAt = at;
    this.commit.enqueue({ op: 'observation', userId, obs: next });
    this.hold?.observed(userId, next, 'write');
    this.wheel.schedule(u, this.recompute(u, now, input.platform));
    return true;
  }

  /**
   * Records a mapper's answer: the platform-level state, and its device entries when the
   * platform lists devices. A device the platform no longer lists has gone offline there, so its
   * entry is ended rather than left to run out its TTL.
   */
  reportMapped(userId: string, platform: Platform, mapped: MappedPresence, ttlMs: number): Ack {
    // One report is one moment: the platform entry, its devices and the devices it no longer
    // lists all take the same time, even if the clock moves while they are recorded.
    const now = this.clock.now();
    const at = Math.min(mapped.at ?? now, now);
    let changed = this.record(userId, {
      platform,
      state: mapped.state,
      ttlMs,
      at,
      decay: mapped.decay ?? null,
    });
    if (mapped.devices !== null) {
      for (const device in mapped.devices) {
        const state = mapped.devices[device]!;
        if (this.record(userId, { platform, device, state, ttlMs, at })) changed = true;
      }
      const u = this.users.get(userId)!;
      const end = at;
      for (let i = 0; i < u.observations.length; i++) {
        const o = u.observations[i]!;
        if (o.platform !== platform || o.device === '' || o.device in mapped.devices || !isLive(o, now))
          continue;
        const ended: Observation = {
          ...o,
          observedAt: Math.max(o.observedAt, end),
          expiresAt: Math.max(o.observedAt, end),
        };
        this.commit.touch(u);
        u.observations[i] = ended;
        this.commit.enqueue({ op: 'observation', userId, obs: ended });
        this.hold?.observed(userId, ended, 'write');
        changed = true;
      }
      if (changed) this.wheel.schedule(u, this.recompute(u, now, platform));
    }
    return changed ? this.commit.acked(userId) : DONE;
  }

  setOverride(userId: string, input: OverrideInput): Ack {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    const now = this.clock.now();
    this.commit.touch(u);
    u.override = { ...input, setAt: now };
    this.commit.enqueue({ op: 'override', userId, override: u.override });
    this.wheel.schedule(u, this.recompute(u, now, 'override'));
    return this.commit.acked(userId);
  }

  /** Clears the override; resolves to false when there was none. */
  async clearOverride(userId: string): Promise<boolean> {
    const u = this.users.get(userId);
    if (u === undefined) throw new Error(`unknown user ${userId}`);
    if (u.override === null) return false;
    const now = this.clock.now();
    this.commit.touch(u);
    u.override = null;
    this.commit.enqueue({ op: 'override', userId, override: null });
    this.wheel.schedule(u, this.recompute(u, now, 'override'));
    await this.commit.acked(userId);
    return true;
  }

  /**
   * Applies every boundary of the user that has passed. Each change is recorded at the moment it
   * happened, also after downtime (online → idle → away of a fading signal, say). Reads call it
   * too, so an answer never lags the sweep.
   */
  catchUp(u: UserState, now: number): void {
    if (u.dueAt > now) return;
    let next = u.dueAt;
    // dueAt is moved only afterwards, so an undo record taken on the way keeps the boundary.
    do next = this.recompute(u, next, null);
    while (next <= now);
    this.wheel.reschedule(u, next);
  }

  /**
   * A user whose changes the store refused as stale (another node changed it first; see
   * group-commit.ts): its committed state becomes `stored`, and, when `keep`, what this node's
   * memory holds on top of `base` (the state its changes were made on) is taken again and queued:
   * each observation later than the stored one of its platform and device (last writer wins, as
   * between two reports on one node), the override when this node changed it, the later last
   * activity; then one reduce, which queues at most one change, at the stored version + 1.
   * Called with the user's undo record dropped and none of its ops queued.
   */
  rebase(u: UserState, stored: LoadedUser, base: Undo, cause: string | null, keep: boolean): void {
    const now = this.clock.now();
    const mine = { observations: u.observations, override: u.override, lastActiveAt: u.lastActiveAt };
    const a = stored.aggregate;
    u.observations = stored.observations.map((o) => ({ ...o }));
    u.override = stored.override;
    u.status = a?.status ?? 'offline';
    u.activity = a?.activity ?? null;
    u.customStatus = a?.customStatus ?? null;
    u.source = a?.source ?? null;
    u.version = a?.version ?? 0;
    u.lastActiveAt = a?.lastActiveAt ?? null;
    u.aggregateAt = a?.updatedAt ?? 0;
    u.invalidate();
    if (!keep) {
      this.wheel.reschedule(u, this.firstBoundary(u, u.aggregateAt));
      return;
    }
    const userId = u.userId;
    const taken: Observation[] = [];
    for (const o of mine.observations) {
      const s = u.observations.find((s) => s.platform === o.platform && s.device === o.device);
      if (s === undefined || o.observedAt > s.observedAt) taken.push(o);
    }
    const override = mine.override !== base.override;
    // The stored state is what a refused commit gives back from now on (an undo record is taken
    // only with a write, as everywhere: the commit clears it).
    if (taken.length > 0 || override) this.commit.touch(u);
    for (const o of taken) {
      const i = u.observations.findIndex((s) => s.platform === o.platform && s.device === o.device);
      if (i < 0) u.observations.push(o);
      else u.observations[i] = o;
      this.commit.enqueue({ op: 'observation', userId, obs: o });
    }
    if (override) {
      u.override = mine.override;
      this.commit.enqueue({ op: 'override', userId, override: mine.override });
    }
    if (mine.lastActiveAt !== null && (u.lastActiveAt === null || mine.lastActiveAt > u.lastActiveAt)) {
      u.lastActiveAt = mine.lastActiveAt;
      this.refresh.mark(u); // written with the next change, or by the refresh persister
    }
    this.wheel.reschedule(u, this.recompute(u, now, cause));
  }

  /** The first boundary of a loaded user after `since`, the last time its state was known right. */
  firstBoundary(u: UserState, since: number): number {
    return Math.min(nextCheckAt(this.reduced(u), u.override, since), this.pruneAt(u));
  }

  /**
   * The Redis sweep took the observation (several-node mode): it is ended now and the user
   * reduced again. False when there is nothing to end (unknown, already ended).
   */
  expire(userId: string, source: string): boolean {
    const u = this.users.get(userId);
    if (u === undefined) return false;
    const i = u.observations.findIndex((o) => sourceOf(o) === source);
    const o = i < 0 ? undefined : u.observations[i]!;
    if (o === undefined || isEnded(o)) return false;
    const now = this.clock.now();
    this.commit.touch(u);
    const gone = endObservation(o);
    u.observations[i] = gone;
    this.commit.enqueue({ op: 'observation', userId, obs: gone });
    this.wheel.schedule(u, this.recompute(u, now, null));
    return true;
  }

  /** The observations reads show (`shownLive` in several-node mode): `snapshot`'s, as of `now`. */
  shown(snapshot: { readonly observations: readonly Observation[] }, now: number): readonly Observation[] {
    return this.hold === null ? snapshot.observations : shownLive(snapshot.observations, now);
  }

  /** The observations the reducer sees: expiries held open in several-node mode. */
  private reduced(u: UserState): readonly Observation[] {
    return this.hold === null ? u.observations : holdOpen(u.observations);
  }

  /**
   * Reduces the user's state as of `at` and, when the answer differs from the last one, queues
   * a change. Returns the next moment the answer could change. `cause`: the platform whose
   * report is applied, 'override', or null when time is (an expiry, a decay step).
   */
  private recompute(u: UserState, at: number, cause: string | null): number {
    u.invalidate();
    this.prune(u, at);
    const seen = this.reduced(u);
    const held = reduce(seen, u.override, at, this.ladder);
    // A held copy won (holdOpen keeps the order): the view shows the observation's own times.
    const r =
      seen === u.observations || held.winner === null
        ? held
        : { ...held, winner: u.observations[seen.indexOf(held.winner)] ?? held.winner };
    const changed = changedFields(u, r);
    if (changed.length > 0) this.commit.touch(u);
    u.source = r.source;
    if (changed.length > 0) {
      const previous: PresenceState = {
        status: u.status,
        activity: u.activity,
        customStatus: u.customStatus,
      };
      u.status = r.status;
      u.activity = r.activity;
      u.customStatus = r.customStatus;
      u.version += 1;
      u.aggregateAt = at;
      this.commit.enqueue({
        op: 'aggregate',
        userId: u.userId,
        aggregate: {
          status: r.status,
          activity: r.activity,
          customStatus: r.customStatus,
          source: r.source,
          version: u.version,
          lastActiveAt: u.lastActiveAt,
          updatedAt: at,
        },
      });
      this.commit.enqueue({
        op: 'transition',
        transition: {
          userId: u.userId,
          version: u.version,
          at,
          fromStatus: previous.status,
          toStatus: r.status,
          fromActivity: previous.activity,
          toActivity: r.activity,
          source: r.source,
          platform: cause,
        },
      });
      this.commit.change({
        userId: u.userId,
        version: u.version,
        at,
        previous,
        current: r,
        changed,
        cause,
        explain: explain(held, seen, at),
        presence: this.sinks.listened ? toPresence(u, at, this.ladder, r, this.shown(u, at)) : null,
        ...(this.sinks.wantsState
          ? {
              reducedFrom: {
                observations: u.observations.slice(),
                override: u.override,
                lastActiveAt: u.lastActiveAt,
              },
            }
          : {}),
      });
    }
    return this.firstBoundary(u, at);
  }

  /** Forgets device entries that have been expired for longer than the retention. */
  private prune(u: UserState, now: number): void {
    const limit = now - this.deviceRetentionMs;
    let kept: Observation[] | null = null;
    for (let i = 0; i < u.observations.length; i++) {
      const o = u.observations[i]!;
      // A held expiry (several-node mode) is not past: only an ended entry is forgotten.
      const drop = o.device !== '' && o.expiresAt <= limit && (this.hold === null || isEnded(o));
      if (drop && kept === null) kept = u.observations.slice(0, i);
      if (drop)
        this.commit.enqueue({
          op: 'observation-delete',
          userId: u.userId,
          platform: o.platform,
          device: o.device,
        });
      else kept?.push(o);
    }
    if (kept !== null) {
      this.commit.touch(u);
      u.observations = kept;
    }
  }

  private pruneAt(u: UserState): number {
    let at = Number.POSITIVE_INFINITY;
    for (const o of u.observations)
      if (o.device !== '' && (this.hold === null || isEnded(o)))
        at = Math.min(at, o.expiresAt + this.deviceRetentionMs);
    return at;
  }
}
