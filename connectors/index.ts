/**
 * @module connectors
 * The registry: platform id → connector module. Adding a platform is one folder beside this file
 * (its `index.ts` exporting a `ConnectorModule`) and one line here.
 */

import type { ConnectorDescriptor } from '../src/core/connector';
import type { RealPlatform } from '../src/core/presence';
import { discordModule } from './discord';
import { linkedinModule } from './linkedin';
import type { ConnectorModule } from './module';
import { slackModule } from './slack';
import { teamsModule } from './teams';
import { whatsappModule } from './whatsapp';
import { zoomModule } from './zoom';

export type { ConnectorModule } from './module';

export const CONNECTOR_MODULES: Readonly<Record<RealPlatform, ConnectorModule>> = {
  discord: discordModule,
  slack: slackModule,
  teams: teamsModule,
  zoom: zoomModule,
  whatsapp: whatsappModule,
  linkedin: linkedinModule,
};

/** Each platform's descriptor. */
export const CONNECTORS = Object.fromEntries(
  Object.entries(CONNECTOR_MODULES).map(([platform, m]) => [platform, m.descriptor]),
) as Readonly<Record<RealPlatform, ConnectorDescriptor>>;
