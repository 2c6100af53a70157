/**
 * @module test/unit/teams-adopt
 * Which listed Graph subscriptions the Teams connector takes for its own when it lost its list:
 * the presence resources it reads, and every field that makes one someone else's.
 */

import { ownSubscription, presenceIdsOf } from '../../connectors/teams/adopt';
import { presenceResource } from '../../connectors/teams/subscription-set';
import type { GraphSubscription } from '../../connectors/teams/types';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';
const URL = 'https://presence.example/v1/inbound/teams';
const LIFECYCLE = `${URL}/lifecycle`;
const NOW = Date.parse('2026-12-02T05:00:00Z');

const listed = (extra: Partial<GraphSubscription> = {}): GraphSubscription => ({
  id: 'sub-1',
  resource: presenceResource([A, B]),
  changeType: 'updated',
  notificationUrl: URL,
  lifecycleNotificationUrl: LIFECYCLE,
  expirationDateTime: '2026-12-02T05:40:00.0000000Z',
  clientState: null,
  creatorId: A,
  ...extra,
});
const criteria = { notificationUrl: URL, lifecycleUrl: LIFECYCLE, ownerId: A, now: NOW };

describe('presenceIdsOf', () => {
  it('reads the bulk filter the connector creates and the single-user form, in lower case', () => {
    expect(presenceIdsOf(presenceResource([A, B]))).toEqual([A, B]);
    expect(presenceIdsOf(`communications/presences?$filter=id in ('${A.toUpperCase()}')`)).toEqual([A]);
    expect(presenceIdsOf(`communications/presences/${B}`)).toEqual([B]);
  });

  it('is null for anything else', () => {
    for (const r of [
      '/me/events',
      `/communications/presences?$filter=id in ('${A}', 'not-a-guid')`,
      '/communications/presences?$filter=id in ()',
      `/users/${A}/presence`,
      42,
      undefined,
    ]) {
      expect(presenceIdsOf(r)).toBeNull();
    }
  });
});

describe('ownSubscription', () => {
  it('takes one of ours with its users and Graph’s expiry', () => {
    expect(ownSubscription(listed(), criteria)).toEqual({
      id: 'sub-1',
      ids: [A, B],
      expiresAt: Date.parse('2026-12-02T05:40:00Z'),
    });
  });

  it('takes one whose listing leaves out the optional fields', () => {
    const { creatorId: _c, lifecycleNotificationUrl: _l, changeType: _t, ...bare } = listed();
    expect(ownSubscription(bare, criteria)?.ids).toEqual([A, B]);
  });

  it.each([
    ['another notification URL', { notificationUrl: 'https://elsewhere.example/n' }],
    ['another lifecycle URL', { lifecycleNotificationUrl: 'https://elsewhere.example/l' }],
    ['another change type', { changeType: 'created,deleted' }],
    ['another creator', { creatorId: B }],
    ['another resource', { resource: '/me/events' }],
    ['an expiry passed', { expirationDateTime: '2026-12-02T05:00:00Z' }],
    ['an expiry it cannot read', { expirationDateTime: 'soon' }],
  ])('leaves one with %s', (_what, extra) => {
    expect(ownSubscription(listed(extra), criteria)).toBeNull();
  });
});
