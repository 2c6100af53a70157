/**
 * @module connectors/zoom/types
 * Zoom presence (https://developers.zoom.us/docs/api/users/#tag/users/GET/users/{userId}/presence_status
 * and the `user.presence_status_updated` event).
 */

export interface ZoomPresenceStatusResponse {
  readonly status: string;
  readonly end_time?: string;
  readonly remaining_time?: number;
}

export interface ZoomPresenceEventObject {
  readonly id: string;
  readonly email?: string;
  readonly presence_status: string;
  /** The schema says date_time; the official example says date-time. Both are accepted. */
  readonly date_time?: string;
  readonly 'date-time'?: string;
  /** type: desktop, mobile, pad or pzr. */
  readonly app?: { readonly type: string; readonly presence_status: string };
}

export interface ZoomPresenceEvent {
  readonly event: 'user.presence_status_updated';
  readonly event_ts: number;
  readonly payload: { readonly account_id: string; readonly object: ZoomPresenceEventObject };
}
