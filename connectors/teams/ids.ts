/**
 * @module connectors/teams/ids
 * How the connector names Teams users: by AAD object id (a GUID), compared in lower case, and sent
 * to Graph in batches.
 */

import type { GraphChangeNotification } from './types';

export const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const lower = (s: string): string => s.toLowerCase();

export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The user a basic notification is about: `resourceData.id`, else its `@odata.id`/resource path. */
export function notificationUserId(item: GraphChangeNotification): string | null {
  const id = item.resourceData?.id;
  if (typeof id === 'string' && GUID.test(id)) return lower(id);
  for (const path of [item.resourceData?.['@odata.id'], item.resource]) {
    if (typeof path !== 'string') continue;
    const m = /(?:users|presences)\/([0-9a-f-]{36})/i.exec(path) ?? /\('([0-9a-f-]{36})'\)/i.exec(path);
    if (m !== null && GUID.test(m[1]!)) return lower(m[1]!);
  }
  return null;
}
