/**
 * @module webhooks/delivery-log
 * Reading and pruning the delivery log: a page of deliveries with their attempts in the API's
 * shape, and the chunked retention sweep.
 */

import type { Log } from '../core/log';
import { toIso, toIsoOrNull } from '../core/time';
import type { AttemptView, DeliveriesPage, DeliveriesQuery } from './schema';
import type { AsyncWebhookStore } from '../core/ports';

/** One page of an endpoint's delivery log, newest first (see `WebhookService.deliveries`). */
export async function deliveriesPage(
  store: AsyncWebhookStore,
  endpointId: string,
  query: DeliveriesQuery,
): Promise<DeliveriesPage> {
  const limit = query.limit ?? 50;
  const rows = await store.page(
    endpointId,
    query.status ?? null,
    query.before ?? Number.MAX_SAFE_INTEGER,
    limit + 1,
  );
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  const attempts = new Map<number, AttemptView[]>();
  for (const a of await store.attemptsOf(page.map((r) => r.id))) {
    let list = attempts.get(a.delivery_id);
    if (list === undefined) attempts.set(a.delivery_id, (list = []));
    list.push({
      attempt: a.attempt,
      at: toIso(a.at),
      status_code: a.status_code,
      latency_ms: a.latency_ms,
      error: a.error,
      next_attempt_at: toIsoOrNull(a.next_attempt_at),
    });
  }
  for (const r of page) {
    // The successful attempt is the delivery's last one, kept on the delivery row itself.
    if (r.status === 'delivered' && r.last_attempt_at !== null) {
      let list = attempts.get(r.id);
      if (list === undefined) attempts.set(r.id, (list = []));
      list.push({
        attempt: r.attempts,
        at: toIso(r.last_attempt_at),
        status_code: r.last_status_code,
        latency_ms: r.last_latency_ms ?? 0,
        error: null,
        next_attempt_at: null,
      });
    }
  }
  return {
    deliveries: page.map((r) => ({
      id: r.id,
      webhook_id: r.msg_id,
      type: r.type,
      user_id: r.user_id,
      version: r.version,
      status: r.status,
      replay: r.replay === 1,
      attempt_count: r.attempts,
      next_attempt_at: toIsoOrNull(r.next_attempt_at),
      last_status_code: r.last_status_code,
      last_error: r.last_error,
      created_at: toIso(r.created_at),
      updated_at: toIso(r.updated_at),
      attempts: attempts.get(r.id) ?? [],
    })),
    next_before: more ? page[page.length - 1]!.id : null,
  };
}

/**
 * Deletes delivered, failed and coalesced deliveries last touched before `cutoff`, then events no
 * delivery refers to any more, in chunks, yielding between them.
 */
export async function pruneDeliveryLog(
  store: AsyncWebhookStore,
  cutoff: number,
  log: Log,
): Promise<{ deliveries: number; events: number }> {
  const chunk = 2000;
  let deliveries = 0;
  let events = 0;
  for (let n = chunk; n === chunk;) {
    n = await store.transaction((tx) => store.pruneDeliveries(cutoff, chunk, tx));
    deliveries += n;
    if (n === chunk) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  for (let n = chunk; n === chunk;) {
    n = await store.transaction((tx) => store.pruneEvents(cutoff, chunk, tx));
    events += n;
    if (n === chunk) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  if (deliveries + events > 0) log.info({ deliveries, events }, 'pruned the webhook delivery log');
  return { deliveries, events };
}
