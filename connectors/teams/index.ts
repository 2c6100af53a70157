/**
 * @module connectors/teams
 * The Teams module: polling with the app's client credentials; change notifications for users
 * whose delegated connection lets the connector subscribe (PUBLIC_URL, https).
 */

import type { ConnectorModule } from '../module';
import { teamsConnectorFromEnv } from './connector';
import { teams as descriptor } from './descriptor';
import { teamsInbound, teamsInboundOptions } from './inbound';

export { teams } from './descriptor';
export { toTeamsPresence as map } from './map';

export const teamsModule: ConnectorModule = {
  descriptor,
  env: {
    polling: [
      'MS_TENANT_ID',
      'MS_CLIENT_ID',
      'MS_CLIENT_SECRET',
      'GRAPH_API_URL',
      'MS_LOGIN_URL',
      'TEAMS_POLL_INTERVAL',
    ],
    // The notifications prove themselves with a clientState the connector derives itself.
    inbound: [],
  },
  credentials: [['MS_TENANT_ID', 'MS_CLIENT_ID', 'MS_CLIENT_SECRET']],
  inboundSecret: 'MS_CLIENT_ID',
  needs: ['connections', 'public_url'],
  create({ env, clock, log, connections, appGrants, run, coordination }) {
    if (!run) return { connector: null, inbound: null };
    const grant = appGrants.for('teams');
    if (grant === null) return { connector: null, inbound: null }; // MS_CLIENT_ID or MS_CLIENT_SECRET unset
    const connector = teamsConnectorFromEnv(env, {
      // The tenant's client-credentials token: the grant's one source, which connectApp and the
      // refresh sweep use too (no connection row is stored for it here).
      appToken: grant.token,
      clock,
      log,
      pollIntervalMs: env.TEAMS_POLL_INTERVAL,
      // The tenant's Graph budget, spent with every other node polling it.
      buckets: coordination?.buckets,
      // One node at a time creates and renews the subscriptions (a lease lock and its note).
      locks: coordination?.locks,
      // A person's delegated token, when they connected their account (subscriptions need one).
      delegatedTokenFor: async (account) => {
        const c = await connections?.findByAccount(account, 'user');
        return c == null ? null : connections!.getAccessToken(c.id).catch(() => null);
      },
      onDelegatedTokenRejected: async (account, reason) => {
        const c = await connections?.findByAccount(account, 'user');
        if (c != null) await connections!.markReauthRequired(c.id, reason);
      },
    });
    return {
      connector,
      inbound: connector === null ? null : teamsInbound(teamsInboundOptions(connector, log)),
    };
  },
};
