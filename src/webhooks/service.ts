/**
 * @module webhooks/service
 * The webhook facade (`/v1/webhooks`; docs/api.md, Change webhooks): endpoint management, the outbox hooked
 * into the presence engine, the delivery worker, the delivery log, replay and pruning. The HTTP
 * routes are thin wrappers over these methods; every method validates its input itself and
 * throws `AppError` with a contract code, and returns plain JSON-ready objects in the API's
 * snake_case. A secret leaves this module only from `createEndpoint` and a rotating
 * `updateEndpoint`.
 *
 * Composition: open it (`WebhookService.open`, which loads the endpoints) before `engine.start()`
 * (or before the first change), so that the engine builds the presence object for every change
 * and every change lands in the outbox; then `start()` it, and `stop()` it before closing the
 * database.
 */

import cron, { type ScheduledTask } from 'node-cron';

import type { TokenVault } from '../oauth/vault';
import type { Clock } from '../core/clock';
import { AppError } from '../core/errors';
import { silentLog, type Log } from '../core/log';
import { parseIso, toIso, toIsoOrNull } from '../core/time';
import { deliveriesPage, pruneDeliveryLog } from './delivery-log';
import { Dispatcher } from './dispatcher';
import { checkOtherType, UserDeletion, type OtherEventType } from './emit';
import { endpointView, loadEndpoints, redactUrl, warnIfRefused } from './endpoints';
import { newEndpointId } from './ids';
import { Outbox, outboxSink } from './outbox';
import { DEFAULT_JITTER, DEFAULT_RETRY_SCHEDULE } from './retry';
import {
  createEndpointSchema,
  deliveriesQuerySchema,
  parseInput,
  replaySchema,
  updateEndpointSchema,
  type CreateEndpointInput,
  type DeliveriesPage,
  type DeliveriesQuery,
  type EndpointView,
  type EndpointWithSecret,
  type ReplayInput,
  type UpdateEndpointInput,
} from './schema';
import { newSecret } from './sign';
import { openEndpoint, sealEndpoint } from './secrets';
import type { ParsedWebhookOperations, WebhookServiceOptions, WebhookStats } from './service-options';
import { checkEndpointUrl, type Resolver } from './ssrf';
import type { AsyncWebhookStore, DisabledReason, EndpointRecord, StoreTx } from '../core/ports';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

export type { ParsedWebhookOperations, WebhookServiceOptions, WebhookStats } from './service-options';

export class WebhookService {
  private readonly vault: TokenVault | null;
  private readonly allowPrivateTargets: boolean;
  private readonly resolve: Resolver | undefined;
  private readonly store: AsyncWebhookStore;
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
  private cronTask: ScheduledTask | null = null;
  private readonly followEndpointsMs: number | null;
  private follower: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  /** Bumped by every endpoint write of this node: a sync that read before one is stale. */
  private localWrites = 0;
  private pruning: Promise<{ deliveries: number; events: number }> | null = null;

