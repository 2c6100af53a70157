/**
 * @module connectors/slack/connections
 * Workspaces connected through `/v1/connect/slack` (OAuth): the Slack connector takes each
 * workspace's token from the connection layer, and a token Slack refuses marks those connections
 * `reauth_required`, which sends `connection.reauth_required` webhooks.
 */

import type { ConnectionView } from '../../src/oauth/service';
import type { ConnectionsPort } from '../module';
import type { SlackConnectorOptions } from './connector';

export function slackTokensFrom(
  connections: Pick<ConnectionsPort, 'list' | 'getAccessToken' | 'markReauthRequired'>,
): Required<Pick<SlackConnectorOptions, 'tokenFor' | 'onAuthError'>> {
  const usable = async (workspaceId: string): Promise<ConnectionView[]> =>
    (await connections.list({ platform: 'slack' })).filter(
      (c) => c.workspace_id === workspaceId && c.health !== 'revoked' && c.health !== 'reauth_required',
    );
  return {
    tokenFor: async (workspaceId) => {
      const c = (await usable(workspaceId))[0];
      if (c === undefined) throw new Error(`no working Slack connection for workspace ${workspaceId}`);
      return connections.getAccessToken(c.id);
    },
    onAuthError: async ({ workspaceId, error }) => {
      for (const c of await usable(workspaceId))
        await connections.markReauthRequired(c.id, `Slack refused the token (${error})`);
    },
  };
}
