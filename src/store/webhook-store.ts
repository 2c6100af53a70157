/**
 * @module store/webhook-store
 * The SQLite `WebhookStore` (core/ports; migrations/0003_webhooks.sql, 0007 for sealed secrets):
 * endpoints (signing secrets arrive sealed and leave sealed), the outbox of events, delivery rows
 * and attempt rows. Prepared statements only. It shares the database's one connection with the
 * other stores; writes that must run in someone else's transaction check they were handed one
 * of this connection.
 */

import type {
  AttemptRecord,
  AttemptRow,
  DeliveryRow,
  DeliveryStatus,
  EndpointSecrets,
  NewDelivery,
  NewEvent,
  PendingRow,
  StoredEndpoint,
  StoreTx,
  WebhookStore,
} from '../core/ports';
import type { Db } from './db';
import { endpointValues, type EndpointRow, toEndpoint } from './rows/webhooks';
import { dbOf, sqliteTx } from './tx';

export class SqliteWebhookStore implements WebhookStore {
  private readonly s;
  /** Runs `fn` in one transaction, handing it the transaction (nested: a savepoint). */
  readonly transaction: <T>(fn: (tx: StoreTx) => T) => T;

  constructor(private readonly db: Db) {
    this.s = {
      endpoints: db.prepare('SELECT * FROM webhook_endpoints ORDER BY created_at, id'),
      upsertEndpoint: db.prepare(
        // An upsert, not INSERT OR REPLACE: a REPLACE deletes the row first, and the foreign-key
        // cascade would take the endpoint's deliveries with it.
        `INSERT INTO webhook_endpoints (id, url, events, user_ids, coalesce_ms, secret, previous_secret,
           previous_expires_at, enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at,
           secret_format)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sealed')
         ON CONFLICT(id) DO UPDATE SET url = excluded.url, events = excluded.events, user_ids = excluded.user_ids,
           coalesce_ms = excluded.coalesce_ms, secret = excluded.secret, previous_secret = excluded.previous_secret,
           secret_format = excluded.secret_format,
           previous_expires_at = excluded.previous_expires_at, enabled = excluded.enabled,
           disabled_reason = excluded.disabled_reason, disabled_at = excluded.disabled_at,
           failing_since = excluded.failing_since, updated_at = excluded.updated_at`,
      ),
      deleteEndpoint: db.prepare('DELETE FROM webhook_endpoints WHERE id = ?'),
      secrets: db.prepare(
        'SELECT id, secret, previous_secret, secret_format FROM webhook_endpoints ORDER BY id',
      ),
      writeSecrets: db.prepare(
        "UPDATE webhook_endpoints SET secret = ?, previous_secret = ?, secret_format = 'sealed' WHERE id = ?",
      ),
      setFailingSince: db.prepare('UPDATE webhook_endpoints SET failing_since = ? WHERE id = ?'),
      insertEvent: db.prepare(
        `INSERT INTO webhook_events (msg_id, type, user_id, version, created_at, payload)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      insertDelivery: db.prepare(
        `INSERT INTO webhook_deliveries (endpoint_id, event_seq, lane, status, attempts, next_attempt_at, not_before,
           replay, created_at, updated_at) VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?)`,
      ),
      updateDelivery: db.prepare(
        `UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?,
           last_status_code = ?, last_latency_ms = ?, last_error = ?, updated_at = ? WHERE id = ?`,
      ),
      insertAttempt: db.prepare(
        `INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error, next_attempt_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      failPending: db.prepare(
        `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = ?, updated_at = ?
         WHERE endpoint_id = ? AND status = 'pending'`,
      ),
      loadPending: db.prepare(
        `SELECT d.id, d.event_seq, d.lane AS ordering_key, d.attempts, d.next_attempt_at, d.not_before, d.replay, d.created_at,
           e.msg_id, e.type, e.payload
         FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
         WHERE d.endpoint_id = ? AND d.status = 'pending' AND d.id > ? ORDER BY d.id LIMIT ?`,
      ),
      markCoalesced: db.prepare(
        `UPDATE webhook_deliveries SET status = 'coalesced', next_attempt_at = NULL, last_error = ?, updated_at = ?
         WHERE id = ?`,
      ),
      repointDelivery: db.prepare('UPDATE webhook_deliveries SET event_seq = ?, updated_at = ? WHERE id = ?'),
      eventOf: db.prepare('SELECT user_id, version, created_at FROM webhook_events WHERE seq = ?'),
      page: db.prepare(
        `SELECT d.id, d.status, d.attempts, d.next_attempt_at, d.replay, d.last_attempt_at, d.last_status_code,
           d.last_latency_ms, d.last_error, d.created_at, d.updated_at, e.msg_id, e.type, e.user_id, e.version
         FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
         WHERE d.endpoint_id = ? AND d.id < ? AND (? IS NULL OR d.status = ?)
         ORDER BY d.id DESC LIMIT ?`,
      ),
      attemptsOf: db.prepare(
        `SELECT delivery_id, attempt, at, status_code, latency_ms, error, next_attempt_at FROM webhook_attempts
         WHERE delivery_id IN (SELECT value FROM json_each(?)) ORDER BY delivery_id, attempt, id`,
      ),
      // One statement, so a replay of many events never holds their bodies in memory; the
      // dispatcher loads them in windows like any backlog. Rows are inserted in the ORDER BY
      // order, so each lane (user) gets its events in version order.
      replay: db.prepare(
        `INSERT INTO webhook_deliveries (endpoint_id, event_seq, lane, status, attempts, next_attempt_at, not_before,
           replay, created_at, updated_at)
         SELECT @endpoint, seq, lane, 'pending', 0, @now, @now, 1, @now, @now FROM (
           SELECT e.seq AS seq, min(d.lane) AS lane, e.version AS version
           FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
           WHERE d.endpoint_id = @endpoint AND d.status IN ('delivered', 'failed') AND e.created_at >= @since
           GROUP BY e.seq)
         ORDER BY lane, coalesce(version, 0), seq`,
      ),
      // A deleted user's events (their presence payloads) and every delivery of them, attempts
      // by cascade. `user.deleted` events stay: they are what tells consumers, and hold only the
      // id and the last version.
      userPending: db.prepare(
        `SELECT d.id, d.endpoint_id FROM webhook_events e JOIN webhook_deliveries d ON d.event_seq = e.seq
         WHERE e.user_id = ? AND e.type != 'user.deleted' AND d.status = 'pending'`,
      ),
      forgetUserDeliveries: db.prepare(
        `DELETE FROM webhook_deliveries WHERE event_seq IN (
           SELECT seq FROM webhook_events WHERE user_id = ? AND type != 'user.deleted')`,
      ),
      forgetUserEvents: db.prepare("DELETE FROM webhook_events WHERE user_id = ? AND type != 'user.deleted'"),
      pruneDeliveries: db.prepare(
        `DELETE FROM webhook_deliveries WHERE id IN (
           SELECT id FROM webhook_deliveries WHERE status != 'pending' AND updated_at < ? LIMIT ?)`,
      ),
      pruneEvents: db.prepare(
        `DELETE FROM webhook_events WHERE seq IN (
           SELECT seq FROM webhook_events e WHERE e.created_at < ?
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = e.seq) LIMIT ?)`,
      ),
    };
    const handle = sqliteTx(db);
    const run = db.transaction((fn: (tx: StoreTx) => unknown) => fn(handle));
    this.transaction = <T>(fn: (tx: StoreTx) => T): T => run(fn) as T;
  }

