/**
 * @module connectors/teams/types
 * Microsoft Graph presence (https://learn.microsoft.com/graph/api/resources/presence).
 */

export interface GraphPresence {
  readonly id?: string;
  readonly availability: string;
  readonly activity: string;
  readonly statusMessage?: GraphStatusMessage | null;
  readonly outOfOfficeSettings?: {
    readonly isOutOfOffice?: boolean;
    readonly message?: string | null;
  } | null;
}

export interface GraphStatusMessage {
  readonly message?: { readonly content?: string; readonly contentType?: string } | null;
  readonly expiryDateTime?: { readonly dateTime?: string; readonly timeZone?: string } | null;
}

export interface GraphPresencesResponse {
  readonly value: readonly GraphPresence[];
}

/** A change-notification subscription (https://learn.microsoft.com/graph/api/resources/subscription). */
export interface GraphSubscription {
  readonly id: string;
  readonly resource?: string;
  readonly changeType?: string;
  readonly notificationUrl?: string;
  readonly lifecycleNotificationUrl?: string | null;
  readonly expirationDateTime: string;
  readonly clientState?: string | null;
  /** The user (delegated) or service principal that created it (List subscriptions). */
  readonly creatorId?: string | null;
}

/** A page of `GET /subscriptions`: more follow at `@odata.nextLink`, an absolute URL. */
export interface GraphSubscriptionPage {
  readonly value?: unknown;
  readonly '@odata.nextLink'?: unknown;
}

/** The body of `POST /subscriptions` for presence (basic notifications: no resource data). */
export interface GraphSubscriptionRequest {
  readonly changeType: 'updated';
  readonly notificationUrl: string;
  readonly lifecycleNotificationUrl: string;
  readonly resource: string;
  readonly expirationDateTime: string;
  readonly clientState: string;
}

/**
 * One item of a change-notification POST. Since the 2024 change, a basic presence notification
 * names the user in `resourceData.id` and carries no availability or activity.
 */
export interface GraphChangeNotification {
  readonly subscriptionId?: string;
  readonly clientState?: string | null;
  readonly changeType?: string;
  readonly resource?: string;
  readonly subscriptionExpirationDateTime?: string;
  readonly resourceData?: {
    readonly '@odata.type'?: string;
    readonly '@odata.id'?: string;
    readonly id?: string;
  } | null;
  readonly tenantId?: string;
}

/** One item of a lifecycle-notification POST (https://learn.microsoft.com/graph/webhooks-lifecycle). */
export interface GraphLifecycleNotification {
  readonly lifecycleEvent?: string;
  readonly subscriptionId?: string;
  readonly subscriptionExpirationDateTime?: string;
  readonly clientState?: string | null;
  readonly tenantId?: string;
}

/** What Graph POSTs to a notification URL: `{ value: [...] }`. */
export interface GraphNotificationCollection<T> {
  readonly value: readonly T[];
}
