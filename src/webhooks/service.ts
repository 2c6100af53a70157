/**
 * @module webhooks/service
 * The webhook facade (`/v1/webhooks`; docs/api.md, Change webhooks): endpoint management, the outbox hooked
 * into the presence engine, the delivery worker, the delivery log, replay and pruning. The HTTP
 * routes are thin wrappers over these methods; every method validates its input itself and
 * throws `AppError` with a contract code, and returns plain JSON-ready objects in the API's
 * snake_case. A secret leaves this module only from `createEndpoint` and a rotating
 * `updateEndpoint`.
 *
 * Composition: construct it before `engine.start()` (or before the first change), so that the
 * engine builds the presence object for every change and every change lands in the outbox; then
 * `start()` it, and `stop()` it before closing the database.
 */

import cron, { type ScheduledTask } from 'node-cron';

import type { PresenceEngine } from '../aggregator/engine';
import type { TokenVault } from '../oauth/vault';
import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import { silentLog, type Log } from '../core/log';
import { parseIso, toIso, toIsoOrNull } from '../core/time';
import { Dispatcher, type StagedDelivery } from './dispatcher';
import { newEndpointId } from './ids';
import { Outbox, outboxSink } from './outbox';
import { DEFAULT_JITTER, DEFAULT_RETRY_SCHEDULE } from './retry';
import {
  createEndpointSchema,
  deliveriesQuerySchema,
  EVENT_TYPES,
  parseInput,
  replaySchema,
  updateEndpointSchema,
  type AttemptView,
  type DeliveriesPage,
  type EndpointView,
  type EndpointWithSecret,
  type EventType,
} from './schema';
import { newSecret } from './sign';
import { openEndpoint, sealEndpoint, sealPlainSecrets } from './secrets';
import { checkEndpointUrl, literalTargetRefusal, type Resolver } from './ssrf';
import type { DisabledReason, EndpointRecord, StoreTx, WebhookStore } from '../core/ports';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export interface WebhookServiceOptions {
  /** Where endpoints, events and deliveries are kept. */
  readonly store: WebhookStore;
  /** The engine whose committed changes become `presence.changed` events. */
  readonly engine?: PresenceEngine;
  readonly clock: Clock;
  readonly log?: Log;
  /**
   * Seals the endpoints' signing secrets at rest (the token vault under `PRESENCE_SECRET_KEY`).
   * Null turns webhooks off: no endpoint is loaded, registered or sent to, no event is written,
   * and the management methods answer `not_found` saying what to set.
   */
  readonly vault: TokenVault | null;
  /** Lets endpoints point at loopback and private addresses (`WEBHOOK_ALLOW_PRIVATE_TARGETS`). */
  readonly allowPrivateTargets: boolean;
  /** Delay before each attempt, ms; the first is usually 0. Default: the contract's schedule. */
  readonly retrySchedule?: readonly number[];
  /** Each retry delay moves by up to ± this fraction (default 0.1). */
  readonly jitter?: number;
  readonly random?: () => number;
  /** One attempt's time limit: connect, headers and body (default 15 s). */
  readonly timeoutMs?: number;
  /** How long the previous secret keeps signing after a rotation (default 24 h). */
  readonly rotationWindowMs?: number;
  /** An endpoint failing for this long is disabled (default 5 days). */
  readonly disableAfterMs?: number;
  /** Concurrent requests per endpoint (default 32). */
  readonly maxInFlightPerEndpoint?: number;
  /** Deliveries per endpoint held in memory; the rest wait in SQLite (default 10,000). */
  readonly maxQueuedPerEndpoint?: number;
  /** Default 100. */
  readonly maxEndpoints?: number;
  /** Delivered, failed and coalesced rows older than this are pruned (default 7 days). */
  readonly retentionMs?: number;
  /** node-cron expression for pruning (default hourly, `17 * * * *`); null: no schedule. */
  readonly pruneSchedule?: string | null;
  /** Resolves endpoint host names for the SSRF check (default: the system resolver). */
  readonly resolve?: Resolver;
  readonly userAgent?: string;
  /** How long `stop()` waits for requests in flight before cutting them off (default 2 s). */
  readonly stopGraceMs?: number;
}

