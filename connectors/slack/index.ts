/**
 * @module connectors/slack
 * The Slack module: polling with a bot token, or with the tokens of workspaces connected through
 * OAuth; Events API pushes once the signing secret is set (alone, they are the connector).
 */

import type { ConnectorModule } from '../module';
import { slackTokensFrom } from './connections';
import { SlackConnector } from './connector';
import { slack as descriptor } from './descriptor';
import { slackInbound } from './inbound';

export { slack } from './descriptor';
export { toSlackPresence as map } from './map';

export const slackModule: ConnectorModule = {
  descriptor,
  env: {
    polling: [
      'SLACK_BOT_TOKEN',
      'SLACK_CLIENT_ID',
      'SLACK_CLIENT_SECRET',
      'SLACK_API_URL',
      'SLACK_POLL_INTERVAL',
    ],
    inbound: ['SLACK_SIGNING_SECRET'],
  },
  credentials: [['SLACK_BOT_TOKEN'], ['SLACK_CLIENT_ID', 'SLACK_CLIENT_SECRET'], ['SLACK_SIGNING_SECRET']],
  inboundSecret: 'SLACK_SIGNING_SECRET',
  // With the client id and secret, the workspaces people connected are polled with their tokens.
  needs: ['connections'],
  create({ env, clock, log, connections, run, coordination }) {
    if (!run) return { connector: null, inbound: null };
    const common = {
      apiUrl: env.SLACK_API_URL,
      pollIntervalMs: env.SLACK_POLL_INTERVAL,
      clock,
      log,
      buckets: coordination?.buckets,
    };
    let connector: SlackConnector | null = null;
    if (env.SLACK_BOT_TOKEN !== undefined) {
      connector = new SlackConnector({
        ...common,
        token: env.SLACK_BOT_TOKEN,
        onAuthError: ({ workspaceId }) =>
          log.error({ platform: 'slack', workspaceId }, 'Slack refused the bot token; polling paused'),
      });
    } else if (
      connections !== null &&
      env.SLACK_CLIENT_ID !== undefined &&
      env.SLACK_CLIENT_SECRET !== undefined
    ) {
      // No bot token: poll the workspaces people connected through OAuth, with their tokens.
      connector = new SlackConnector({ ...slackTokensFrom(connections), ...common });
    } else if (env.SLACK_SIGNING_SECRET !== undefined) {
      // No polling credentials: the pushed events alone (DND, custom status, huddles) still apply.
      connector = new SlackConnector({ pushOnly: true, clock, log });
    }
    // Verified events are acknowledged even without polling credentials; the connector turns
    // them into presence.
    const inbound =
      env.SLACK_SIGNING_SECRET === undefined || connector === null
        ? null
        : slackInbound({
            signingSecret: env.SLACK_SIGNING_SECRET,
            clock,
            log,
            port: connector,
            deliveries: coordination?.deliveries,
          });
    return { connector, inbound };
  },
};
