/**
 * @module types
 * The shapes this service sends, for consumers of the package: the presence object and the
 * webhook events. Types only (no runtime code), and taken from the types the service itself
 * builds its answers with, so they cannot drift from what it sends. See docs/api.md.
 */

import type { Activity, Platform, RealPlatform, Source, Status } from './core/presence';
import type {
  CustomStatusView,
  DeviceView,
  OverrideView,
  PlatformView,
  PresenceView,
} from './normalizer/view';

export type { Activity, Platform, RealPlatform, Source, Status };

/** A presence object, as `GET /v1/presence/{user_id}` answers and `presence.changed` carries. */
export type Presence = PresenceView;
/** One platform's last report inside `Presence.platforms`. */
export type PlatformPresence = PlatformView;
/** One device inside `PlatformPresence.devices` (Discord `client_status`, device heartbeats). */
export type DevicePresence = DeviceView;
/** `{ text, emoji, expires_at }`. */
export type CustomStatus = CustomStatusView;
/** An override set through the API, while it lasts. */
export type PresenceOverride = OverrideView;

/** The fields a `presence.changed` event says changed. */
export type ChangedField = 'status' | 'activity' | 'custom_status';

/** Every event body: `{ type, timestamp, data }`, `timestamp` ISO-8601 UTC. */
interface EventOf<Type extends string, Data> {
  readonly type: Type;
  readonly timestamp: string;
  readonly data: Data;
}

export type PresenceChangedEvent = EventOf<
  'presence.changed',
  {
    readonly user_id: string;
    readonly version: number;
    readonly previous: {
      readonly status: Status;
      readonly activity: Activity | null;
      readonly custom_status: CustomStatus | null;
    };
    readonly current: Presence;
    readonly changed: readonly ChangedField[];
  }
>;

/** A user was deleted; `version` is their last one (a user created again starts at 1). */
export type UserDeletedEvent = EventOf<
  'user.deleted',
  { readonly user_id: string; readonly version: number }
>;

interface ConnectionEventData {
  readonly connection_id: string;
  readonly platform: string;
  readonly kind: 'user' | 'app';
  readonly user_id: string | null;
  readonly external_id: string;
  readonly workspace_id: string | null;
  readonly reason: string;
  readonly at: string;
}

/** The person must connect again (the grant is gone or expired). */
export type ConnectionReauthRequiredEvent = EventOf<'connection.reauth_required', ConnectionEventData>;
/** The connection was revoked (at the platform, or deleted through the API). */
export type ConnectionRevokedEvent = EventOf<'connection.revoked', ConnectionEventData>;

interface ConnectorEventData {
  readonly platform: RealPlatform;
  readonly health: 'ok' | 'degraded' | 'down';
  readonly last_error: string | null;
  readonly last_success_at: string | null;
}

export type ConnectorDegradedEvent = EventOf<'connector.degraded', ConnectorEventData>;
export type ConnectorRecoveredEvent = EventOf<'connector.recovered', ConnectorEventData>;

/** Sent to the other endpoints when one is disabled (a 410, or failing for 5 days). */
export type WebhookEndpointDisabledEvent = EventOf<
  'webhook.endpoint_disabled',
  {
    readonly endpoint_id: string;
    /** The endpoint URL, with any credentials in it removed. */
    readonly url: string;
    readonly reason: 'gone' | 'failing';
    readonly detail: string;
    readonly disabled_at: string;
    readonly failing_since: string | null;
  }
>;

/** Any event this service sends; narrow it with `switch (event.type)`. */
export type WebhookEvent =
  | PresenceChangedEvent
  | UserDeletedEvent
  | ConnectionReauthRequiredEvent
  | ConnectionRevokedEvent
  | ConnectorDegradedEvent
  | ConnectorRecoveredEvent
  | WebhookEndpointDisabledEvent;

export type WebhookEventType = WebhookEvent['type'];