/** What `stats()` reports, for /metrics. */
export interface WebhookStats {
  endpoints: number;
  enabled_endpoints: number;
  queued: number;
  in_flight: number;
  spilled_endpoints: number;
}

/** Shows the scheme, host and path of a URL, never its query (it may hold a token). */
/** The events anyone but the engine may emit. */
type OtherEventType = Exclude<EventType, 'presence.changed' | 'user.deleted'>;

/** Checked at run time too: callers in plain JS, or with a cast, must not bypass the engine. */
function checkOtherType(type: string): void {
  if (
    !(EVENT_TYPES as readonly string[]).includes(type) ||
    type === 'presence.changed' ||
    type === 'user.deleted'
  ) {
    throw new Error(`emit() does not take ${type} events`);
  }
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

export class WebhookService {
  private readonly vault: TokenVault | null;
  private readonly allowPrivateTargets: boolean;
  private readonly resolve: Resolver | undefined;
  private readonly store: WebhookStore;
  private readonly outbox: Outbox;
  private readonly dispatcher: Dispatcher;
  private readonly endpoints = new Map<string, EndpointRecord>();
  private readonly clock: Clock;
  private readonly log: Log;
  private readonly rotationWindowMs: number;
  private readonly maxEndpoints: number;
  private readonly retentionMs: number;
  private readonly pruneSchedule: string | null;
  private readonly stopGraceMs: number;
  /** What a user deletion's transaction did, waiting for its commit to be reported. */
  private deleting: { userId: string; forgotten: Map<string, Set<number>>; staged: StagedDelivery[] } | null =
    null;
  private cronTask: ScheduledTask | null = null;
  private pruning: Promise<{ deliveries: number; events: number }> | null = null;

  constructor(options: WebhookServiceOptions) {
    this.vault = options.vault;
    this.allowPrivateTargets = options.allowPrivateTargets;
    this.resolve = options.resolve;
    this.clock = options.clock;
    this.log = options.log ?? silentLog;
    this.rotationWindowMs = options.rotationWindowMs ?? DAY;
    this.maxEndpoints = options.maxEndpoints ?? 100;
    this.retentionMs = options.retentionMs ?? 7 * DAY;
    this.pruneSchedule = options.pruneSchedule === undefined ? '17 * * * *' : options.pruneSchedule;
    this.stopGraceMs = options.stopGraceMs ?? 2000;
    if (this.pruneSchedule !== null && !cron.validate(this.pruneSchedule)) {
      throw new Error(`webhook prune schedule is not a cron expression: ${this.pruneSchedule}`);
    }
    const schedule = options.retrySchedule ?? DEFAULT_RETRY_SCHEDULE;
    if (schedule.length === 0 || schedule.some((d) => !Number.isFinite(d) || d < 0)) {
      throw new Error('the webhook retry schedule needs at least one delay, each 0 ms or more');
    }
    this.store = options.store;
    this.outbox = new Outbox(this.store, this.clock, schedule[0]);
    this.dispatcher = new Dispatcher({
      store: this.store,
      clock: this.clock,
      log: this.log,
      retrySchedule: schedule,
      jitter: options.jitter ?? DEFAULT_JITTER,
      random: options.random ?? Math.random,
      timeoutMs: options.timeoutMs ?? 15_000,
      maxInFlightPerEndpoint: options.maxInFlightPerEndpoint ?? 32,
      maxQueuedPerEndpoint: options.maxQueuedPerEndpoint ?? 10_000,
      disableAfterMs: options.disableAfterMs ?? 5 * DAY,
      allowPrivateTargets: options.allowPrivateTargets,
      userAgent: options.userAgent ?? 'presence-aggregator-webhooks/1',
      onDisable: (ep, reason, detail) => this.disable(ep, reason, detail),
    });
    if (options.vault === null) {
      this.log.warn(
        {},
        'change webhooks are off: set PRESENCE_SECRET_KEY (it encrypts their signing secrets)',
      );
      return;
    }
    // Rows from before secrets were sealed (migrations/0007) are converted once, here.
    const converted = sealPlainSecrets(this.store, options.vault);
    if (converted.sealed > 0) {
      this.log.info(
        { endpoints: converted.sealed, wal_truncated: converted.walTruncated },
        'sealed webhook signing secrets stored in plain text by an earlier version',
      );
    }
    const vault = options.vault;
    for (const ep of this.store.endpoints().map((stored) => openEndpoint(vault, stored))) {
      const refused = options.allowPrivateTargets ? null : literalTargetRefusal(ep.url);
      if (refused !== null && ep.enabled) {
        // Saved while private targets were allowed: every attempt is refused until it is fixed.
        this.log.warn(
          { endpoint_id: ep.id, url: redactUrl(ep.url), reason: refused },
          'webhook endpoint points at a private address and WEBHOOK_ALLOW_PRIVATE_TARGETS is off: its deliveries are refused',
        );
      }
      this.endpoints.set(ep.id, ep);
      this.dispatcher.addEndpoint(ep); // loads its pending deliveries: a restart resumes here
    }
    this.outbox.setEndpoints(this.endpoints.values());
    if (options.engine !== undefined) {
      // The first change sink: rows in the engine's commit, delivery once it is durable.
      options.engine.changes.add(outboxSink(this.outbox, (staged) => this.dispatcher.enqueue(staged)));
      options.engine.onUserDelete({
        stage: (tx, userId, lastVersion) => this.stageUserDelete(tx, userId, lastVersion),
        committed: (userId) => this.userDeleteCommitted(userId),
      });
    }
  }

  // ---------------------------------------------------------------- lifecycle

  /** Starts delivering (woken by every commit, and by a timer for retries) and the prune schedule. */
  start(): void {
    this.dispatcher.start();
    if (this.pruneSchedule !== null && this.cronTask === null) {
      this.cronTask = cron.schedule(
        this.pruneSchedule,
        async () => {
          try {
            await this.prune();
          } catch (error) {
            this.log.error({ err: error }, 'pruning the webhook delivery log failed');
          }
        },
        { name: 'webhook-prune', noOverlap: true, unref: true },
      );
    }
  }

  /**
   * Stops delivering and the prune schedule. Requests in flight get `stopGraceMs`, then are cut
   * off (and retried later). Final: to deliver again, construct a new service. Changes the engine
   * commits meanwhile still land in the outbox.
   */
  async stop(): Promise<void> {
    if (this.cronTask !== null) {
      await this.cronTask.destroy();
      this.cronTask = null;
    }
    await this.pruning;
    await this.dispatcher.stop(this.stopGraceMs);
  }

  // ---------------------------------------------------------------- the outbox, hooked into the engine

  /**
   * Inside the transaction `tx` that deletes a user: forgets every event about them (the presence
   * payloads) with its deliveries, so nothing of theirs is retried or replayed, and writes the
   * `user.deleted` event with their last version. Memory follows once it committed.
   */
  private stageUserDelete(tx: StoreTx, userId: string, lastVersion: number): void {
    const { pending, events } = this.store.forgetUser(tx, userId);
    const { staged } = this.outbox.writeEvent(
      tx,
      'user.deleted',
      { user_id: userId, version: lastVersion },
      null,
    );
    this.deleting = { userId, forgotten: pending, staged };
    this.log.info({ user_id: userId, events }, 'webhook events of a deleted user forgotten');
  }

  private userDeleteCommitted(userId: string): void {
    const d = this.deleting;
    this.deleting = null;
    if (d === null || d.userId !== userId) return;
    this.dispatcher.forget(d.forgotten);
    this.dispatcher.enqueue(d.staged);
  }

  /**
   * Emits an event of a type other than `presence.changed` and `user.deleted` (those come from
   * the engine, in the transaction of the change they report) to every enabled endpoint that
   * takes it, written in a transaction of its own and sent once that committed. Returns the
   * `webhook-id`, or null when no endpoint wanted it.
   */
  emit(type: OtherEventType, data: Readonly<Record<string, unknown>>): string | null {
    checkOtherType(type);
    const { msgId, staged } = this.store.transaction((tx) => this.outbox.writeEvent(tx, type, data, null));
    this.dispatcher.enqueue(staged);
    return msgId;
  }

  /**
   * `emit` inside the caller's transaction `tx` (the one that records the change the event
   * reports): the event exists if and only if that change does. Its deliveries are read back
   * from the database on a later turn of the event loop, by when `tx` is over (committed, or
   * rolled back with them).
   */
  emitIn(tx: StoreTx, type: OtherEventType, data: Readonly<Record<string, unknown>>): string | null {
    checkOtherType(type);
    const { msgId, staged } = this.outbox.writeEvent(tx, type, data, null);
    this.dispatcher.reloadLater(staged.map((s) => s.endpointId));
    return msgId;
  }

  // ---------------------------------------------------------------- endpoints

  /** Registers an endpoint. Returns it with its `secret`, the only time the secret is shown. */
  async createEndpoint(input: unknown): Promise<EndpointWithSecret> {
    this.mustBeOn();
    const body = parseInput(createEndpointSchema, input, 'webhook endpoint');
    const url = await this.checkUrl(body.url);
    if (this.endpoints.size >= this.maxEndpoints) {
      throw new AppError(
        'conflict',
        `there are already ${this.maxEndpoints} webhook endpoints, the most allowed`,
      );
    }
    const now = this.clock.now();
    const ep: EndpointRecord = {
      id: newEndpointId(now),
      url,
      events: body.events ?? null,
      userIds: body.user_ids ?? null,
      coalesceMs: body.coalesce_ms ?? 0,
      secret: newSecret(),
      previousSecret: null,
      previousExpiresAt: null,
      enabled: true,
      disabledReason: null,
      disabledAt: null,
      failingSince: null,
      createdAt: now,
      updatedAt: now,
    };
    this.save(ep);
    this.endpoints.set(ep.id, ep);
    this.dispatcher.addEndpoint(ep);
    this.outbox.setEndpoints(this.endpoints.values());
    this.log.info({ endpoint_id: ep.id, url: redactUrl(url) }, 'webhook endpoint created');
    return { ...this.view(ep, now), secret: ep.secret };
  }

  listEndpoints(): EndpointView[] {
    this.mustBeOn();
    const now = this.clock.now();
    return [...this.endpoints.values()].map((ep) => this.view(ep, now));
  }

  /** Throws `not_found`. */
  getEndpoint(id: string): EndpointView {
    return this.view(this.must(id), this.clock.now());
  }

  /**
   * Changes an endpoint: url, filters (`null` clears one), `coalesce_ms`, `enabled` (true
   * re-enables a disabled endpoint and clears its failure record; false disables it),
   * `rotate_secret` (returns the new `secret`; the previous one keeps signing, as a second
   * signature, for the rotation window). Throws `not_found`, `invalid_request`.
   */
  async updateEndpoint(id: string, input: unknown): Promise<EndpointView | EndpointWithSecret> {
    const patch = parseInput(updateEndpointSchema, input, 'webhook endpoint update');
    const current = this.must(id);
    // Enabling checks the stored URL again, under today's WEBHOOK_ALLOW_PRIVATE_TARGETS: it may
    // have been saved while private targets were allowed.
    const url =
      patch.url !== undefined
        ? await this.checkUrl(patch.url)
        : patch.enabled === true
          ? await this.checkUrl(current.url)
          : undefined;
    const ep = this.must(id); // again: it may have been deleted while the URL was resolved
    const now = this.clock.now();
    const next: EndpointRecord = { ...ep, updatedAt: now };
    if (url !== undefined) next.url = url;
    if (patch.events !== undefined) next.events = patch.events;
    if (patch.user_ids !== undefined) next.userIds = patch.user_ids;
    if (patch.coalesce_ms !== undefined) next.coalesceMs = patch.coalesce_ms;
    let secret: string | undefined;
    if (patch.rotate_secret === true) {
      secret = newSecret();
      next.previousSecret = ep.secret;
      next.previousExpiresAt = now + this.rotationWindowMs;
      next.secret = secret;
    }
    const enabling = patch.enabled === true && !ep.enabled;
    const disabling = patch.enabled === false && ep.enabled;
    if (enabling) {
      next.enabled = true;
      next.disabledReason = null;
      next.disabledAt = null;
      next.failingSince = null;
    }
    if (disabling) {
      this.disable(ep, 'manual', 'disabled through the API', next);
    } else {
      this.dispatcher.flushOutcomes(); // its failure marks must not land after this write
      this.save(next);
      Object.assign(ep, next);
      this.outbox.setEndpoints(this.endpoints.values());
      if (enabling) this.dispatcher.resetEndpoint(id);
    }
    const changed = Object.keys(patch).filter((k) => k !== 'rotate_secret');
    this.log.info(
      { endpoint_id: id, changed, rotated: secret !== undefined, enabled: ep.enabled },
      'webhook endpoint updated',
    );
    const view = this.view(ep, now);
    return secret === undefined ? view : { ...view, secret };
  }

  /** Deletes the endpoint and its delivery log. Throws `not_found`. */
  deleteEndpoint(id: string): void {
    this.must(id);
    this.dispatcher.flushOutcomes();
    this.store.deleteEndpoint(id);
    this.endpoints.delete(id);
    this.dispatcher.removeEndpoint(id);
    this.outbox.setEndpoints(this.endpoints.values());
    this.log.info({ endpoint_id: id }, 'webhook endpoint deleted');
  }

  /**
   * Disables an endpoint: its pending deliveries are given up (`failed`; `replay` brings them
   * back after re-enabling), and unless an operator did it, a `webhook.endpoint_disabled` event
   * goes to the other endpoints, in the same transaction.
   */
  private disable(
    ep: EndpointRecord,
    reason: DisabledReason,
    detail: string,
    base: EndpointRecord = ep,
  ): void {
    const now = this.clock.now();
    this.dispatcher.flushOutcomes();
    const next: EndpointRecord = {
      ...base,
      enabled: false,
      disabledReason: reason,
      disabledAt: now,
      updatedAt: now,
    };
    const staged = this.store.transaction((tx) => {
      this.save(next, tx);
      this.store.failPending(ep.id, `endpoint disabled: ${detail}`, now, tx);
      if (reason === 'manual') return [];
      return this.outbox.writeEvent(
        tx,
        'webhook.endpoint_disabled',
        {
          endpoint_id: ep.id,
          url: redactUrl(ep.url),
          reason,
          detail,
          disabled_at: toIso(now),
          failing_since: toIsoOrNull(ep.failingSince),
        },
        ep.id,
      ).staged;
    });
    Object.assign(ep, next);
    this.outbox.setEndpoints(this.endpoints.values());
    this.dispatcher.resetEndpoint(ep.id);
    this.dispatcher.enqueue(staged);
    this.log.warn({ endpoint_id: ep.id, reason, detail }, 'webhook endpoint disabled');
  }

  // ---------------------------------------------------------------- delivery log, replay, pruning

  /**
   * The delivery log, newest first: one entry per (event, endpoint) with each attempt's status
   * code, latency, error and next attempt. `status` filters; `limit` (1-1000, default 50) and
   * `before` page. Throws `not_found`, `invalid_request`.
   */
  deliveries(endpointId: string, query: unknown = {}): DeliveriesPage {
    const q = parseInput(deliveriesQuerySchema, query ?? {}, 'deliveries query');
    this.must(endpointId);
    this.dispatcher.flushOutcomes();
    const limit = q.limit ?? 50;
    const rows = this.store.page(
      endpointId,
      q.status ?? null,
      q.before ?? Number.MAX_SAFE_INTEGER,
      limit + 1,
    );
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    const attempts = new Map<number, AttemptView[]>();
    for (const a of this.store.attemptsOf(page.map((r) => r.id))) {
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
   * Sends again every event this endpoint was sent (delivered or given up) whose time is at or
   * after `since`, with the same `webhook-id`s, in version order per user. Returns how many were
   * queued. Throws `not_found`, `invalid_request`, and `conflict` for a disabled endpoint.
   */
  replay(endpointId: string, input: unknown): { replayed: number } {
    const { since } = parseInput(replaySchema, input, 'replay request');
    const ep = this.must(endpointId);
    if (!ep.enabled) {
      throw new AppError(
        'conflict',
        `webhook endpoint ${endpointId} is disabled; re-enable it before a replay`,
      );
    }
    this.dispatcher.flushOutcomes();
    const replayed = this.store.replay(endpointId, parseIso(since), this.clock.now());
    if (replayed > 0) this.dispatcher.reloadLater([endpointId]);
    this.log.info({ endpoint_id: endpointId, since, replayed }, 'webhook replay queued');
    return { replayed };
  }

  /**
   * Deletes delivered, failed and coalesced deliveries (with their attempts) last touched before
   * the retention, then events no delivery refers to any more. Runs in chunks, yielding between.
   */
  prune(): Promise<{ deliveries: number; events: number }> {
    this.pruning ??= this.runPrune().finally(() => {
      this.pruning = null;
    });
    return this.pruning;
  }

  private async runPrune(): Promise<{ deliveries: number; events: number }> {
    const cutoff = this.clock.now() - this.retentionMs;
    const chunk = 2000;
    this.dispatcher.flushOutcomes();
    let deliveries = 0;
    let events = 0;
    for (let n = chunk; n === chunk;) {
      n = this.store.transaction((tx) => this.store.pruneDeliveries(cutoff, chunk, tx));
      deliveries += n;
      if (n === chunk) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    for (let n = chunk; n === chunk;) {
      n = this.store.transaction((tx) => this.store.pruneEvents(cutoff, chunk, tx));
      events += n;
      if (n === chunk) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    if (deliveries + events > 0) this.log.info({ deliveries, events }, 'pruned the webhook delivery log');
    return { deliveries, events };
  }

  // ---------------------------------------------------------------- driving and observing

  /** One round by hand: sends what is due by the clock, waits for it, repeats. For tests. */
  runDue(): Promise<number> {
    return this.dispatcher.runDue();
  }

  /** Resolves when nothing is in flight and nothing is due now. For tests and shutdown. */
  idle(): Promise<void> {
    return this.dispatcher.idle();
  }

  stats(): WebhookStats {
    const s = this.dispatcher.stats();
    let enabled = 0;
    for (const ep of this.endpoints.values()) if (ep.enabled) enabled += 1;
    return {
      endpoints: this.endpoints.size,
      enabled_endpoints: enabled,
      queued: s.queued,
      in_flight: s.inFlight,
      spilled_endpoints: s.spilledEndpoints,
    };
  }

  // ---------------------------------------------------------------- helpers

  private mustBeOn(): void {
    if (this.vault === null) {
      throw new AppError(
        'not_found',
        "change webhooks are off: set PRESENCE_SECRET_KEY (it encrypts the endpoints' signing secrets)",
      );
    }
  }

  /** Stores the endpoint with its secrets sealed (see secrets.ts). */
  private save(ep: EndpointRecord, tx?: StoreTx): void {
    if (this.vault === null) throw new Error('webhook secrets need the token vault (PRESENCE_SECRET_KEY)');
    this.store.saveEndpoint(sealEndpoint(this.vault, ep), tx);
  }

  private must(id: string): EndpointRecord {
    this.mustBeOn();
    const ep = this.endpoints.get(id);
    if (ep === undefined) throw new AppError('not_found', `no webhook endpoint ${id}`);
    return ep;
  }

  private checkUrl(url: string): Promise<string> {
    return checkEndpointUrl(url, {
      allowPrivateTargets: this.allowPrivateTargets,
      ...(this.resolve === undefined ? {} : { resolve: this.resolve }),
    });
  }

  private view(ep: EndpointRecord, now: number): EndpointView {
    const rotating =
      ep.previousSecret !== null && ep.previousExpiresAt !== null && now < ep.previousExpiresAt;
    return {
      id: ep.id,
      url: ep.url,
      events: ep.events === null ? null : [...ep.events],
      user_ids: ep.userIds === null ? null : [...ep.userIds],
      coalesce_ms: ep.coalesceMs,
      enabled: ep.enabled,
      disabled_reason: ep.disabledReason,
      disabled_at: toIsoOrNull(ep.disabledAt),
      failing_since: toIsoOrNull(ep.failingSince),
      previous_secret_expires_at: rotating ? toIso(ep.previousExpiresAt!) : null,
      created_at: toIso(ep.createdAt),
      updated_at: toIso(ep.updatedAt),
    };
  }
}
