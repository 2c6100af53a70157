/**
 * @module connectors/linkedin/descriptor
 * LinkedIn: identity only (OpenID Connect). No public presence API exists.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const linkedin: ConnectorDescriptor = {
  platform: 'linkedin',
  displayName: 'LinkedIn',
  mode: 'push',
  auth: { kind: 'oauth2', scopes: ['openid', 'profile', 'email'] },
  capabilities: {
    presence: 'none',
    activities: false,
    customStatus: false,
    devices: false,
    manualStates: false,
    identity: true,
  },
  defaultTtlMs: 0,
  notes: 'Identity only: LinkedIn has no public presence API, so it never contributes a status.',
};
