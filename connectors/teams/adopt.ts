/**
 * @module connectors/teams/adopt
 * Which of the subscriptions Graph lists (`GET /subscriptions` with one user's delegated token:
 * those this app created for that user) are the connector's own, so that a manager that lost
 * its list (a Redis restarted empty took the lock's note, a process died) takes them up again
 * instead of creating new ones Graph refuses while the old ones run. Graph does not return the
 * `clientState` in a listing, so "own" is judged by what it does return: a presence resource,
 * `updated`, the notification and lifecycle URLs this deployment uses, the listing user as the
 * creator, and an expiry still ahead.
 */

import { parseIsoAssumingUtc } from '../../src/core/time';
import { GUID, lower } from './ids';
import type { GraphSubscription } from './types';

/**
 * The users a presence resource names: the bulk filter the connector creates
 * (`/communications/presences?$filter=id in ('…', '…')`) or the single-user form
 * (`communications/presences/{id}`), both from changenotifications-for-presence; else null.
 */
export function presenceIdsOf(resource: unknown): string[] | null {
  if (typeof resource !== 'string') return null;
  const single = /^\/?communications\/presences\/([^/?]+)$/i.exec(resource);
  if (single !== null) return GUID.test(single[1]!) ? [lower(single[1]!)] : null;
  const bulk = /^\/?communications\/presences\?\$filter=id in \((.*)\)$/i.exec(resource);
  if (bulk === null) return null;
  const ids = bulk[1]!.split(',').map((s) => s.trim().replace(/^'(.*)'$/, '$1'));
  return ids.length > 0 && ids.every((id) => GUID.test(id)) ? [...new Set(ids.map(lower))] : null;
}

export interface OwnSubscription {
  readonly id: string;
  readonly ids: string[];
  readonly expiresAt: number;
}

export interface OwnCriteria {
  readonly notificationUrl: string;
  readonly lifecycleUrl: string;
  /** The AAD id (lower case) whose delegated token listed it. */
  readonly ownerId: string;
  readonly now: number;
}

/** A listed subscription as the connector would hold it, when it is the connector's own. */
export function ownSubscription(g: GraphSubscription, c: OwnCriteria): OwnSubscription | null {
  if (g.notificationUrl !== c.notificationUrl) return null;
  // A subscription made under another lifecycle URL (the configuration changed) is left to lapse.
  if (g.lifecycleNotificationUrl != null && g.lifecycleNotificationUrl !== c.lifecycleUrl) return null;
  if (typeof g.changeType === 'string' && !g.changeType.split(',').some((t) => t.trim() === 'updated')) {
    return null;
  }
  if (typeof g.creatorId === 'string' && lower(g.creatorId) !== c.ownerId) return null;
  const ids = presenceIdsOf(g.resource);
  if (ids === null) return null;
  const expiresAt = parseIsoAssumingUtc(g.expirationDateTime);
  if (!(expiresAt > c.now)) return null;
  return { id: g.id, ids, expiresAt };
}
