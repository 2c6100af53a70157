/**
 * @module connectors
 * The registry: platform id → descriptor. Adding a platform is one folder beside this file and
 * one line here.
 */

import type { ConnectorDescriptor } from '../src/core/connector';
import type { RealPlatform } from '../src/core/presence';
import { discord } from './discord';
import { linkedin } from './linkedin';
import { slack } from './slack';
import { teams } from './teams';
import { whatsapp } from './whatsapp';
import { zoom } from './zoom';

export const CONNECTORS: Readonly<Record<RealPlatform, ConnectorDescriptor>> = {
  discord,
  slack,
  teams,
  zoom,
  whatsapp,
  linkedin,
};
