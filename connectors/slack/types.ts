/**
 * @module connectors/slack/types
 * Slack payloads the connector reads (https://docs.slack.dev/reference/methods/users.getPresence/,
 * …/dnd.teamInfo/, …/events/user_status_changed/). The pushed events are zod schemas: an event is
 * read only when every field the connector uses has its documented type.
 */

import { z } from 'zod';

/** `users.getPresence`: for another user only `presence`; for the token's own user the rest too. */
export interface SlackPresenceResponse {
  readonly ok: boolean;
  /** 'active' or 'away'; anything else is unknown to the mapper. */
  readonly presence: string;
  readonly online?: boolean;
  readonly auto_away?: boolean;
  readonly manual_away?: boolean;
  readonly connection_count?: number;
  readonly last_activity?: number;
}

/** One user of `dnd.teamInfo`, or `dnd_status` of a `dnd_updated_user` event (unix seconds). */
export interface SlackDndStatus {
  readonly dnd_enabled: boolean;
  readonly next_dnd_start_ts: number;
  readonly next_dnd_end_ts: number;
  readonly snooze_enabled?: boolean;
  readonly snooze_endtime?: number;
}

export interface SlackProfileStatus {
  readonly status_text?: string;
  readonly status_emoji?: string;
  /** unix seconds; 0 means no expiry. */
  readonly status_expiration?: number;
  /** `in_a_huddle` while the person is in a huddle (`default_unset` otherwise). */
  readonly huddle_state?: string;
  /** unix seconds; when the huddle state lapses (0 or absent: no expiry). */
  readonly huddle_state_expiration_ts?: number;
}

/** What the connector knows about one Slack user at one moment: the three sources combined. */
export interface SlackUserState {
  readonly presence: SlackPresenceResponse;
  readonly dnd?: SlackDndStatus | null;
  readonly profile?: SlackProfileStatus | null;
}

// ---------------------------------------------------------------- Events API (HTTP push)

const SlackId = z.string().min(1).max(64);
const UnixSeconds = z.number().finite().nonnegative();

/** The status and huddle fields of a profile, with their documented types. */
export const SlackProfileStatusSchema = z.object({
  status_text: z.string().max(1000).optional(),
  status_emoji: z.string().max(256).optional(),
  status_expiration: UnixSeconds.optional(),
  huddle_state: z.string().max(64).optional(),
  huddle_state_expiration_ts: UnixSeconds.optional(),
});

/**
 * `user_change`, `user_status_changed` and `user_huddle_changed`: the full user object; the
 * connector reads only the status and huddle fields of its profile. The three carry the same
 * payload (https://docs.slack.dev/reference/events/user_status_changed/ ,
 * https://docs.slack.dev/reference/events/user_huddle_changed/).
 */
export const SlackUserChangeEventSchema = z.object({
  type: z.enum(['user_change', 'user_status_changed', 'user_huddle_changed']),
  user: z.object({
    id: SlackId,
    team_id: SlackId.optional(),
    profile: SlackProfileStatusSchema,
  }),
  event_ts: z.string().optional(),
});
export type SlackUserChangeEvent = z.infer<typeof SlackUserChangeEventSchema>;

/**
 * `dnd_updated_user` (https://docs.slack.dev/reference/events/dnd_updated_user/):
 * `dnd_status { dnd_enabled, next_dnd_start_ts, next_dnd_end_ts }`; the snooze fields of
 * `dnd_updated` are read too when they come.
 */
export const SlackDndUpdatedUserEventSchema = z.object({
  type: z.literal('dnd_updated_user'),
  user: SlackId,
  dnd_status: z.object({
    dnd_enabled: z.boolean(),
    next_dnd_start_ts: UnixSeconds,
    next_dnd_end_ts: UnixSeconds,
    snooze_enabled: z.boolean().optional(),
    snooze_endtime: UnixSeconds.optional(),
  }),
  event_ts: z.string().optional(),
});
export type SlackDndUpdatedUserEvent = z.infer<typeof SlackDndUpdatedUserEventSchema>;

/** An inner event of a type the connector does not read. */
export interface SlackOtherEvent {
  readonly type: string;
  readonly [key: string]: unknown;
}

export type SlackEvent = SlackUserChangeEvent | SlackDndUpdatedUserEvent | SlackOtherEvent;

/** The outer envelope of an Events API delivery (https://docs.slack.dev/apis/events-api/). */
export interface SlackEventCallback {
  readonly type: 'event_callback';
  readonly team_id?: string;
  readonly api_app_id?: string;
  readonly event_id?: string;
  readonly event_time?: number;
  readonly event: SlackEvent;
}

/** The handshake Slack sends when the request URL is saved (https://api.slack.com/events/url_verification). */
export interface SlackUrlVerification {
  readonly type: 'url_verification';
  readonly challenge: string;
  readonly token?: string;
}
