/**
 * @module connectors/slack/descriptor
 * Slack: active/away is pull-only for modern apps (users.getPresence, Tier 3); custom status and
 * DND also arrive as Events API pushes.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const slack: ConnectorDescriptor = {
  platform: 'slack',
  displayName: 'Slack',
  mode: 'poll',
  auth: { kind: 'oauth2', scopes: ['users:read', 'dnd:read', 'users.profile:read'] },
  capabilities: {
    presence: 'native',
    activities: true,
    customStatus: true,
    devices: false,
    manualStates: true,
    identity: false,
  },
  defaultTtlMs: 3 * 60_000,
  notes: 'Polls users.getPresence within the Tier 3 budget; DND and custom status also arrive as events.',
};
