/**
 * @module connectors/zoom/descriptor
 * Zoom: polled per user and pushed by `user.presence_status_updated` webhooks.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const zoom: ConnectorDescriptor = {
  platform: 'zoom',
  displayName: 'Zoom',
  mode: 'push',
  auth: { kind: 'oauth2', scopes: ['user:read:presence_status:admin'] },
  capabilities: {
    presence: 'native',
    activities: true,
    customStatus: false,
    devices: true,
    manualStates: true,
    identity: false,
  },
  defaultTtlMs: 10 * 60_000,
  notes: 'Webhook user.presence_status_updated, reconciled by polling presence_status.',
};
