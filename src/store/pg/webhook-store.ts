/**
 * @module store/pg/webhook-store
 * Webhook endpoints, the outbox of events, deliveries and attempts on PostgreSQL
 * (`Async<WebhookStore>`; migrations/pg/0004), as store/webhook-store.ts does on SQLite.
 * Signing secrets arrive sealed and leave sealed. Writes that must run in someone else's
 * transaction check they were handed one of this pool.
 *
 * Beyond the port, `claimDue` lets several nodes share the outbox: a node claims due deliveries
 * with `FOR UPDATE SKIP LOCKED` (two nodes never claim the same row) for a lease; a node that
 * dies loses its claims when the lease ends, and another node claims them again.
 */

import type pg from 'pg';

import type { StoreTx } from '../../core/changes';
import type {
  AsyncWebhookStore,
  AttemptRecord,
  AttemptRow,
  ClaimedRow,
  DeliveryClaims,
  DeliveryRow,
  DeliveryStatus,
  EndpointSecrets,
  NewDelivery,
  NewEvent,
  PendingRow,
  StoredEndpoint,
} from '../../core/ports';
import { endpointValues, type EndpointRow, toEndpoint } from '../rows/webhooks';
import { clientOf, inPgTx, on, type Queryable } from './pool';

const PENDING_COLUMNS = `d.id, d.event_seq, d.lane AS ordering_key, d.attempts, d.next_attempt_at, d.not_before, d.replay, d.created_at,
  e.msg_id, e.type, e.payload`;

/** The tables that hold sealed values, rewritten by `scrubbing`. */
const SEALED_TABLES = ['webhook_endpoints', 'connections', 'oauth_states'] as const;

export class PgWebhookStore implements AsyncWebhookStore, DeliveryClaims {
  constructor(private readonly pool: pg.Pool) {}

  transaction<T>(fn: (tx: StoreTx) => T | Promise<T>): Promise<T> {
    return inPgTx(this.pool, fn);
  }

  /**
   * Runs `fn`, then rewrites the tables that hold sealed values (VACUUM FULL), so the row
   * versions its writes replaced are gone from the table files. PostgreSQL's write-ahead log
   * cannot be truncated from a session: it keeps the old values until its segments are recycled,
   * so `walTruncated` is always false here.
   */
  async scrubbing<T>(fn: () => T | Promise<T>): Promise<{ result: T; walTruncated: boolean }> {
    const result = await fn();
    for (const table of SEALED_TABLES) await this.pool.query(`VACUUM FULL ${table}`);
    return { result, walTruncated: false };
  }

  async endpoints(tx?: StoreTx): Promise<StoredEndpoint[]> {
    const { rows } = await on(this.pool, tx).query<EndpointRow>(
      'SELECT * FROM webhook_endpoints ORDER BY created_at, id',
    );
    return rows.map(toEndpoint);
  }

  async saveEndpoint(e: StoredEndpoint, tx?: StoreTx): Promise<void> {
    await on(this.pool, tx).query(
      `INSERT INTO webhook_endpoints (id, url, events, user_ids, coalesce_ms, secret, previous_secret,
         previous_expires_at, enabled, disabled_reason, disabled_at, failing_since, created_at, updated_at,
         secret_format)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, 'sealed')
       ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, events = EXCLUDED.events, user_ids = EXCLUDED.user_ids,
         coalesce_ms = EXCLUDED.coalesce_ms, secret = EXCLUDED.secret, previous_secret = EXCLUDED.previous_secret,
         secret_format = EXCLUDED.secret_format, previous_expires_at = EXCLUDED.previous_expires_at,
         enabled = EXCLUDED.enabled, disabled_reason = EXCLUDED.disabled_reason,
         disabled_at = EXCLUDED.disabled_at, failing_since = EXCLUDED.failing_since,
         updated_at = EXCLUDED.updated_at`,
      endpointValues(e),
    );
  }