  private constructor(options: WebhookServiceOptions) {
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
    this.followEndpointsMs = options.followEndpointsMs ?? null;
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
      claims: options.claims ?? null,
    });
    if (options.vault !== null && options.engine !== undefined) {
      // The first change sink: rows in the engine's commit, delivery once it is durable.
      options.engine.changes.add(outboxSink(this.outbox, (staged) => this.dispatcher.enqueue(staged)));
      const deletion = new UserDeletion(this.store, this.outbox, this.dispatcher, this.log);
      options.engine.onUserDelete({
        stage: (tx, userId, lastVersion) => deletion.stage(tx, userId, lastVersion),
        committed: (userId) => deletion.committed(userId),
      });
    }
  }

  /** The service with its endpoints loaded from the store (see the module comment). */
  static async open(options: WebhookServiceOptions): Promise<WebhookService> {
    const service = new WebhookService(options);
    await service.load();
    return service;
  }

  /**
   * Loads the endpoints, and with them the pending deliveries a restart resumes; until then no
   * endpoint receives anything.
   */
  private async load(): Promise<void> {
    if (this.vault === null) {
      this.log.warn(
        {},
        'change webhooks are off: set PRESENCE_SECRET_KEY (it encrypts their signing secrets)',
      );
      return;
    }
    for (const ep of await loadEndpoints(this.store, this.vault, this.log)) {
      warnIfRefused(ep, this.allowPrivateTargets, this.log);
      this.endpoints.set(ep.id, ep);
      this.dispatcher.addEndpoint(ep);
    }
    this.outbox.setEndpoints(this.endpoints.values());
  }

  // ---------------------------------------------------------------- lifecycle

  /** Starts delivering (woken by every commit, and by a timer for retries) and the prune schedule. */
  start(): void {
    this.dispatcher.start();
    if (this.followEndpointsMs !== null && this.vault !== null && this.follower === null) {
      this.follower = setInterval(() => void this.syncEndpoints(), this.followEndpointsMs);
      this.follower.unref();
    }
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
    await this.stopTimers();
    await this.pruning;
    await this.dispatcher.stop(this.stopGraceMs);
  }

  /**
   * Takes in the endpoint changes other nodes made on the shared store: endpoints created (their
   * pending deliveries load), changed or disabled (a newer `updated_at` than the one in memory)
   * and deleted. Until a node has taken an endpoint in, its commits write no events for it: a new
   * endpoint receives every node's changes from at most `followEndpointsMs` after its creation.
   * A read that overlapped a write of this node's own is dropped (the next one is current).
   */
  async syncEndpoints(): Promise<void> {
    if (this.vault === null) return;
    this.syncing ??= (async () => {
      const writes = this.localWrites;
      let stored;
      try {
        stored = await this.store.endpoints();
      } catch (error) {
        this.log.warn({ err: error }, 'reading the webhook endpoints of other nodes failed; will retry');
        return;
      }
      if (writes !== this.localWrites) return;
      const ids = new Set<string>();
      let changed = false;
      for (const row of stored) {
        ids.add(row.id);
        const mine = this.endpoints.get(row.id);
        if (mine !== undefined && row.updatedAt <= mine.updatedAt) continue;
        const ep = openEndpoint(this.vault!, row);
        changed = true;
        if (mine === undefined) {
          this.endpoints.set(ep.id, ep);
          this.dispatcher.addEndpoint(ep);
          continue;
        }
        const toggled = mine.enabled !== ep.enabled;
        Object.assign(mine, ep);
        if (toggled) this.dispatcher.resetEndpoint(ep.id);
      }
      for (const id of [...this.endpoints.keys()]) {
        if (ids.has(id)) continue;
        this.endpoints.delete(id);
        this.dispatcher.removeEndpoint(id);
        changed = true;
      }
      if (changed) this.outbox.setEndpoints(this.endpoints.values());
    })().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  /** Stops the endpoint re-read and the prune schedule, waiting for a re-read under way. */
  private async stopTimers(): Promise<void> {
    if (this.follower !== null) clearInterval(this.follower);
    this.follower = null;
    await this.syncing;
    if (this.cronTask !== null) {
      await this.cronTask.destroy();
      this.cronTask = null;
    }
  }

  /**
   * Stops delivering at once and writes nothing more (no outcome, no hand-over): what a node that
   * dies leaves behind, for tests of the takeover by another node.
   */
  async abandon(): Promise<void> {
    await this.stopTimers();
    await this.dispatcher.abandon();
  }

  /** Claim mode: renews the claims held now (a timer does it too). For tests. */
  renewClaims(): Promise<void> {
    return this.dispatcher.renewClaims();
  }

  // ---------------------------------------------------------------- the outbox, hooked into the engine

  /**
   * Emits an event of a type other than `presence.changed` and `user.deleted` (those come from
   * the engine, in the transaction of the change they report) to every enabled endpoint that
   * takes it, written in a transaction of its own and sent once that committed. Returns the
   * `webhook-id`, or null when no endpoint wanted it.
   */
  async emit(type: OtherEventType, data: Readonly<Record<string, unknown>>): Promise<string | null> {
    checkOtherType(type);
    const { msgId, staged } = await this.store.transaction((tx) =>
      this.outbox.writeEvent(tx, type, data, null),
    );
    this.dispatcher.enqueue(staged);
    return msgId;
  }

  /**
   * `emit` inside the caller's transaction `tx` (the one that records the change the event
   * reports): the event exists if and only if that change does. Its deliveries go to the
   * dispatcher once `tx` has committed (`StoreTx.afterCommit`), never if it rolls back.
   */
  async emitIn(
    tx: StoreTx,
    type: OtherEventType,
    data: Readonly<Record<string, unknown>>,
  ): Promise<string | null> {
    checkOtherType(type);
    if (tx.afterCommit === undefined) throw new Error('emitIn needs a transaction that reports its commit');
    const { msgId, staged } = await this.outbox.writeEvent(tx, type, data, null);
    if (staged.length > 0) tx.afterCommit(() => this.dispatcher.enqueue(staged));
    return msgId;
  }

  // ---------------------------------------------------------------- endpoints

  /**
   * The operations that take input, for input a schema has parsed already: the routes validate
   * the body and query with the schemas of schema.ts (the 400 names the request part), then call
   * these, so nothing is validated twice. The methods of the same names on the facade parse
   * input of unknown shape (the CLI, tests) with the same schemas first.
   */
  readonly parsed: ParsedWebhookOperations = {
    createEndpoint: (body) => this.create(body),
    updateEndpoint: (id, patch) => this.update(id, patch),
    deliveries: (endpointId, query) => this.deliveryLog(endpointId, query),
    replay: (endpointId, input) => this.replayFrom(endpointId, input),
  };

  /** Registers an endpoint. Returns it with its `secret`, the only time the secret is shown. */
  async createEndpoint(input: unknown): Promise<EndpointWithSecret> {
    this.mustBeOn();
    return await this.create(parseInput(createEndpointSchema, input, 'webhook endpoint'));
  }

  private async create(body: CreateEndpointInput): Promise<EndpointWithSecret> {
    this.mustBeOn();
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
    await this.save(ep);
    this.endpoints.set(ep.id, ep);
    this.dispatcher.addEndpoint(ep);
    this.outbox.setEndpoints(this.endpoints.values());
    this.log.info({ endpoint_id: ep.id, url: redactUrl(url) }, 'webhook endpoint created');
    return { ...endpointView(ep, now), secret: ep.secret };
  }

  listEndpoints(): EndpointView[] {
    this.mustBeOn();
    const now = this.clock.now();
    return [...this.endpoints.values()].map((ep) => endpointView(ep, now));
  }

  /** Throws `not_found`. */
  getEndpoint(id: string): EndpointView {
    return endpointView(this.must(id), this.clock.now());
  }

  /**
   * Changes an endpoint: url, filters (`null` clears one), `coalesce_ms`, `enabled` (true
   * re-enables a disabled endpoint and clears its failure record; false disables it),
   * `rotate_secret` (returns the new `secret`; the previous one keeps signing, as a second
   * signature, for the rotation window). Throws `not_found`, `invalid_request`.
   */
  async updateEndpoint(id: string, input: unknown): Promise<EndpointView | EndpointWithSecret> {
    return await this.update(id, parseInput(updateEndpointSchema, input, 'webhook endpoint update'));
  }

  private async update(id: string, patch: UpdateEndpointInput): Promise<EndpointView | EndpointWithSecret> {
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
      await this.disable(ep, 'manual', 'disabled through the API', next);
    } else {
      await this.dispatcher.flushOutcomes(); // its failure marks must not land after this write
      await this.save(next);
      Object.assign(ep, next);
      this.outbox.setEndpoints(this.endpoints.values());
      if (enabling) this.dispatcher.resetEndpoint(id);
    }
    const changed = Object.keys(patch).filter((k) => k !== 'rotate_secret');
    this.log.info(
      { endpoint_id: id, changed, rotated: secret !== undefined, enabled: ep.enabled },
      'webhook endpoint updated',
    );
    const view = endpointView(ep, now);
    return secret === undefined ? view : { ...view, secret };
  }

  /** Deletes the endpoint and its delivery log. Throws `not_found`. */
  async deleteEndpoint(id: string): Promise<void> {
    this.must(id);
    await this.dispatcher.flushOutcomes();
    this.localWrites += 1;
    await this.store.deleteEndpoint(id);
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
  private async disable(
    ep: EndpointRecord,
    reason: DisabledReason,
    detail: string,
    base: EndpointRecord = ep,
  ): Promise<void> {
    const now = this.clock.now();
    await this.dispatcher.flushOutcomes();
    const next: EndpointRecord = {
      ...base,
      enabled: false,
      disabledReason: reason,
      disabledAt: now,
      updatedAt: now,
    };
    const staged = await this.store.transaction(async (tx) => {
      await this.save(next, tx);
      await this.store.failPending(ep.id, `endpoint disabled: ${detail}`, now, tx);
      if (reason === 'manual') return [];
      const { staged } = await this.outbox.writeEvent(
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
      );
      return staged;
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
  async deliveries(endpointId: string, query: unknown = {}): Promise<DeliveriesPage> {
    return await this.deliveryLog(
      endpointId,
      parseInput(deliveriesQuerySchema, query ?? {}, 'deliveries query'),
    );
  }

  private async deliveryLog(endpointId: string, q: DeliveriesQuery): Promise<DeliveriesPage> {
    this.must(endpointId);
    await this.dispatcher.flushOutcomes();
    return await deliveriesPage(this.store, endpointId, q);
  }

  /**
   * Sends again every event this endpoint was sent (delivered or given up) whose time is at or
   * after `since`, with the same `webhook-id`s, in version order per user. Returns how many were
   * queued. Throws `not_found`, `invalid_request`, and `conflict` for a disabled endpoint.
   */
  async replay(endpointId: string, input: unknown): Promise<{ replayed: number }> {
    return await this.replayFrom(endpointId, parseInput(replaySchema, input, 'replay request'));
  }

  private async replayFrom(endpointId: string, { since }: ReplayInput): Promise<{ replayed: number }> {
    const ep = this.must(endpointId);
    if (!ep.enabled) {
      throw new AppError(
        'conflict',
        `webhook endpoint ${endpointId} is disabled; re-enable it before a replay`,
      );
    }
    await this.dispatcher.flushOutcomes();
    const replayed = await this.store.replay(endpointId, parseIso(since), this.clock.now());
    if (replayed > 0) this.dispatcher.reload([endpointId]);
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
    await this.dispatcher.flushOutcomes();
    return pruneDeliveryLog(this.store, cutoff, this.log);
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
  private async save(ep: EndpointRecord, tx?: StoreTx): Promise<void> {
    if (this.vault === null) throw new Error('webhook secrets need the token vault (PRESENCE_SECRET_KEY)');
    this.localWrites += 1;
    await this.store.saveEndpoint(sealEndpoint(this.vault, ep), tx);
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
}
