/**
 * @module connectors/discord/descriptor
 * Discord: a bot on the gateway with the privileged GuildPresences intent.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const discord: ConnectorDescriptor = {
  platform: 'discord',
  displayName: 'Discord',
  mode: 'gateway',
  auth: { kind: 'bot_token', scopes: ['Guilds', 'GuildMembers', 'GuildPresences'] },
  capabilities: {
    presence: 'native',
    activities: true,
    customStatus: true,
    devices: true,
    manualStates: true,
    identity: false,
  },
  // The gateway pushes every change while connected; the TTL only matters when it drops.
  defaultTtlMs: 15 * 60_000,
  notes: 'Gateway bot: initial state from GUILD_CREATE, then PRESENCE_UPDATE; only members of shared guilds.',
};
