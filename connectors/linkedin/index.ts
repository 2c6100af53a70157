/**
 * @module connectors/linkedin
 * The LinkedIn module: identity only, through the OAuth connection layer. No connector object,
 * no inbound route: its health is its connections'.
 */

import type { ConnectorModule } from '../module';
import { linkedin as descriptor } from './descriptor';

export { linkedin } from './descriptor';
export { toLinkedInIdentity as map } from './map';

export const linkedinModule: ConnectorModule = {
  descriptor,
  env: {
    polling: ['LINKEDIN_CLIENT_ID', 'LINKEDIN_CLIENT_SECRET', 'LINKEDIN_API_URL', 'LINKEDIN_OAUTH_URL'],
    inbound: [],
  },
  credentials: [['LINKEDIN_CLIENT_ID', 'LINKEDIN_CLIENT_SECRET']],
  needs: ['connections'],
  create: () => ({ connector: null, inbound: null }),
};
