/**
 * @module connectors/module
 * What a connector module declares (each `connectors/<platform>/index.ts` exports one; the
 * registry, connectors/index.ts, lists them): its descriptor, the environment variables it reads,
 * which of them turn it on, what else it needs, and a factory that builds its connector (polling,
 * gateway) and its inbound handler from the configuration. The composition root iterates over the
 * registry; nothing outside the module knows a platform's variables or classes.
 */

import type { Env } from '../src/config/env';
import type { Clock } from '../src/core/clock';
import type { Connector, ConnectorDescriptor } from '../src/core/connector';
import type { Log } from '../src/core/log';
import type { Coordination } from '../src/core/ports';
import type { AppGrants } from '../src/oauth/app-token';
import type { ConnectionService } from '../src/oauth/service';
import type { InboundHandler, PresencePort } from './inbound';

/** What a module may use of the OAuth connection layer (stored tokens of connected accounts and apps). */
export type ConnectionsPort = Pick<
  ConnectionService,
  'list' | 'findByAccount' | 'getAccessToken' | 'markReauthRequired' | 'connectApp'
>;

/** Something a platform needs beyond its own variables. */
export type ConnectorNeed =
  /** The OAuth connection layer (on with PRESENCE_SECRET_KEY): tokens of connected accounts or of the app. */
  | 'connections'
  /** An https PUBLIC_URL, for a platform that subscribes to pushes itself (Teams). */
  | 'public_url';

export interface ConnectorDeps {
  readonly env: Env;
  readonly clock: Clock;
  readonly log: Log;
  /** Null without PRESENCE_SECRET_KEY. */
  readonly connections: ConnectionsPort | null;
  /**
   * The app grants' token sources (one per grant, shared with the connection layer's
   * `connectApp` and refresh sweep), for a connector that polls with the app's token without
   * storing a connection (Teams). There with or without PRESENCE_SECRET_KEY.
   */
  readonly appGrants: AppGrants;
  /** Where an inbound handler that maps pushes itself sends the presence (WhatsApp, Zoom). */
  readonly presence: PresencePort;
  /**
   * What the nodes share: rate budgets (`buckets`, keyed by platform and account), delivery
   * memories (`deliveries`) and lease locks (`locks`: Teams subscriptions, the Discord gateway).
   * Absent: this process's own (one node).
   */
  readonly coordination?: Pick<Coordination, 'buckets' | 'deliveries' | 'locks'>;
  /**
   * Whether to build the connector (polling, gateway, subscriptions). False when the service runs
   * without timers (tests drive the clock): then only inbound handlers that need no connector are
   * built.
   */
  readonly run: boolean;
}

export interface ConnectorParts {
  /** Started by the host; null when its credentials are missing (or `run` is false). */
  readonly connector: Connector | null;
  /** Mounted under /v1/inbound/<platform>; null when its secret is missing. */
  readonly inbound: InboundHandler | null;
}

export interface ConnectorModule {
  readonly descriptor: ConnectorDescriptor;
  /**
   * Every environment variable the platform reads, for polling (credentials, API base URLs,
   * intervals) and for its inbound route (verification secrets). Together with the service's own
   * variables they are the env schema's (a test keeps the lists equal).
   */
  readonly env: { readonly polling: readonly (keyof Env)[]; readonly inbound: readonly (keyof Env)[] };
  /**
   * What turns the platform on: any one of these sets of variables, each set in full. Named in
   * `GET /v1/connectors` while the platform is off.
   */
  readonly credentials: readonly (readonly (keyof Env)[])[];
  /** The variable its inbound route needs before it accepts pushes (named in the route's 404 while unset). */
  readonly inboundSecret?: keyof Env;
  /** Its inbound route can run as its whole connector: pushes alone, no connector object. */
  readonly pushOnly?: boolean;
  readonly needs: readonly ConnectorNeed[];
  create(deps: ConnectorDeps): ConnectorParts;
}
