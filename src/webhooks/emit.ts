/**
 * @module webhooks/emit
 * The events the webhook service writes besides presence changes: the check on what `emit` may
 * take, and a user deletion's side of the outbox (forget their events, write `user.deleted`).
 */

import type { Log } from '../core/log';
import type { Dispatcher, StagedDelivery } from './dispatcher';
import type { Outbox } from './outbox';
import { EVENT_TYPES, type EventType } from './schema';
import type { AsyncWebhookStore, StoreTx } from '../core/ports';

/** The events anyone but the engine may emit. */
export type OtherEventType = Exclude<EventType, 'presence.changed' | 'user.deleted'>;

/** Checked at run time too: callers in plain JS, or with a cast, must not bypass the engine. */
export function checkOtherType(type: string): void {
  if (
    !(EVENT_TYPES as readonly string[]).includes(type) ||
    type === 'presence.changed' ||
    type === 'user.deleted'
  ) {
    throw new Error(`emit() does not take ${type} events`);
  }
}

/** A user deletion, from the transaction that deletes them to its commit. */
export class UserDeletion {
  /** What a user deletion's transaction did, waiting for its commit to be reported. */
  private deleting: { userId: string; forgotten: Map<string, Set<number>>; staged: StagedDelivery[] } | null =
    null;

  constructor(
    private readonly store: AsyncWebhookStore,
    private readonly outbox: Outbox,
    private readonly dispatcher: Dispatcher,
    private readonly log: Log,
  ) {}

  /**
   * Inside the transaction `tx` that deletes a user: forgets every event about them (the presence
   * payloads) with its deliveries, so nothing of theirs is retried or replayed, and writes the
   * `user.deleted` event with their last version. Memory follows once it committed.
   */
  async stage(tx: StoreTx, userId: string, lastVersion: number): Promise<void> {
    const { pending, events } = await this.store.forgetUser(tx, userId);
    const { staged } = await this.outbox.writeEvent(
      tx,
      'user.deleted',
      { user_id: userId, version: lastVersion },
      null,
    );
    this.deleting = { userId, forgotten: pending, staged };
    this.log.info({ user_id: userId, events }, 'webhook events of a deleted user forgotten');
  }

  committed(userId: string): void {
    const d = this.deleting;
    this.deleting = null;
    if (d === null || d.userId !== userId) return;
    this.dispatcher.forget(d.forgotten);
    this.dispatcher.enqueue(d.staged);
  }
}