  async deleteEndpoint(id: string, tx?: StoreTx): Promise<boolean> {
    const r = await on(this.pool, tx).query('DELETE FROM webhook_endpoints WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  async endpointSecrets(tx?: StoreTx): Promise<EndpointSecrets[]> {
    const { rows } = await on(this.pool, tx).query<{
      id: string;
      secret: string;
      previous_secret: string | null;
      secret_format: 'plain' | 'sealed';
    }>('SELECT id, secret, previous_secret, secret_format FROM webhook_endpoints ORDER BY id');
    return rows.map((r) => ({
      id: r.id,
      secret: r.secret,
      previousSecret: r.previous_secret,
      format: r.secret_format,
    }));
  }

  async writeSealedSecrets(
    id: string,
    secret: string,
    previousSecret: string | null,
    tx?: StoreTx,
  ): Promise<void> {
    await on(this.pool, tx).query(
      "UPDATE webhook_endpoints SET secret = $1, previous_secret = $2, secret_format = 'sealed' WHERE id = $3",
      [secret, previousSecret, id],
    );
  }

  /**
   * Two statements whatever the batch's size: the events from arrays (unnest ... WITH
   * ORDINALITY, inserted in the order given, so seqs and ids grow in that order), then the
   * deliveries the same way.
   */
  async insertOutbox(
    tx: StoreTx,
    events: readonly NewEvent[],
    deliveries: readonly NewDelivery[],
  ): Promise<{ seqs: number[]; ids: number[] }> {
    const client = clientOf(tx, this.pool);
    if (events.length === 0) return { seqs: [], ids: [] };
    const written = await client.query<{ seq: number }>(
      `INSERT INTO webhook_events (msg_id, type, user_id, version, created_at, payload)
       SELECT m, t, u, v, c, p
       FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::text[])
         WITH ORDINALITY AS e(m, t, u, v, c, p, n)
       ORDER BY n
       RETURNING seq`,
      [
        events.map((e) => e.msgId),
        events.map((e) => e.type),
        events.map((e) => e.userId),
        events.map((e) => e.version),
        events.map((e) => e.createdAt),
        events.map((e) => e.payload),
      ],
    );
    // RETURNING follows the order of insertion; seqs are assigned in it, so sorting restores it
    // even if a future planner returned rows otherwise.
    const seqs = written.rows.map((r) => r.seq).sort((a, b) => a - b);
    if (deliveries.length === 0) return { seqs, ids: [] };
    const inserted = await client.query<{ id: number }>(
      `INSERT INTO webhook_deliveries (endpoint_id, event_seq, lane, status, attempts, next_attempt_at, not_before,
         replay, created_at, updated_at)
       SELECT ep, s, l, 'pending', 0, na, nb, r, c, c
       FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::bigint[], $6::int[], $7::bigint[])
         WITH ORDINALITY AS d(ep, s, l, na, nb, r, c, n)
       ORDER BY n
       RETURNING id`,
      [
        deliveries.map((d) => d.endpointId),
        deliveries.map((d) => seqs[d.event]),
        deliveries.map((d) => d.orderingKey),
        deliveries.map((d) => d.nextAttemptAt),
        deliveries.map((d) => d.notBefore),
        deliveries.map((d) => (d.replay ? 1 : 0)),
        deliveries.map((d) => d.now),
      ],
    );
    return { seqs, ids: inserted.rows.map((r) => r.id).sort((a, b) => a - b) };
  }

  /** Writes attempts and endpoint failure marks in one transaction, in order; releases claims. */
  async writeOutcomes(
    attempts: readonly AttemptRecord[],
    failing: readonly { endpointId: string; since: number | null }[],
  ): Promise<void> {
    await inPgTx(this.pool, async ({ client }) => {
      for (const a of attempts) {
        if (a.status !== 'delivered') {
          await client.query(
            `INSERT INTO webhook_attempts (delivery_id, attempt, at, status_code, latency_ms, error, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)`,
            [a.deliveryId, a.attempt, a.at, a.statusCode, a.latencyMs, a.error, a.nextAttemptAt],
          );
        }
        await client.query(
          `UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_attempt_at = $4,
             last_status_code = $5, last_latency_ms = $6, last_error = $7, updated_at = $8,
             claimed_by = NULL, claim_expires_at = NULL
           WHERE id = $9`,
          [
            a.status,
            a.attempt,
            a.nextAttemptAt,
            a.at,
            a.statusCode,
            a.latencyMs,
            a.error,
            a.at + a.latencyMs,
            a.deliveryId,
          ],
        );
      }
      for (const f of failing) {
        await client.query('UPDATE webhook_endpoints SET failing_since = $1 WHERE id = $2', [
          f.since,
          f.endpointId,
        ]);
      }
    });
  }

  async failPending(endpointId: string, error: string, now: number, tx?: StoreTx): Promise<number> {
    const r = await on(this.pool, tx).query(
      `UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, last_error = $1, updated_at = $2,
         claimed_by = NULL, claim_expires_at = NULL
       WHERE endpoint_id = $3 AND status = 'pending'`,
      [error, now, endpointId],
    );
    return r.rowCount ?? 0;
  }

  async loadPending(endpointId: string, afterId: number, limit: number, tx?: StoreTx): Promise<PendingRow[]> {
    const { rows } = await on(this.pool, tx).query<PendingRow>(
      `SELECT ${PENDING_COLUMNS}
       FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = $1 AND d.status = 'pending' AND d.id > $2 ORDER BY d.id LIMIT $3`,
      [endpointId, afterId, limit],
    );
    return rows;
  }

  async markCoalesced(deliveryId: number, note: string, now: number, tx?: StoreTx): Promise<void> {
    await on(this.pool, tx).query(
      `UPDATE webhook_deliveries SET status = 'coalesced', next_attempt_at = NULL, last_error = $1, updated_at = $2,
         claimed_by = NULL, claim_expires_at = NULL
       WHERE id = $3`,
      [note, now, deliveryId],
    );
  }

  /** Stores a merged event and points the surviving delivery at it; returns the event's seq. */
  async repoint(
    deliveryId: number,
    fromSeq: number,
    msgId: string,
    payload: string,
    now: number,
    tx?: StoreTx,
  ): Promise<number> {
    const run = async (q: Queryable): Promise<number> => {
      const { rows } = await q.query<{ user_id: string | null; version: number | null; created_at: number }>(
        'SELECT user_id, version, created_at FROM webhook_events WHERE seq = $1',
        [fromSeq],
      );
      const src = rows[0];
      const seq = await writeEvent(q, {
        msgId,
        type: 'presence.changed',
        userId: src?.user_id ?? null,
        version: src?.version ?? null,
        createdAt: src?.created_at ?? now,
        payload,
      });
      await q.query('UPDATE webhook_deliveries SET event_seq = $1, updated_at = $2 WHERE id = $3', [
        seq,
        now,
        deliveryId,
      ]);
      return seq;
    };
    return tx === undefined
      ? await inPgTx(this.pool, ({ client }) => run(client))
      : await run(clientOf(tx, this.pool));
  }

  async page(
    endpointId: string,
    status: DeliveryStatus | null,
    before: number,
    limit: number,
    tx?: StoreTx,
  ): Promise<DeliveryRow[]> {
    const { rows } = await on(this.pool, tx).query<DeliveryRow>(
      `SELECT d.id, d.status, d.attempts, d.next_attempt_at, d.replay, d.last_attempt_at, d.last_status_code,
         d.last_latency_ms, d.last_error, d.created_at, d.updated_at, e.msg_id, e.type, e.user_id, e.version
       FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = $1 AND d.id < $2 AND ($3::text IS NULL OR d.status = $3)
       ORDER BY d.id DESC LIMIT $4`,
      [endpointId, before, status, limit],
    );
    return rows;
  }

  async attemptsOf(deliveryIds: readonly number[], tx?: StoreTx): Promise<AttemptRow[]> {
    const { rows } = await on(this.pool, tx).query<AttemptRow>(
      `SELECT delivery_id, attempt, at, status_code, latency_ms, error, next_attempt_at FROM webhook_attempts
       WHERE delivery_id = ANY($1::bigint[]) ORDER BY delivery_id, attempt, id`,
      [deliveryIds],
    );
    return rows;
  }

  /**
   * One statement, as on SQLite: the rows are inserted in the ORDER BY order, so each lane gets
   * its events in version order (identity values are drawn as the sorted rows are inserted).
   */
  async replay(endpointId: string, since: number, now: number, tx?: StoreTx): Promise<number> {
    const r = await on(this.pool, tx).query(
      `INSERT INTO webhook_deliveries (endpoint_id, event_seq, lane, status, attempts, next_attempt_at, not_before,
         replay, created_at, updated_at)
       SELECT $1, seq, lane, 'pending', 0, $3, $3, 1, $3, $3 FROM (
         SELECT e.seq AS seq, min(d.lane) AS lane, e.version AS version
         FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
         WHERE d.endpoint_id = $1 AND d.status IN ('delivered', 'failed') AND e.created_at >= $2
         GROUP BY e.seq) AS sent
       ORDER BY lane, coalesce(version, 0), seq`,
      [endpointId, since, now],
    );
    return r.rowCount ?? 0;
  }

  async forgetUser(
    tx: StoreTx,
    userId: string,
  ): Promise<{ pending: Map<string, Set<number>>; events: number }> {
    const client = clientOf(tx, this.pool);
    const pending = new Map<string, Set<number>>();
    const { rows } = await client.query<{ id: number; endpoint_id: string }>(
      `SELECT d.id, d.endpoint_id FROM webhook_events e JOIN webhook_deliveries d ON d.event_seq = e.seq
       WHERE e.user_id = $1 AND e.type != 'user.deleted' AND d.status = 'pending'`,
      [userId],
    );
    for (const r of rows) {
      let ids = pending.get(r.endpoint_id);
      if (ids === undefined) pending.set(r.endpoint_id, (ids = new Set()));
      ids.add(r.id);
    }
    await client.query(
      `DELETE FROM webhook_deliveries WHERE event_seq IN (
         SELECT seq FROM webhook_events WHERE user_id = $1 AND type != 'user.deleted')`,
      [userId],
    );
    const events = await client.query(
      "DELETE FROM webhook_events WHERE user_id = $1 AND type != 'user.deleted'",
      [userId],
    );
    return { pending, events: events.rowCount ?? 0 };
  }

  async pruneDeliveries(cutoff: number, chunk: number, tx?: StoreTx): Promise<number> {
    const r = await on(this.pool, tx).query(
      `DELETE FROM webhook_deliveries WHERE id IN (
         SELECT id FROM webhook_deliveries WHERE status != 'pending' AND updated_at < $1 LIMIT $2)`,
      [cutoff, chunk],
    );
    return r.rowCount ?? 0;
  }

  async pruneEvents(cutoff: number, chunk: number, tx?: StoreTx): Promise<number> {
    const r = await on(this.pool, tx).query(
      `DELETE FROM webhook_events WHERE seq IN (
         SELECT seq FROM webhook_events e WHERE e.created_at < $1
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_seq = e.seq) LIMIT $2)`,
      [cutoff, chunk],
    );
    return r.rowCount ?? 0;
  }

  /**
   * Claims up to `limit` due deliveries for `node` until `now + leaseMs`, in id order. Due: pending,
   * past its coalescing window and retry time, of an enabled endpoint, not claimed (or its claim
   * expired), and first of its lane (no earlier pending delivery of the same endpoint and lane),
   * so a lane's deliveries are still sent one after the other across nodes; only of `endpointIds`
   * when given (a node claims for the endpoints it knows). Rows another node is claiming at this
   * moment are skipped (`SKIP LOCKED`), never waited for nor claimed twice.
   * `writeOutcomes`, `failPending`, `markCoalesced` and `releaseClaims` release a claim.
   */
  async claimDue(
    node: string,
    now: number,
    leaseMs: number,
    limit: number,
    endpointIds?: readonly string[],
  ): Promise<ClaimedRow[]> {
    const { rows } = await this.pool.query<ClaimedRow>(
      `WITH due AS (
         SELECT d.id FROM webhook_deliveries d JOIN webhook_endpoints ep ON ep.id = d.endpoint_id
         WHERE d.status = 'pending' AND ep.enabled = 1 AND d.not_before <= $2
           AND coalesce(d.next_attempt_at, 0) <= $2
           AND (d.claim_expires_at IS NULL OR d.claim_expires_at <= $2)
           AND ($5::text[] IS NULL OR d.endpoint_id = ANY($5::text[]))
           AND NOT EXISTS (
             SELECT 1 FROM webhook_deliveries p
             WHERE p.endpoint_id = d.endpoint_id AND p.lane = d.lane AND p.status = 'pending' AND p.id < d.id)
         ORDER BY d.id LIMIT $4
         FOR UPDATE OF d SKIP LOCKED)
       UPDATE webhook_deliveries d SET claimed_by = $1, claim_expires_at = $2::bigint + $3::bigint
       FROM due, webhook_events e
       WHERE d.id = due.id AND e.seq = d.event_seq
       RETURNING ${PENDING_COLUMNS}, d.endpoint_id`,
      [node, now, leaseMs, limit, endpointIds ?? null],
    );
    return rows.sort((a, b) => a.id - b.id);
  }

  /** Extends `node`'s claims on `ids` that are still pending; returns those ids. */
  async renewClaims(node: string, ids: readonly number[], until: number): Promise<number[]> {
    if (ids.length === 0) return [];
    const { rows } = await this.pool.query<{ id: number }>(
      `UPDATE webhook_deliveries SET claim_expires_at = $3
       WHERE id = ANY($2::bigint[]) AND claimed_by = $1 AND status = 'pending'
       RETURNING id`,
      [node, ids, until],
    );
    return rows.map((r) => r.id);
  }

  /** Gives up `node`'s claims on `ids`; a claim another node took meanwhile is left alone. */
  async releaseClaims(node: string, ids: readonly number[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query(
      `UPDATE webhook_deliveries SET claimed_by = NULL, claim_expires_at = NULL
       WHERE id = ANY($2::bigint[]) AND claimed_by = $1`,
      [node, ids],
    );
  }

  async laneAfter(endpointId: string, lane: string, afterId: number, limit: number): Promise<PendingRow[]> {
    const { rows } = await this.pool.query<PendingRow>(
      `SELECT ${PENDING_COLUMNS}
       FROM webhook_deliveries d JOIN webhook_events e ON e.seq = d.event_seq
       WHERE d.endpoint_id = $1 AND d.lane = $2 AND d.status = 'pending' AND d.id > $3
       ORDER BY d.id LIMIT $4`,
      [endpointId, lane, afterId, limit],
    );
    return rows;
  }
}

async function writeEvent(q: Queryable, e: NewEvent): Promise<number> {
  const { rows } = await q.query<{ seq: number }>(
    `INSERT INTO webhook_events (msg_id, type, user_id, version, created_at, payload)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING seq`,
    [e.msgId, e.type, e.userId, e.version, e.createdAt, e.payload],
  );
  return rows[0]!.seq;
}
