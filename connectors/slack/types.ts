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
