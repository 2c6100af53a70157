/**
 * @module webhooks/outbox
 * The transactional outbox: turns presence changes and other events into `webhook_events` rows
 * and one `webhook_deliveries` row per matching endpoint, inside the transaction it is handed.
 * For presence that is the engine's own commit (the outbox is a change sink, `outboxSink`), so an
 * event exists if and only if the change it reports does; a crash at any moment loses neither or
 * both.
 *
 * Matching uses endpoints held in memory: no SELECT on the hot path. Nothing is written when no
 * endpoint wants the event.
 */

import { presenceChangedEvent, type ChangeSink, type PresenceChange, type StoreTx } from '../core/changes';
import type { Clock } from '../core/clock';
import { toIso } from '../core/time';
import type { StagedDelivery } from './dispatcher';
import { newMessageId } from './ids';
import type { EventType } from './schema';
import type { AsyncWebhookStore, EndpointRecord, NewDelivery, NewEvent } from '../core/ports';

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
    private readonly store: AsyncWebhookStore,
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
   * Writes the events of committed-to-be presence changes on `tx`, the transaction that commits
   * them, in one batch; hand the result to the dispatcher only after that transaction committed.
   */
  async writeChanges(tx: StoreTx, changes: readonly PresenceChange[]): Promise<StagedDelivery[]> {
    if (this.matchers.length === 0) return [];
    const batch = new OutboxBatch(this.clock.now(), this.firstDelayMs);
    for (const c of changes) {
      let event = -1;
      for (const m of this.matchers) {
        if (m.events !== null && !m.events.has('presence.changed')) continue;
        if (m.users !== null && !m.users.has(c.userId)) continue;
        // Serialized once for every endpoint.
        if (event < 0) {
          const json = JSON.stringify(presenceChangedEvent(c));
          event = batch.event('presence.changed', c.userId, c.version, c.at, json);
        }
        batch.deliver(m.ep, event, `u:${c.userId}`);
      }
    }
    return await batch.write(this.store, tx);
  }

  /**
   * Writes one event of another type on `tx` for every matching endpoint but `exceptEndpointId`.
   * The user filter applies to events that name a `user_id`; the others go to every endpoint that
   * takes their type. Returns the `webhook-id` (null when no endpoint wanted it) and the rows.
   */
  async writeEvent(
    tx: StoreTx,
    type: EventType,
    data: Readonly<Record<string, unknown>>,
    exceptEndpointId: string | null,
  ): Promise<{ msgId: string | null; staged: StagedDelivery[] }> {
    const now = this.clock.now();
    const batch = new OutboxBatch(now, this.firstDelayMs);
    const userId = str(data, 'user_id') ?? null;
    const orderKey = orderKeyOf(type, data);
    let event = -1;
    for (const m of this.matchers) {
      if (m.ep.id === exceptEndpointId) continue;
      if (m.events !== null && !m.events.has(type)) continue;
      if (m.users !== null && userId !== null && !m.users.has(userId)) continue;
      if (event < 0) {
        const json = JSON.stringify({ type, timestamp: toIso(now), data });
        const version = typeof data.version === 'number' ? data.version : null;
        event = batch.event(type, userId, version, now, json);
      }
      batch.deliver(m.ep, event, orderKey);
    }
    const staged = await batch.write(this.store, tx);
    return { msgId: staged[0]?.msgId ?? null, staged };
  }
}

/** The events and deliveries of one write, gathered in memory and written in one store call. */
class OutboxBatch {
  private readonly events: NewEvent[] = [];
  /** Per event: the bytes sent and signed, shared by every endpoint and attempt. */
  private readonly bodies: Buffer[] = [];
  private readonly deliveries: NewDelivery[] = [];

  constructor(
    private readonly now: number,
    private readonly firstDelayMs: number,
  ) {}

  /** Adds an event; returns its index. */
  event(
    type: EventType,
    userId: string | null,
    version: number | null,
    createdAt: number,
    json: string,
  ): number {
    this.events.push({ msgId: newMessageId(this.now), type, userId, version, createdAt, payload: json });
    this.bodies.push(Buffer.from(json));
    return this.events.length - 1;
  }

  deliver(ep: EndpointRecord, event: number, orderingKey: string): void {
    const now = this.now;
    const type = this.events[event]!.type;
    const notBefore = type === 'presence.changed' && ep.coalesceMs > 0 ? now + ep.coalesceMs : now;
    this.deliveries.push({
      endpointId: ep.id,
      event,
      orderingKey,
      notBefore,
      nextAttemptAt: Math.max(notBefore, now + this.firstDelayMs),
      replay: false,
      now,
    });
  }

  async write(store: AsyncWebhookStore, tx: StoreTx): Promise<StagedDelivery[]> {
    if (this.deliveries.length === 0) return [];
    const { seqs, ids } = await store.insertOutbox(tx, this.events, this.deliveries);
    return this.deliveries.map((d, i) => {
      const e = this.events[d.event]!;
      return {
        endpointId: d.endpointId,
        id: ids[i]!,
        eventSeq: seqs[d.event]!,
        msgId: e.msgId,
        type: e.type,
        body: this.bodies[d.event]!,
        orderKey: d.orderingKey,
        notBefore: d.notBefore,
        nextAt: d.nextAttemptAt,
        createdAt: d.now,
        replay: false,
      };
    });
  }
}

/**
 * The outbox as the engine's change sink: its rows are staged in the commit's transaction and
 * handed to `deliver` once that commit is durable. A batch whose transaction failed is never
 * reported as committed, so its rows (rolled back with it) are never handed on; its entry here
 * goes with the batch.
 */
export function outboxSink(outbox: Outbox, deliver: (staged: readonly StagedDelivery[]) => void): ChangeSink {
  const staged = new WeakMap<readonly PresenceChange[], StagedDelivery[]>();
  return {
    async stage(tx, changes) {
      const rows = await outbox.writeChanges(tx, changes);
      if (rows.length > 0) staged.set(changes, rows);
    },
    committed(changes) {
      const rows = staged.get(changes);
      if (rows === undefined) return;
      staged.delete(changes);
      deliver(rows);
    },
  };
}
