/**
 * @module connectors/discord
 * The Discord module: a bot on the gateway. No inbound route.
 */

import type { ConnectorModule } from '../module';
import type * as DiscordConnectorModule from './connector';
import { discord as descriptor } from './descriptor';

export { discord } from './descriptor';
export { toDiscordPresence as map } from './map';

/**
 * The connector's code, loaded only when a bot token is set: discord.js takes half a second to
 * load. `require`, not `import()`: a dynamic import goes through Node's ESM loader, which the
 * CommonJS hook that `bin/presence.js` runs the sources with (tsx/cjs) does not cover, so
 * `presence serve` failed with ERR_MODULE_NOT_FOUND. Compiled to CommonJS it is the same call.
 */
function loadConnector(): typeof DiscordConnectorModule {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- see above
  return require('./connector') as typeof DiscordConnectorModule;
}

export const discordModule: ConnectorModule = {
  descriptor,
  // DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET are the OAuth app's (connecting an account).
  env: {
    polling: ['DISCORD_BOT_TOKEN', 'DISCORD_CLIENT_ID', 'DISCORD_CLIENT_SECRET', 'DISCORD_API_URL'],
    inbound: [],
  },
  credentials: [['DISCORD_BOT_TOKEN']],
  needs: [],
  create({ env, clock, run, coordination }) {
    if (!run || env.DISCORD_BOT_TOKEN === undefined) return { connector: null, inbound: null };
    const { DiscordConnector } = loadConnector();
    return {
      connector: new DiscordConnector({
        token: env.DISCORD_BOT_TOKEN,
        apiUrl: env.DISCORD_API_URL,
        clock,
        // Several nodes: one gateway per bot, held by the node with its lease lock.
        locks: coordination?.locks,
      }),
      inbound: null,
    };
  },
};
