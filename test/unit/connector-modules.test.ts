/**
 * The registry of connector modules: one per platform, each naming the platform it is, each
 * declaring exactly its platform's variables of the env schema (so the README check, which reads
 * the schema, covers every variable a module declares, and no platform variable goes undeclared).
 */

import { CONNECTOR_MODULES, CONNECTORS } from '../../connectors';
import { ENV_VARIABLES } from '../../src/config/env';
import { REAL_PLATFORMS } from '../../src/core/presence';

/** The names of each platform's variables; any other variable is the service's own. */
const PREFIXES: Record<(typeof REAL_PLATFORMS)[number], RegExp> = {
  slack: /^SLACK_/,
  teams: /^(MS_|GRAPH_|TEAMS_)/,
  discord: /^DISCORD_/,
  zoom: /^ZOOM_/,
  whatsapp: /^WHATSAPP_/,
  linkedin: /^LINKEDIN_/,
};

describe('connector modules', () => {
  it('are listed once per platform, each under its own platform', () => {
    expect(Object.keys(CONNECTOR_MODULES).sort()).toEqual([...REAL_PLATFORMS].sort());
    for (const [platform, m] of Object.entries(CONNECTOR_MODULES)) {
      expect(m.descriptor.platform).toBe(platform);
      expect(CONNECTORS[platform as keyof typeof CONNECTORS]).toBe(m.descriptor);
    }
  });

  it("declare exactly their platform's variables of the env schema, each once", () => {
    const declared = Object.values(CONNECTOR_MODULES).flatMap((m) => [...m.env.polling, ...m.env.inbound]);
    expect(new Set(declared).size).toBe(declared.length);
    for (const [platform, m] of Object.entries(CONNECTOR_MODULES)) {
      const prefix = PREFIXES[platform as keyof typeof PREFIXES];
      const own = [...m.env.polling, ...m.env.inbound].sort();
      expect(own).toEqual(ENV_VARIABLES.filter((name) => prefix.test(name)).sort());
    }
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
