/**
 * @module connectors/zoom
 * The Zoom module: webhooks once the secret token is set (alone, they are the connector), and a
 * reconciling poller with the Server-to-Server app grant.
 */

import type { ConnectorModule } from '../module';
import { ZoomConnector } from './connector';
import { zoom as descriptor } from './descriptor';
import { zoomInbound } from './inbound';

export { zoom } from './descriptor';
export { toZoomEventPresence as map } from './map';

export const zoomModule: ConnectorModule = {
  descriptor,
  env: {
    polling: [
      'ZOOM_ACCOUNT_ID',
      'ZOOM_CLIENT_ID',
      'ZOOM_CLIENT_SECRET',
      'ZOOM_API_URL',
      'ZOOM_OAUTH_URL',
      'ZOOM_POLL_INTERVAL',
    ],
    inbound: ['ZOOM_WEBHOOK_SECRET_TOKEN'],
  },
  credentials: [['ZOOM_ACCOUNT_ID', 'ZOOM_CLIENT_ID', 'ZOOM_CLIENT_SECRET'], ['ZOOM_WEBHOOK_SECRET_TOKEN']],
  inboundSecret: 'ZOOM_WEBHOOK_SECRET_TOKEN',
  pushOnly: true,
  // The poller's token is the app grant the connection layer keeps.
  needs: ['connections'],
  create({ env, clock, log, connections, presence, run, coordination }) {
    let connector: ZoomConnector | null = null;
    if (
      run &&
      connections !== null &&
      env.ZOOM_ACCOUNT_ID !== undefined &&
      env.ZOOM_CLIENT_ID !== undefined &&
      env.ZOOM_CLIENT_SECRET !== undefined
    ) {
      // The Server-to-Server grant is fetched on first use and again ahead of each expiry.
      let appId: string | null = null;
      const token = async (): Promise<string> => {
        appId ??= (await connections.connectApp('zoom')).id;
        return connections.getAccessToken(appId);
      };
      connector = new ZoomConnector({
        apiUrl: env.ZOOM_API_URL,
        token,
        clock,
        pollIntervalMs: env.ZOOM_POLL_INTERVAL,
      });
    }
    const inbound =
      env.ZOOM_WEBHOOK_SECRET_TOKEN === undefined
        ? null
        : zoomInbound({
            secretToken: env.ZOOM_WEBHOOK_SECRET_TOKEN,
            port: presence,
            clock,
            log,
            ttlMs: descriptor.defaultTtlMs,
            deliveries: coordination?.deliveries,
          });
    return { connector, inbound };
  },
};
