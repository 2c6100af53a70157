/**
 * @module normalizer/view
 * Builds the presence object (docs/api.md) from a user's observations. Pure; the engine calls
 * it on reads, so it avoids needless allocation.
 */

import {
  effectiveStatus,
  isLive,
  liveCustomStatus,
  type Activity,
  type CustomStatus,
  type Ladder,
  type Observation,
  type Override,
  type Platform,
  type Source,
  type Status,
} from '../core/presence';
import { clockTime, toIso, toIsoOrNull } from '../core/time';
import { beats, countsForPlatform, reduce, type Reduction } from './reduce';

export interface CustomStatusView {
  text: string;
  emoji: string | null;
  expires_at: string | null;
}

export interface DeviceView {
  status: Status;
  observed_at: string;
  expires_at: string;
}

export interface PlatformView {
  status: Status;
  activity: Activity | null;
  source: Source;
  raw: unknown;
  observed_at: string;
  expires_at: string;
  /** True when this platform's last report is past its TTL: it is shown, but counts for nothing. */
  stale: boolean;
  devices: Record<string, DeviceView>;
}

export interface OverrideView {
  status: Status;
  activity: Activity | null;
  custom_status: CustomStatusView | null;
  set_at: string;
  expires_at: string;
}

export interface PresenceView {
  user_id: string;
  status: Status;
  activity: Activity | null;
  custom_status: CustomStatusView | null;
  source: Source | null;
  observed_at: string | null;
  last_active_at: string | null;
  expires_at: string | null;
  stale: boolean;
  version: number;
  reachable_via: Platform[];
  /** Linked platforms that establish who the person is and never report presence. */
  identity_only: Platform[];
  explain: string;
  override: OverrideView | null;
  platforms: Partial<Record<Platform, PlatformView>>;
}

export interface UserSnapshot {
  readonly userId: string;
  readonly observations: readonly Observation[];
  readonly override: Override | null;
  readonly version: number;
  readonly lastActiveAt: number | null;
  /** Linked platforms that establish identity and report no presence (LinkedIn). */
  readonly identityOnly?: readonly Platform[] | null;
}

export function customStatusView(cs: CustomStatus | null): CustomStatusView | null {
  return cs === null ? null : { text: cs.text, emoji: cs.emoji, expires_at: toIsoOrNull(cs.expiresAt) };
}

function deviceView(obs: Observation, now: number): DeviceView {
  return {
    status: effectiveStatus(obs, now),
    observed_at: toIso(obs.observedAt),
    expires_at: toIso(obs.expiresAt),
  };
}

/**
 * One entry per platform. Its state is the platform-level report, or for a platform that only
 * has device entries (heartbeats), the best live device (the newest one when none is live).
 */
function platformViews(
  observations: readonly Observation[],
  now: number,
  ladder: Ladder,
): { views: Partial<Record<Platform, PlatformView>>; reachable: Observation[] } {
  const heads = new Map<Platform, Observation>();
  for (const obs of observations) {
    if (!countsForPlatform(obs, observations)) continue;
    const head = heads.get(obs.platform);
    if (head === undefined) {
      heads.set(obs.platform, obs);
      continue;
    }
    const obsLive = isLive(obs, now);
    const headLive = isLive(head, now);
    if (
      obsLive !== headLive
        ? obsLive
        : obsLive
          ? beats(obs, head, now, ladder)
          : obs.observedAt > head.observedAt
    ) {
      heads.set(obs.platform, obs);
    }
  }
  const views: Partial<Record<Platform, PlatformView>> = {};
  const reachable: Observation[] = [];
  for (const [platform, head] of heads) {
    const live = isLive(head, now);
    const status = live ? effectiveStatus(head, now) : 'offline';
    const devices: Record<string, DeviceView> = {};
    let observedAt = head.observedAt;
    let expiresAt = head.expiresAt;
    for (const obs of observations) {
      if (obs.platform !== platform || obs.device === '') continue;
      devices[obs.device] = deviceView(obs, now);
      if (head.device !== '') {
        observedAt = Math.max(observedAt, obs.observedAt);
        expiresAt = Math.max(expiresAt, obs.expiresAt);
      }
    }
    views[platform] = {
      status,
      activity: live ? head.activity : null,
      source: head.source,
      raw: head.raw,
      observed_at: toIso(observedAt),
      expires_at: toIso(expiresAt),
      stale: !live,
      devices,
    };
    if (live && (status === 'online' || status === 'idle')) reachable.push(head);
  }
  reachable.sort((a, b) => (beats(a, b, now, ladder) ? -1 : 1));
  return { views, reachable };
}

