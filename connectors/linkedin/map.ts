/**
 * @module connectors/linkedin/map
 * LinkedIn has no public presence API. Linking it establishes identity (the OpenID Connect
 * `sub`) and nothing else: there is deliberately no presence mapping here, so no status can be
 * made up for it.
 */

import type { LinkedInUserInfo } from './types';

export interface LinkedInIdentity {
  readonly externalId: string;
  readonly displayName: string | null;
  readonly email: string | null;
}

export function toLinkedInIdentity(info: LinkedInUserInfo): LinkedInIdentity {
  const name = info.name ?? ([info.given_name, info.family_name].filter(Boolean).join(' ') || null);
  return { externalId: info.sub, displayName: name, email: info.email ?? null };
}
