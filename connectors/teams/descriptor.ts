/**
 * @module connectors/teams/descriptor
 * Microsoft Teams through Microsoft Graph: polled in batches of up to 650 users, and pushed by
 * change-notification subscriptions for users with delegated connections.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const teams: ConnectorDescriptor = {
  platform: 'teams',
  displayName: 'Microsoft Teams',
  mode: 'poll',
  auth: { kind: 'oauth2', scopes: ['Presence.Read.All', 'offline_access'] },
  capabilities: {
    presence: 'native',
    activities: true,
    customStatus: true,
    devices: false,
    manualStates: false,
    identity: false,
  },
  defaultTtlMs: 3 * 60_000,
  notes: 'Polls getPresencesByUserId (650 ids a call); subscriptions push changes for delegated users.',
};