  scrubbing<T>(fn: () => T): { result: T; walTruncated: boolean } {
    return scrubbing(this.db, fn);
  }

  endpoints(): StoredEndpoint[] {
    return (this.s.endpoints.all() as EndpointRow[]).map(toEndpoint);
  }

  saveEndpoint(e: StoredEndpoint): void {
    this.s.upsertEndpoint.run(...endpointValues(e));
  }

  deleteEndpoint(id: string): boolean {
    return this.s.deleteEndpoint.run(id).changes > 0;
  }

  endpointSecrets(): EndpointSecrets[] {
    return (
      this.s.secrets.all() as {
        id: string;
        secret: string;
        previous_secret: string | null;
        secret_format: 'plain' | 'sealed';
      }[]
    ).map((r) => ({
      id: r.id,
      secret: r.secret,
      previousSecret: r.previous_secret,
      format: r.secret_format,
    }));
  }

  writeSealedSecrets(id: string, secret: string, previousSecret: string | null): void {
    this.s.writeSecrets.run(secret, previousSecret, id);
  }

  /** Writes events and their deliveries inside the transaction `tx` (someone else's: the outbox writes in commits). */
  insertOutbox(
    tx: StoreTx,
    events: readonly NewEvent[],
    deliveries: readonly NewDelivery[],
  ): { seqs: number[]; ids: number[] } {
    dbOf(tx, this.db);
    const seqs = events.map((e) => this.writeEvent(e));
    const ids = deliveries.map((d) =>
      Number(
        this.s.insertDelivery.run(
          d.endpointId,
          seqs[d.event]!,
          d.orderingKey, // the `lane` column
          d.nextAttemptAt,
          d.notBefore,
          d.replay ? 1 : 0,
          d.now,
          d.now,
        ).lastInsertRowid,
      ),
    );
    return { seqs, ids };
  }

