/**
 * @module connectors/slack/state
 * What the Slack connector keeps per workspace and user, and the pure steps on it: each method's
 * rate budget (`BudgetState`), when a user's mapping changes by itself (`remapAt`), what an Events
 * API delivery changes (`eventUpdate`), and what a method's answer changes (`fetchInto`).
 */

import type { MappedPresence } from '../../src/core/connector';
import type { AccountRef } from '../../src/core/ports';
import type { SlackApi } from './client';
import type { SlackConnectorOptions } from './options';
import {
  SlackDndUpdatedUserEventSchema,
  SlackUserChangeEventSchema,
  type SlackDndStatus,
  type SlackEventCallback,
  type SlackPresenceResponse,
  type SlackProfileStatus,
} from './types';

export type BudgetName = 'dnd' | 'profile' | 'presence';

export interface BudgetSpec {
  readonly method: string;
  readonly perMinute: number;
  readonly batch: number;
  /** 0 disables polling this method. */
  readonly intervalMs: number;
}

export interface BudgetState {
  nextSlotAt: number;
  /** Backoff after a failure (cleared by `resume`). */
  blockedUntil: number;
  /** A 429's Retry-After: never shortened, not even by `resume`. */
  retryAfterUntil: number;
  failures: number;
  /** The last call failed (cleared by a success). */
  failing: boolean;
}

export interface UserState {
  readonly account: AccountRef;
  presence: SlackPresenceResponse | null;
  dnd: SlackDndStatus | null;
  profile: SlackProfileStatus | null;
  readonly due: Record<BudgetName, number>;
  /** When the mapping changes without a call (a DND window or a custom status ending). */
  remapAt: number | null;
}

export interface Workspace {
  readonly id: string;
  readonly users: Map<string, UserState>;
  readonly budgets: Record<BudgetName, BudgetState>;
  authPaused: boolean;
  authRetryAt: number;
  /** The last successful presence call; presence is what this connector is for. */
  presenceOkAt: number | null;
  client: { readonly token: string; readonly api: SlackApi } | null;
}

export const BUDGETS: readonly BudgetName[] = ['dnd', 'profile', 'presence'];

export const newBudget = (): BudgetState => ({
  nextSlotAt: 0,
  blockedUntil: 0,
  retryAfterUntil: 0,
  failures: 0,
  failing: false,
});

/** The next moment the mapping changes by itself: a DND window or snooze starting or ending, a status expiring. */
export function remapAt(u: UserState, now: number): number | null {
  const nowS = now / 1000;
  const marks: number[] = [];
  if (u.dnd !== null) {
    if (u.dnd.dnd_enabled) marks.push(u.dnd.next_dnd_start_ts, u.dnd.next_dnd_end_ts);
    if (u.dnd.snooze_enabled === true && u.dnd.snooze_endtime !== undefined) marks.push(u.dnd.snooze_endtime);
  }
  const exp = u.profile?.status_expiration ?? 0;
  if (exp > 0) marks.push(exp);
  const huddleExp =
    u.profile?.huddle_state === 'in_a_huddle' ? (u.profile.huddle_state_expiration_ts ?? 0) : 0;
  if (huddleExp > 0) marks.push(huddleExp);
  const future = marks.filter((s) => s > nowS).map((s) => s * 1000);
  return future.length === 0 ? null : Math.min(...future);
}

/** What one delivery changes: whose state, in which workspaces it may be linked, and how. */
export interface EventUpdate {
  readonly userId: string;
  /** The workspace ids the event names (the envelope's, the user's). */
  readonly teams: readonly string[];
  readonly apply: (u: UserState) => void;
}

/**
 * `user_change`, `user_status_changed` and `user_huddle_changed` carry the profile with the
 * custom status and the huddle state, `dnd_updated_user` the DND state. An event is read only
 * when every field used has its documented type (types.ts); anything else is null.
 */
export function eventUpdate(envelope: SlackEventCallback): EventUpdate | null {
  const teams: unknown[] = [envelope.team_id];
  let userId: string;
  let apply: (u: UserState) => void;
  const change = SlackUserChangeEventSchema.safeParse(envelope.event);
  const dnd = change.success ? null : SlackDndUpdatedUserEventSchema.safeParse(envelope.event);
  if (change.success) {
    const { user } = change.data;
    const profile = user.profile;
    userId = user.id;
    teams.push(user.team_id);
    apply = (u) => {
      u.profile = {
        status_text: profile.status_text ?? '',
        status_emoji: profile.status_emoji ?? '',
        status_expiration: profile.status_expiration ?? 0,
        ...(profile.huddle_state !== undefined ? { huddle_state: profile.huddle_state } : {}),
        ...(profile.huddle_state_expiration_ts !== undefined
          ? { huddle_state_expiration_ts: profile.huddle_state_expiration_ts }
          : {}),
      };
    };
  } else if (dnd?.success === true) {
    userId = dnd.data.user;
    const d = dnd.data.dnd_status;
    apply = (u) => {
      u.dnd = {
        dnd_enabled: d.dnd_enabled,
        next_dnd_start_ts: d.next_dnd_start_ts,
        next_dnd_end_ts: d.next_dnd_end_ts,
        ...(d.snooze_enabled !== undefined ? { snooze_enabled: d.snooze_enabled } : {}),
        ...(d.snooze_endtime !== undefined ? { snooze_endtime: d.snooze_endtime } : {}),
      };
    };
  } else {
    return null;
  }
  return { userId, teams: teams.filter((t): t is string => typeof t === 'string'), apply };
}

/** Push-only, nothing set: a report that ends at once replaces whatever is still live. */
export const NOTHING_SET: MappedPresence = {
  state: {
    status: 'offline',
    activity: null,
    customStatus: null,
    source: 'inferred',
    raw: { cleared: true },
    label: 'nothing set',
  },
  devices: null,
};

/** Each method's budget: its tier's calls per minute, users per call, and how often it is due. */
export function budgetSpecs(
  options: SlackConnectorOptions,
  pollIntervalMs: number,
  pushOnly: boolean,
): Record<BudgetName, BudgetSpec> {
  return {
    dnd: {
      method: 'dnd.teamInfo',
      perMinute: options.tier2PerMinute ?? 20,
      batch: 50,
      intervalMs: pushOnly ? 0 : (options.dndIntervalMs ?? pollIntervalMs),
    },
    profile: {
      method: 'users.profile.get',
      perMinute: options.tier4PerMinute ?? 100,
      batch: 1,
      intervalMs: pushOnly ? 0 : (options.profileIntervalMs ?? pollIntervalMs),
    },
    presence: {
      method: 'users.getPresence',
      perMinute: options.tier3PerMinute ?? 50,
      batch: 1,
      intervalMs: pushOnly ? 0 : pollIntervalMs,
    },
  };
}

/** One call of a budget's method for the users due, its answer stored in their state. */
export async function fetchInto(
  name: BudgetName,
  api: SlackApi,
  due: readonly UserState[],
  now: number,
): Promise<void> {
  switch (name) {
    case 'presence': {
      const u = due[0]!;
      u.presence = await api.getPresence(u.account.externalId);
      return;
    }
    case 'profile': {
      const u = due[0]!;
      u.profile = await api.usersProfileGet(u.account.externalId);
      u.remapAt = remapAt(u, now);
      return;
    }
    case 'dnd': {
      const found = await api.dndTeamInfo(due.map((u) => u.account.externalId));
      for (const u of due) {
        u.dnd = found[u.account.externalId] ?? null;
        u.remapAt = remapAt(u, now);
      }
      return;
    }
  }
}
