/**
 * @module http/deps
 * What the HTTP app is built from. `main.ts` wires real objects; tests pass their own.
 */

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

import type { PresenceEngine } from '../aggregator/engine';
import type { ConnectorStatus } from '../aggregator/connector-host';
import type { UserService } from '../aggregator/users';
import type { Clock } from '../core/clock';
import type { ApiKeys } from '../keys/api-keys';
import type { StoreFault } from '../store/faults';
import type { ExtraGauges } from './metrics';
import type { PrivacyDeps } from './routes/privacy';

export interface AppDeps {
  readonly engine: PresenceEngine;
  readonly keys: ApiKeys;
  readonly clock: Clock;
  /** Every connector, running or off, for GET /v1/connectors. */
  readonly connectors: () => Promise<readonly ConnectorStatus[]>;
  /**
   * Database open and migrations applied: true or false, or the fault that keeps the database
   * from answering (PostgreSQL down), which `/readyz` names.
   */
  readonly ready: () => boolean | StoreFault | Promise<boolean | StoreFault>;
  /**
   * Another reason writes are refused now, beside the store's (several nodes: the shared change
   * log is unreachable), or null; /readyz shows it.
   */
  readonly writeFault?: () => StoreFault | null;
  /** Requests per minute per API key. */
  readonly rateLimitPerMinute: number;
  /** The pino logger requests log to, or false for none. */
  readonly logger: FastifyBaseLogger | false;
  /**
   * Which requests get an access-log line: by default failed (4xx, 5xx) and slow ones only,
   * `all` for every request. Every request is counted in /metrics either way.
   */
  readonly accessLog?: { readonly all: boolean; readonly slowMs: number };
  /** A user's OAuth connections, when the connection layer is wired. */
  readonly connectionsOf?: (userId: string) => Promise<Record<string, unknown>[]>;
  /**
   * User orchestration (deleting a user revokes their OAuth connections first); by default the
   * engine's deletion alone.
   */
  readonly users?: UserService;
  /** Gauges other subsystems (the webhook outbox) add to /metrics. */
  readonly gauges?: ExtraGauges;
  /** Viewers and privacy: settings, contacts, blocks and viewer tokens. Absent: operator only. */
  readonly privacy?: PrivacyDeps;
  /** Extra route sets (webhooks, connections, inbound) registered by the composition root. */
  readonly plugins?: readonly ((app: FastifyInstance) => void)[];
}
