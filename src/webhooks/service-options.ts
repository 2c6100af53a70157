/**
 * @module webhooks/service-options
 * What the webhook service is built with, and what it reports for /metrics.
 */

import type { PresenceEngine } from '../aggregator/engine';
import type { TokenVault } from '../oauth/vault';
import type { Clock } from '../core/clock';
import type { Log } from '../core/log';
import type {
  CreateEndpointInput,
  DeliveriesPage,
  DeliveriesQuery,
  EndpointView,
  EndpointWithSecret,
  ReplayInput,
  UpdateEndpointInput,
} from './schema';
import type { ClaimSettings } from './dispatcher';
import type { Resolver } from './ssrf';
import type { AsyncWebhookStore } from '../core/ports';

export interface WebhookServiceOptions {
  /** Where endpoints, events and deliveries are kept. */
  readonly store: AsyncWebhookStore;
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
  /**
   * Several nodes on one store: re-read the endpoints this often, ms, taking in what other nodes
   * created, changed, disabled or deleted (`syncEndpoints`). Default null: one node, whose memory
   * is the only writer.
   */
  readonly followEndpointsMs?: number | null;
  /**
   * Several nodes on one outbox (PostgreSQL, the cluster on): this node sends only the deliveries
   * it claimed (see dispatcher.ts). Absent or null: it sends every pending delivery (one node).
   */
  readonly claims?: ClaimSettings | null;
}

/** What `stats()` reports, for /metrics. */
export interface WebhookStats {
  endpoints: number;
  enabled_endpoints: number;
  queued: number;
  in_flight: number;
  spilled_endpoints: number;
}

/**
 * `WebhookService.parsed`: the facade's operations that take input, for input already parsed by
 * the schemas of schema.ts (the routes' validation). Same behaviour and errors otherwise.
 */
export interface ParsedWebhookOperations {
  createEndpoint(body: CreateEndpointInput): Promise<EndpointWithSecret>;
  updateEndpoint(id: string, patch: UpdateEndpointInput): Promise<EndpointView | EndpointWithSecret>;
  deliveries(endpointId: string, query: DeliveriesQuery): Promise<DeliveriesPage>;
  replay(endpointId: string, input: ReplayInput): Promise<{ replayed: number }>;
}
