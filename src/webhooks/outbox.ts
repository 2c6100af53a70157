/**
 * @module webhooks/outbox
 * The transactional outbox: turns presence changes and other events into `webhook_events` rows
 * and one `webhook_deliveries` row per matching endpoint, inside whatever transaction is open.
 * For presence that is the engine's own commit (`PresenceEngine.onCommit`), so an event exists
 * if and only if the change it reports does; a crash at any moment loses neither or both.
 *
 * Matching uses endpoints held in memory: no SELECT on the hot path. Nothing is written when no
 * endpoint wants the event.
 */

import type { PresenceChange } from '../aggregator/engine';
import type { Clock } from '../core/clock';
import { toIso } from '../core/time';
import { customStatusView } from '../normalizer/view';
import type { StagedDelivery } from './dispatcher';
import { newMessageId } from './ids';
import type { EventType } from './schema';
import type { EndpointRecord, WebhookStore } from './store';

/** The `presence.changed` body (docs/api.md), serialized once for every endpoint. */
export function presenceChangedBody(c: PresenceChange): string {
  return JSON.stringify({
    type: 'presence.changed',
    timestamp: toIso(c.at),
    data: {
      user_id: c.userId,
      version: c.version,
      previous: {
        status: c.previous.status,
        activity: c.previous.activity,
        custom_status: customStatusView(c.previous.customStatus),
      },
      // The engine builds the presence object whenever a commit hook is registered; the fallback
      // only covers a hook registered after changes were already queued.
      current: c.presence ?? {
        user_id: c.userId,
        status: c.current.status,
        activity: c.current.activity,
        custom_status: customStatusView(c.current.customStatus),
        source: c.current.source,
        version: c.version,
        explain: c.explain,
      },
      changed: c.changed,
    },
  });
}

const str = (data: Readonly<Record<string, unknown>>, key: string): string | undefined => {
  const v = data[key];
  return typeof v === 'string' ? v : undefined;
};

/**
 * The ordering key of an event: events with the same key reach an endpoint in the order they
 * were written. Presence (and a user's deletion) is ordered per user; connection events per
 * connection; connector events per platform; endpoint events per endpoint.
 */
export function orderKeyOf(type: EventType, data: Readonly<Record<string, unknown>>): string {
  switch (type) {
    case 'presence.changed':
    case 'user.deleted': // after the user's last change
      return `u:${str(data, 'user_id') ?? ''}`;
    case 'connection.reauth_required':
    case 'connection.revoked':
      return `c:${str(data, 'connection_id') ?? str(data, 'id') ?? str(data, 'user_id') ?? ''}`;
    case 'connector.degraded':
    case 'connector.recovered':
      return `k:${str(data, 'platform') ?? ''}`;
    case 'webhook.endpoint_disabled':
      return `e:${str(data, 'endpoint_id') ?? ''}`;
  }
}

interface Matcher {
  readonly ep: EndpointRecord;
  readonly events: ReadonlySet<EventType> | null;
  readonly users: ReadonlySet<string> | null;
}

export class Outbox {
  private matchers: Matcher[] = [];

  constructor(
    private readonly store: WebhookStore,
    private readonly clock: Clock,
    /** The retry schedule's first delay: usually 0, "immediately". */
    private readonly firstDelayMs = 0,
  ) {}

  /** Rebuilds the in-memory filters from the endpoints (after any endpoint change). */
  setEndpoints(endpoints: Iterable<EndpointRecord>): void {
    const matchers: Matcher[] = [];
    for (const ep of endpoints) {
      if (!ep.enabled) continue;
      matchers.push({
        ep,
        events: ep.events === null ? null : new Set(ep.events),
        users: ep.userIds === null ? null : new Set(ep.userIds),
      });
    }
    this.matchers = matchers;
  }

  get endpointCount(): number {
    return this.matchers.length;
  }

  /**
   * Writes the events of committed-to-be presence changes. Call inside the transaction that
   * commits them; hand the result to the dispatcher only after that transaction committed.
   */
  writeChanges(changes: readonly PresenceChange[]): StagedDelivery[] {
    const staged: StagedDelivery[] = [];
    if (this.matchers.length === 0) return staged;
    const now = this.clock.now();
    for (const c of changes) {
      let seq = -1;
      let msgId = '';
      let body: Buffer | null = null;
      const orderKey = `u:${c.userId}`;
      for (const m of this.matchers) {
        if (m.events !== null && !m.events.has('presence.changed')) continue;
        if (m.users !== null && !m.users.has(c.userId)) continue;
        if (seq < 0) {
          msgId = newMessageId(now);
          const json = presenceChangedBody(c);
          seq = this.store.insertEvent(msgId, 'presence.changed', c.userId, c.version, c.at, json);
          // Bytes once per event, shared by every endpoint and attempt: signing and sending use them.
          body = Buffer.from(json);
        }
        staged.push(this.deliver(m.ep, seq, msgId, 'presence.changed', body!, orderKey, now));
      }
    }
    return staged;
  }

  /**
   * Writes one event of another type for every matching endpoint but `exceptEndpointId`. The
   * user filter applies to events that name a `user_id`; the others go to every endpoint that
   * takes their type. Returns the `webhook-id` (null when no endpoint wanted it) and the rows.
   */
  writeEvent(
    type: EventType,
    data: Readonly<Record<string, unknown>>,
    exceptEndpointId: string | null,
  ): { msgId: string | null; staged: StagedDelivery[] } {
    const staged: StagedDelivery[] = [];
    const now = this.clock.now();
    const userId = str(data, 'user_id') ?? null;
    const orderKey = orderKeyOf(type, data);
    let seq = -1;
    let msgId: string | null = null;
    let body: Buffer | null = null;
    for (const m of this.matchers) {
      if (m.ep.id === exceptEndpointId) continue;
      if (m.events !== null && !m.events.has(type)) continue;
      if (m.users !== null && userId !== null && !m.users.has(userId)) continue;
      if (seq < 0) {
        msgId = newMessageId(now);
        const json = JSON.stringify({ type, timestamp: toIso(now), data });
        const version = typeof data.version === 'number' ? data.version : null;
        seq = this.store.insertEvent(msgId, type, userId, version, now, json);
        body = Buffer.from(json);
      }
      staged.push(this.deliver(m.ep, seq, msgId!, type, body!, orderKey, now));
    }
    return { msgId, staged };
  }

  private deliver(
    ep: EndpointRecord,
    eventSeq: number,
    msgId: string,
    type: EventType,
    body: Buffer,
    orderKey: string,
    now: number,
  ): StagedDelivery {
    const notBefore = type === 'presence.changed' && ep.coalesceMs > 0 ? now + ep.coalesceMs : now;
    const nextAt = Math.max(notBefore, now + this.firstDelayMs);
    const id = this.store.insertDelivery(ep.id, eventSeq, orderKey, notBefore, nextAt, false, now);
    return {
      endpointId: ep.id,
      id,
      eventSeq,
      msgId,
      type,
      body,
      orderKey,
      notBefore,
      nextAt,
      createdAt: now,
      replay: false,
    };
  }
}
