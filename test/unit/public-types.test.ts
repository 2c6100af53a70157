/**
 * The package's public types (src/types.ts) against what the service really builds, so they
 * cannot drift: `npm run typecheck` compiles these assignments both ways, and the event list is
 * compared at run time too.
 */

import type { ConnectorEvent } from '../../src/aggregator/connector-host';
import type { ConnectionEventData } from '../../src/oauth/service';
import type {
  ConnectionRevokedEvent,
  ConnectorDegradedEvent,
  WebhookEndpointDisabledEvent,
  WebhookEventType,
} from '../../src/types';
import { EVENT_TYPES, type EventType } from '../../src/webhooks';
import type { DisabledReason } from '../../src/core/ports';

/** Compiles only when A and B are the same type. */
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const yes = <T extends true>(): T => true as T;

// The event data as the emitters build it (checked by the compiler).
yes<Same<ConnectionRevokedEvent['data'], ConnectionEventData>>();
yes<Same<ConnectorDegradedEvent['type'] | 'connector.recovered', ConnectorEvent>>();
yes<Same<WebhookEndpointDisabledEvent['data']['reason'], Exclude<DisabledReason, 'manual'>>>();

describe('the public types', () => {
  it('name exactly the events the service sends', () => {
    yes<Same<WebhookEventType, EventType>>();
    const listed: Record<WebhookEventType, true> = {
      'presence.changed': true,
      'user.deleted': true,
      'connection.reauth_required': true,
      'connection.revoked': true,
      'connector.degraded': true,
      'connector.recovered': true,
      'webhook.endpoint_disabled': true,
    };
    expect(Object.keys(listed).sort()).toEqual([...EVENT_TYPES].sort());
  });
});
