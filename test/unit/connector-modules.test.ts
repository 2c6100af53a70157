/**
 * The registry of connector modules: one per platform, each naming the platform it is, and their
 * variables together with the service's own are exactly the env schema's (so the README check,
 * which reads the schema, covers every variable a module declares).
 */

import { CONNECTOR_MODULES, CONNECTORS } from '../../connectors';
import { ENV_VARIABLES } from '../../src/config/env';
import { REAL_PLATFORMS } from '../../src/core/presence';

/** The variables no platform owns. */
const SERVICE_VARIABLES = [
  'PORT',
  'HOST',
  'PRESENCE_DB',
  'PRESENCE_DB_SYNC',
  'PRESENCE_SECRET_KEY',
  'PRESENCE_SECRET_KEY_PREVIOUS',
  'PUBLIC_URL',
  'PRESENCE_LADDER',
  'PRESENCE_VIEW_CACHE',
  'PRESENCE_BATCH_MEMO_MB',
  'PRESENCE_INFERRED_DECAY',
  'PRESENCE_RATE_LIMIT',
  'LOG_LEVEL',
  'PRESENCE_ACCESS_LOG',
  'PRESENCE_SLOW_REQUEST_MS',
  'WEBHOOK_ALLOW_PRIVATE_TARGETS',
];

describe('connector modules', () => {
  it('are listed once per platform, each under its own platform', () => {
    expect(Object.keys(CONNECTOR_MODULES).sort()).toEqual([...REAL_PLATFORMS].sort());
    for (const [platform, m] of Object.entries(CONNECTOR_MODULES)) {
      expect(m.descriptor.platform).toBe(platform);
      expect(CONNECTORS[platform as keyof typeof CONNECTORS]).toBe(m.descriptor);
    }
  });

  it('declare, with the service, exactly the variables of the env schema, each once', () => {
    const declared = Object.values(CONNECTOR_MODULES).flatMap((m) => [...m.env.polling, ...m.env.inbound]);
    const all = [...SERVICE_VARIABLES, ...declared];
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort()).toEqual([...ENV_VARIABLES].sort());
  });

  it('turn on by variables they declare, and name an inbound secret they read', () => {
    for (const m of Object.values(CONNECTOR_MODULES)) {
      const own = new Set<string>([...m.env.polling, ...m.env.inbound]);
      for (const set of m.credentials) for (const name of set) expect(own).toContain(name);
      if (m.inboundSecret !== undefined) expect(own).toContain(m.inboundSecret);
      if (m.pushOnly === true) expect(m.inboundSecret).toBeDefined();
    }
  });
});