  private writeEvent(e: NewEvent): number {
    return Number(
      this.s.insertEvent.run(e.msgId, e.type, e.userId, e.version, e.createdAt, e.payload).lastInsertRowid,
    );
  }

  /** Writes attempts and endpoint failure marks in one transaction, in order. */
  writeOutcomes(
    attempts: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): void {
    this.transaction(() => {
      for (const a of attempts) {
        if (a.status !== 'delivered') {
          this.s.insertAttempt.run(
            a.deliveryId,
            a.attempt,
            a.at,
            a.statusCode,
            a.latencyMs,
            a.error,
            a.nextAttemptAt,
          );
        }
        this.s.updateDelivery.run(
          a.status,
          a.attempt,
          a.nextAttemptAt,
          a.at,
          a.statusCode,
          a.latencyMs,
          a.error,
          a.at + a.latencyMs,
          a.deliveryId,
        );
      }
      for (const f of failing) this.s.setFailingSince.run(f.since, f.endpointId);
    });
  }

  /** Gives up every pending delivery of an endpoint (it was disabled). */
  failPending(endpointId: string, error: string, now: number): number {
    return this.s.failPending.run(error, now, endpointId).changes;
  }

  loadPending(endpointId: string, afterId: number, limit: number): PendingRow[] {
    return this.s.loadPending.all(endpointId, afterId, limit) as PendingRow[];
  }

  markCoalesced(deliveryId: number, note: string, now: number): void {
    this.s.markCoalesced.run(note, now, deliveryId);
  }

  /** Stores a merged event and points the surviving delivery at it; returns the event's seq. */
  repoint(deliveryId: number, fromSeq: number, msgId: string, payload: string, now: number): number {
    const src = this.s.eventOf.get(fromSeq) as
      { user_id: string | null; version: number | null; created_at: number } | undefined;
    const seq = this.writeEvent({
      msgId,
      type: 'presence.changed',
      userId: src?.user_id ?? null,
      version: src?.version ?? null,
      createdAt: src?.created_at ?? now,
      payload,
    });
    this.s.repointDelivery.run(seq, now, deliveryId);
    return seq;
  }

  page(endpointId: string, status: DeliveryStatus | null, before: number, limit: number): DeliveryRow[] {
    return this.s.page.all(endpointId, before, status, status, limit) as DeliveryRow[];
  }

  attemptsOf(deliveryIds: readonly number[]): AttemptRow[] {
    return this.s.attemptsOf.all(JSON.stringify(deliveryIds)) as AttemptRow[];
  }

  /**
   * Queues again every event the endpoint was sent (delivered, or given up) whose event time is at
   * or after `since`. Returns how many.
   */
  replay(endpointId: string, since: number, now: number): number {
    return this.s.replay.run({ endpoint: endpointId, since, now }).changes;
  }

  /**
   * Deletes every event about the user but `user.deleted` ones, with their deliveries and
   * attempts. Returns the pending deliveries it removed, by endpoint, for the dispatcher to drop
   * from memory, and how many events went.
   */
  forgetUser(tx: StoreTx, userId: string): { pending: Map<string, Set<number>>; events: number } {
    dbOf(tx, this.db);
    const pending = new Map<string, Set<number>>();
    for (const r of this.s.userPending.all(userId) as { id: number; endpoint_id: string }[]) {
      let ids = pending.get(r.endpoint_id);
      if (ids === undefined) pending.set(r.endpoint_id, (ids = new Set()));
      ids.add(r.id);
    }
    this.s.forgetUserDeliveries.run(userId);
    return { pending, events: this.s.forgetUserEvents.run(userId).changes };
  }

  pruneDeliveries(cutoff: number, chunk: number): number {
    return this.s.pruneDeliveries.run(cutoff, chunk).changes;
  }

  pruneEvents(cutoff: number, chunk: number): number {
    return this.s.pruneEvents.run(cutoff, chunk).changes;
  }
}

/**
 * Runs `fn` with SQLite's `secure_delete` on (what a write frees is overwritten with zeros), then
 * truncates the WAL, whose old frames would still hold the values replaced. Returns fn's result
 * and whether the WAL could be truncated (a reader on another connection can keep it).
 */
export function scrubbing<T>(db: Db, fn: () => T): { result: T; walTruncated: boolean } {
  const before = db.pragma('secure_delete', { simple: true }) as number;
  db.pragma('secure_delete = ON');
  let result: T;
  try {
    result = fn();
  } finally {
    db.pragma(`secure_delete = ${before}`);
  }
  const [cp] = db.pragma('wal_checkpoint(TRUNCATE)') as { busy: number; log: number }[];
  return { result, walTruncated: cp === undefined || cp.busy === 0 };
}
