/**
 * @module connectors/slack/types
 * Slack payloads the connector reads (https://docs.slack.dev/reference/methods/users.getPresence/,
 * …/dnd.teamInfo/, …/events/user_status_changed/).
 */

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
}

/** What the connector knows about one Slack user at one moment: the three sources combined. */
export interface SlackUserState {
  readonly presence: SlackPresenceResponse;
  readonly dnd?: SlackDndStatus | null;
  readonly profile?: SlackProfileStatus | null;
}

// ---------------------------------------------------------------- Events API (HTTP push)

/**
 * `user_change` / `user_status_changed`: the full user object; the connector reads only the status
 * fields of its profile (https://docs.slack.dev/reference/events/user_status_changed/).
 */
export interface SlackUserChangeEvent {
  readonly type: 'user_change' | 'user_status_changed';
  readonly user: {
    readonly id: string;
    readonly team_id?: string;
    readonly profile?: SlackProfileStatus;
  };
  readonly event_ts?: string;
}

/** `dnd_updated_user` (https://api.slack.com/events/dnd_updated_user). */
export interface SlackDndUpdatedUserEvent {
  readonly type: 'dnd_updated_user';
  readonly user: string;
  readonly dnd_status: SlackDndStatus;
  readonly event_ts?: string;
}

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
