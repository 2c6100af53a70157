/**
 * @module connectors/whatsapp/descriptor
 * WhatsApp Cloud API: no presence API; presence is inferred from messages and read receipts.
 */

import type { ConnectorDescriptor } from '../../src/core/connector';

export const whatsapp: ConnectorDescriptor = {
  platform: 'whatsapp',
  displayName: 'WhatsApp',
  mode: 'push',
  auth: { kind: 'app_secret', scopes: ['whatsapp_business_messaging'] },
  capabilities: {
    presence: 'inferred',
    activities: false,
    customStatus: false,
    devices: false,
    manualStates: false,
    identity: false,
  },
  defaultTtlMs: 60 * 60_000,
  notes: 'No presence API exists: inbound messages and read receipts give inferred presence that fades.',
};
