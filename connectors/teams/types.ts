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
