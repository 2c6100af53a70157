/**
 * @module connectors/whatsapp
 * The WhatsApp module: its inbound route is the whole connector (presence inferred from
 * messages and read receipts).
 */

import type { ConnectorModule } from '../module';
import { whatsapp as descriptor } from './descriptor';
import { whatsappInbound } from './inbound';

export { whatsapp } from './descriptor';
export { toWhatsAppSightings as map } from './map';

export const whatsappModule: ConnectorModule = {
  descriptor,
  // WHATSAPP_ACCESS_TOKEN and WHATSAPP_API_URL are read by nothing yet (sending is not a feature).
  env: {
    polling: ['WHATSAPP_ACCESS_TOKEN', 'WHATSAPP_API_URL'],
    inbound: ['WHATSAPP_APP_SECRET', 'WHATSAPP_VERIFY_TOKEN'],
  },
  credentials: [['WHATSAPP_APP_SECRET']],
  inboundSecret: 'WHATSAPP_APP_SECRET',
  pushOnly: true,
  needs: [],
  create({ env, log, presence, coordination }) {
    if (env.WHATSAPP_APP_SECRET === undefined) return { connector: null, inbound: null };
    return {
      connector: null,
      inbound: whatsappInbound({
        appSecret: env.WHATSAPP_APP_SECRET,
        verifyToken: env.WHATSAPP_VERIFY_TOKEN,
        port: presence,
        decay: env.PRESENCE_INFERRED_DECAY,
        log,
        deliveries: coordination?.deliveries,
      }),
    };
  },
};