function describe(obs: Observation, now: number): string {
  const who =
    obs.device === ''
      ? obs.platform
      : obs.platform === 'device'
        ? `device ${obs.device}`
        : `${obs.platform} device ${obs.device}`;
  const verb = obs.source === 'inferred' ? 'saw' : 'reported';
  let text = `${who} ${verb} ${obs.label} (${obs.source} tier) at ${clockTime(obs.observedAt)}`;
  if (obs.decay !== null && effectiveStatus(obs, now) !== obs.status) {
    text += `, faded to ${effectiveStatus(obs, now)}`;
  }
  return text;
}

export function explain(r: Reduction, observations: readonly Observation[], now: number): string {
  if (r.override !== null) {
    const act = r.override.activity === null ? '' : `/${r.override.activity}`;
    return `override ${r.override.status}${act} set through the API at ${clockTime(r.override.setAt)}, until ${clockTime(r.override.expiresAt)}; it beats every platform report`;
  }
  if (r.winner !== null) {
    let rivals = 0;
    for (const obs of observations) if (obs !== r.winner && isLive(obs, now)) rivals += 1;
    const contest =
      rivals === 0 ? 'the only live report' : `beats ${rivals} other live report${rivals === 1 ? '' : 's'}`;
    return `${describe(r.winner, now)}; ${contest}; no override`;
  }
  let newest: Observation | null = null;
  for (const obs of observations) if (newest === null || obs.observedAt > newest.observedAt) newest = obs;
  if (newest === null) return 'no reports yet: offline until a platform or device reports';
  return `no live report: ${describe(newest, now)}, expired at ${clockTime(newest.expiresAt)}`;
}

export function overrideView(ov: Override, now: number): OverrideView {
  return {
    status: ov.status,
    activity: ov.activity,
    custom_status: customStatusView(liveCustomStatus(ov.customStatus, now)),
    set_at: toIso(ov.setAt),
    expires_at: toIso(ov.expiresAt),
  };
}

export function toPresence(
  user: UserSnapshot,
  now: number,
  ladder: Ladder,
  reduction?: Reduction,
  /** The observations as shown (several nodes: expiries held open, aggregator/expiry-hold.ts). */
  observations: readonly Observation[] = user.observations,
): PresenceView {
  const r = reduction ?? reduce(observations, user.override, now, ladder);
  const { views, reachable } = platformViews(observations, now, ladder);
  let observedAt: number | null = null;
  let expiresAt: number | null = null;
  if (r.override !== null) {
    observedAt = r.override.setAt;
    expiresAt = r.override.expiresAt;
  } else if (r.winner !== null) {
    observedAt = r.winner.observedAt;
    expiresAt = r.winner.expiresAt;
  } else {
    for (const obs of observations)
      if (observedAt === null || obs.observedAt > observedAt) observedAt = obs.observedAt;
  }
  return {
    user_id: user.userId,
    status: r.status,
    activity: r.activity,
    custom_status: customStatusView(r.customStatus),
    source: r.source,
    observed_at: toIsoOrNull(observedAt),
    last_active_at: toIsoOrNull(user.lastActiveAt),
    expires_at: toIsoOrNull(expiresAt),
    stale: r.override === null && r.winner === null && observations.length > 0,
    version: user.version,
    reachable_via: reachable.map((o) => o.platform),
    identity_only: user.identityOnly == null ? [] : [...user.identityOnly],
    explain: explain(r, observations, now),
    override: r.override === null ? null : overrideView(r.override, now),
    platforms: views,
  };
}
