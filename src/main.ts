/**
 * @module main
 * The composition root: the only place that builds real adapters (the stores, SQLite or
 * PostgreSQL, the engine, connectors, the HTTP app) and wires them together. `presence serve`, the demo and the end-to-end tests all
 * start the service through `createService`.
 */

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import pino from 'pino';

import { CONNECTOR_MODULES } from '../connectors';
import type { PresencePort } from '../connectors/inbound';
import type { ConnectorParts } from '../connectors/module';
import { ConnectorHost, InboundRecord, roleOf, type ConnectorStatus } from './aggregator/connector-host';
import type { PresenceEngine } from './aggregator/engine';
import { UserService } from './aggregator/users';
import {
  createAppGrants,
  createConnections,
  createEngine,
  createKeys,
  openBackend,
  secretVault,
} from './compose';
import type { Env } from './config/env';
import type { StoreTx } from './core/changes';
import { systemClock, type Clock } from './core/clock';
import { inProcessCoordination } from './core/coordination';
import { deliveryClaimsOf, type Coordination } from './core/ports';
import type { Connector, ConnectorHealth } from './core/connector';
import { silentLog, type Log } from './core/log';
import { runShutdown, type ShutdownReport } from './core/shutdown';
import { REAL_PLATFORMS } from './core/presence';
import { buildApp, LOG_REDACT } from './http/app';
import { FigureTracker } from './http/figures';
import { AppError } from './core/errors';
import { connectionRoutes } from './http/routes/connections';
import { dashboardRoutes } from './http/routes/dashboard';
import type { AppGrants } from './oauth/app-token';
import { inboundFamilyRoutes, inboundHandlerRoutes } from './http/routes/inbound';
import { streamRoutes } from './http/routes/stream';
import { webhookRoutes } from './http/routes/webhooks';
import { WebhookService } from './webhooks';
import { signalRoutes } from './http/routes/signals';
import { type ConnectionService, type ConnectionEventType } from './oauth/service';
import type { ApiKeys } from './keys/api-keys';
import { startCheckpointer } from './store/checkpointer';
import type { Db } from './store/db';
import { PrivacyService } from './privacy/service';
import { ViewerTokens } from './privacy/viewer-tokens';
import { streamPrivacy } from './http/viewer-reads';
import { createStream, type StreamService } from './stream';
import { Cluster } from './cluster';
import { FOLLOW_CHANNEL, RowFollower } from './cluster/row-follower';
import { PgFollowReads } from './store/pg/follow-reads';
import { PgListener } from './store/pg/listener';
import { RedisCoordination } from './store/redis/coordination';
import { CONNECTION_LABEL } from './stream/devices';

export interface ServiceOptions {
  readonly clock?: Clock;
  /**
   * What this node shares with the others (polling shares, rate budgets, delivery memories,
   * locks): default this process's own, for a node alone (`inProcessCoordination`).
   */
  readonly coordination?: Coordination;
  /** The logger; false for none. Defaults to pino at LOG_LEVEL, with secrets redacted. */
  readonly logger?: FastifyBaseLogger | false;
  /** Connectors to run (the demo passes simulated ones); the real ones come with their issues. */
  readonly connectors?: readonly { connector: Connector; simulated?: boolean }[];
  /** Start the engine's timers (sweeper, refresh persister). Tests driving a FakeClock say no. */
  readonly timers?: boolean;
  /** Extra route sets (platform inbound routes, …) mounted on the app. */
  readonly plugins?: readonly ((app: FastifyInstance) => void)[];
  /** Bounds of `close()`: per step (default 3 s) and in all (default 8 s). */
  readonly shutdown?: { readonly stepTimeoutMs?: number; readonly totalTimeoutMs?: number };
}

export interface Service {
  readonly app: FastifyInstance;
  readonly engine: PresenceEngine;
  readonly webhooks: WebhookService;
  /** The OAuth connection layer; null without PRESENCE_SECRET_KEY (it encrypts the tokens). */
  readonly connections: ConnectionService | null;
  /** The SQLite database, for tests and tools; null on PostgreSQL (PRESENCE_DATABASE_URL). */
  readonly db: Db | null;
  readonly keys: ApiKeys;
  readonly host: ConnectorHost;
  /** Who sees whose presence; the stream projects through it. */
  readonly privacy: PrivacyService;
  /** Null without PRESENCE_SECRET_KEY. */
  readonly viewerTokens: ViewerTokens | null;
  /** The real-time stream (SSE, WebSocket, device connections). */
  readonly stream: StreamService;
  /** The operations figures of the dashboard and /metrics. */
  readonly figures: FigureTracker;
  /**
   * Stops everything, each step bounded (ServiceOptions.shutdown), and says what did not finish.
   * Calling it again returns the same report.
   */
  close(): Promise<ShutdownReport>;
}

/** "set A, B; or C" for the credential sets of a platform none of which is complete. */
function missingCredentials(env: Env, platform: (typeof REAL_PLATFORMS)[number]): string | null {
  const sets = CONNECTOR_MODULES[platform].credentials;
  if (sets.some((set) => set.every((k) => env[k] !== undefined))) return null;
  return `set ${sets.map((set) => set.join(', ')).join('; or ')}`;
}

/**
 * An identity-only platform's health: its connections. Pending until someone has connected an
 * account; ok while one connection is healthy; degraded when all need attention.
 */
async function identityHealth(connections: ConnectionService, platform: string): Promise<ConnectorHealth> {
  const list = await connections.list({ platform });
  const at = (iso: string | null): number => (iso === null ? 0 : Date.parse(iso));
  const lastSuccessAt = list.reduce<number | null>((best, c) => {
    const t = Math.max(at(c.created_at), at(c.refreshed_at));
    return best === null || t > best ? t : best;
  }, null);
  const withError = list
    .filter((c) => c.last_error !== null)
    .sort((a, b) => at(b.last_error_at) - at(a.last_error_at));
  return {
    state: list.length === 0 ? 'pending' : list.some((c) => c.health === 'ok') ? 'ok' : 'degraded',
    lastSuccessAt,
    lastError: withError[0]?.last_error ?? null,
    nextPollAt: null,
  };
}

export function createLogger(env: Env): FastifyBaseLogger {
  return pino({ level: env.LOG_LEVEL, redact: { paths: LOG_REDACT, censor: '[redacted]' } });
}

/**
 * How inbound handlers that map pushes themselves report them: for the first of the accounts
 * someone linked. A store failure rejects, so that the route answers 5xx and the platform retries.
 */
function presencePort(engine: PresenceEngine): PresencePort {
  return {
    push({ accounts, presence, ttlMs }) {
      for (const account of accounts) {
        const ack = engine.reportAccount(account, presence, ttlMs);
        if (ack !== false) return ack.then(() => true);
      }
      return Promise.resolve(false);
    },
  };
}

/**
 * Every platform module's parts for this configuration: the connectors to start and the inbound
 * handlers to mount. Without timers (tests and the demo pass their own connectors) only inbound
 * handlers that need no connector are built.
 */
function platformParts(
  env: Env,
  deps: {
    engine: PresenceEngine;
    connections: ConnectionService | null;
    appGrants: AppGrants;
    clock: Clock;
    log: Log;
    run: boolean;
    coordination: Coordination;
  },
): (ConnectorParts & { platform: (typeof REAL_PLATFORMS)[number] })[] {
  const presence = presencePort(deps.engine);
  return REAL_PLATFORMS.map((platform) => ({
    platform,
    ...CONNECTOR_MODULES[platform].create({
      env,
      clock: deps.clock,
      log: deps.log,
      connections: deps.connections,
      appGrants: deps.appGrants,
      presence,
      run: deps.run,
      coordination: deps.coordination,
    }),
  }));
}

/**
 * The shared change log of several nodes, hooked into the engine and positioned at the log's
 * head; null on one node (no PRESENCE_REDIS_URL). Redis not answering stops the start.
 */
async function openCluster(
  env: Env,
  engine: PresenceEngine,
  parts: {
    readonly clock: Clock;
    readonly log: Log;
  },
): Promise<Cluster | null> {
  // The configuration has PRESENCE_DATABASE_URL with it (config/env.ts): nodes on SQLite files of
  // their own would not share their durable state and versions.
  if (env.PRESENCE_REDIS_URL === undefined) return null;
  const cluster = await Cluster.open({
    url: env.PRESENCE_REDIS_URL,
    prefix: env.PRESENCE_REDIS_PREFIX,
    clock: parts.clock,
    log: parts.log,
    deviceGraceMs: env.PRESENCE_DEVICE_GRACE_MS,
  });
  cluster.attach(engine);
  try {
    await cluster.prepare();
  } catch (error) {
    await cluster.close();
    throw error;
  }
  parts.log.info({ node: cluster.node }, 'several nodes: following the shared change log');
  return cluster;
}

/** A node's coordination and how to let go of it at shutdown. */
export interface OpenedCoordination {
  readonly coordination: Coordination;
  close(): Promise<void>;
}

/**
 * What this node shares with the others (polling shares, rate budgets, delivery memories,
 * locks): the Redis coordination when PRESENCE_REDIS_URL is set, its keys under
 * PRESENCE_REDIS_PREFIX (the change log's), else this process's own. Redis not answering stops
 * the start (`RedisUnavailableError`, fast).
 */
export async function openCoordination(env: Env, clock: Clock): Promise<OpenedCoordination> {
  if (env.PRESENCE_REDIS_URL === undefined)
    return { coordination: inProcessCoordination(clock), close: () => Promise.resolve() };
  const redis = await RedisCoordination.open({
    url: env.PRESENCE_REDIS_URL,
    prefix: env.PRESENCE_REDIS_PREFIX,
    clock,
  });
  return { coordination: redis, close: () => redis.close() };
}

/** What shutdown closes, in this order: what takes work in first, the store last. */
const CLOSE_ORDER = [
  'http',
  'figures',
  'connectors',
  'connections',
  'engine',
  // Other nodes' users, accounts and privacy: no more re-reads once nothing here uses them.
  'follow',
  // After the engine's last commit: the changes it committed land in the shared log first.
  'cluster',
  // After the connectors and connections: their stops release leases and shares through it.
  'coordination',
  'webhooks',
  'checkpointer',
  'store',
] as const;
type Closing = Partial<Record<(typeof CLOSE_ORDER)[number], () => Promise<unknown> | void>>;

/** While shutting down, a locked database makes each statement wait at most this long (not 5 s). */
const SHUTDOWN_BUSY_TIMEOUT_MS = 1000;

/**
 * Builds the service. If any part fails to start (the database cannot be opened or migrated, a
 * connector refuses its configuration), what was already started is closed again, bounded like a
 * shutdown, before the error is thrown, so nothing is left running behind it.
 */
export async function createService(env: Env, options: ServiceOptions = {}): Promise<Service> {
  const logger = options.logger ?? createLogger(env);
  const log: Log = logger === false ? silentLog : logger;
  const closing: Closing = {};
  const shutdown = (): Promise<ShutdownReport> =>
    runShutdown(
      CLOSE_ORDER.flatMap((name) => {
        const run = closing[name];
        return run === undefined ? [] : [{ name, run, always: name === 'store' }];
      }),
      {
        stepTimeoutMs: options.shutdown?.stepTimeoutMs ?? 3000,
        totalTimeoutMs: options.shutdown?.totalTimeoutMs ?? 8000,
        log,
      },
    );
  try {
    return await assemble(env, { ...options, logger }, log, closing, shutdown);
  } catch (error) {
    await shutdown();
    throw error;
  }
}

async function assemble(
  env: Env,
  options: ServiceOptions & { logger: FastifyBaseLogger | false },
  log: Log,
  closing: Closing,
  shutdown: () => Promise<ShutdownReport>,
): Promise<Service> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger;
  // PostgreSQL at PRESENCE_DATABASE_URL, else the SQLite file. On SQLite, `stores` is the one
  // asynchronous face of the file: it orders the transactions of everything that awaits the
  // store (the engine, the services), so every caller uses this instance, never another.
  const backend = await openBackend(env, clock);
  const stores = backend.stores;
  const db = backend.sqlite?.db ?? null;
  closing.store = () => stores.close();
  log.info({ store: backend.where, applied: backend.migration.applied.length }, 'store open');
  // SQLite's WAL is checkpointed by a worker thread; PostgreSQL checkpoints itself.
  const checkpointer = db === null || env.PRESENCE_DB === ':memory:' ? null : startCheckpointer(db, { log });
  if (checkpointer !== null) closing.checkpointer = () => checkpointer.stop();
  const engine = createEngine(env, stores.presence, clock, log);
  // Several nodes: PostgreSQL announces the users, accounts and privacy rows other nodes write
  // (cluster/row-follower.ts). Listening starts before anything is loaded, so that nothing
  // committed after a load goes unannounced; what comes before `start` waits.
  const listener =
    env.PRESENCE_REDIS_URL === undefined || env.PRESENCE_DATABASE_URL === undefined
      ? null
      : await PgListener.open({ connectionString: env.PRESENCE_DATABASE_URL, channel: FOLLOW_CHANNEL, log });
  // Its row follower is made below, once the engine and the connectors' host exist; shutdown closes
  // the listener first, then that follower (none yet if the start failed before it).
  let rows: RowFollower | null = null;
  if (listener !== null)
    closing.follow = async () => {
      await listener.close();
      await rows?.stop();
    };
  // Several nodes share the outbox: each sends only the deliveries it claimed (a killed node's are
  // taken over when their lease ends); one node sends all of them, without claims.
  const claims = env.PRESENCE_REDIS_URL === undefined ? null : deliveryClaimsOf(stores.webhooks);
  // The outbox hooks into the engine's commits before anything loads: a change is written with
  // its event in one transaction, and the presence object is built only when a hook wants it.
  const webhooks = await WebhookService.open({
    store: stores.webhooks,
    engine,
    clock,
    log,
    // Endpoint signing secrets are sealed like OAuth tokens; without the key webhooks are off.
    vault: secretVault(env),
    allowPrivateTargets: env.WEBHOOK_ALLOW_PRIVATE_TARGETS,
    // Several nodes: endpoints another node created, changed or deleted are taken in within 1 s.
    followEndpointsMs: env.PRESENCE_REDIS_URL === undefined ? null : 1000,
    claims: claims === null ? null : { store: claims },
  });
  const privacyStore = stores.privacy;
  const privacy = await new PrivacyService(privacyStore, env.PRESENCE_DEFAULT_VISIBILITY, clock).load();
  const viewerTokens =
    env.PRESENCE_SECRET_KEY === undefined
      ? null
      : new ViewerTokens(
          privacyStore,
          clock,
          (userId) => engine.hasUser(userId),
          env.PRESENCE_SECRET_KEY,
          env.PRESENCE_SECRET_KEY_PREVIOUS,
        );
  // The store drops the user's privacy rows and token epoch in the delete's own transaction;
  // memory follows.
  engine.onUserDelete({
    stage: () => undefined,
    committed: (userId) => {
      privacy.forget(userId);
      viewerTokens?.forget(userId);
    },
  });
  // Several nodes: a user another node deleted. Its privacy records follow that node's
  // announcements (the cascade is announced); a token epoch is not announced, and one held here
  // would let the deleted user's old tokens pass again if the id were created anew.
  engine.onUserForgotten((userId) => viewerTokens?.forget(userId));
  // Several nodes (PRESENCE_REDIS_URL): commits go to the shared change log (hooked in before
  // the first commit), whose head is read before the load so nothing committed after is missed.
  const cluster = await openCluster(env, engine, { clock, log });
  if (cluster !== null) closing.cluster = () => cluster.close();
  closing.engine = () => engine.stop();
  if (options.timers === false) await engine.load();
  else await engine.start();
  const heldRows = await stores.heldDevices.list(CONNECTION_LABEL);
  const stream = createStream(engine, {
    sharedLog: cluster !== null,
    deviceLease: cluster?.deviceLease ?? null,
    clock,
    log,
    settings: {
      deviceGraceMs: env.PRESENCE_DEVICE_GRACE_MS,
      maxConnectionsPerKey: env.PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY,
      workers: env.PRESENCE_STREAM_WORKERS,
      logLevel: env.LOG_LEVEL,
    },
    // The rows' expiry is their last change's; the engine holds the refreshed one.
    heldDevices: () =>
      heldRows.map((h) => ({
        ...h,
        expiresAt: engine.deviceExpiresAt(h.userId, h.deviceId) ?? h.expiresAt,
      })),
    privacy: streamPrivacy({ engine, privacy, now: () => clock.now() }),
  });
  stream.start();
  await stream.workers?.ready();
  cluster?.start(stream.hub);
  closing.webhooks = () => webhooks.stop();
  webhooks.start();
  const figures = new FigureTracker({
    clock,
    userIds: () => engine.userIds(),
    trackedUsers: () => engine.userCount,
    isStale: (userId) => engine.get(userId)?.stale === true,
    changesTotal: () => engine.stats.changesCommitted,
    heartbeatsTotal: () => engine.heartbeats,
    missedDevicePingsTotal: () => stream.stats.missedDevicePings,
    streamConnections: () => stream.connections,
    webhooks: () => webhooks.stats(),
  });
  engine.changes.add(figures.sink);
  closing.figures = () => figures.stop();
  if (options.timers !== false) figures.start();
  const keys = createKeys(stores, clock);
  let coordination = options.coordination;
  if (coordination === undefined) {
    const opened = await openCoordination(env, clock);
    closing.coordination = () => opened.close();
    coordination = opened.coordination;
  }
  const host = new ConnectorHost(engine, log, (type, data) => webhooks.emit(type, data), coordination.shares);
  if (listener !== null && backend.pool !== null) {
    const follower = new RowFollower({
      reads: new PgFollowReads(backend.pool),
      directory: engine,
      privacy,
      log,
      accountsChanged: (platforms) => void host.renewSharesOf(platforms),
    });
    rows = follower;
    listener.start(follower);
  }
  // Events of other layers (connections now; connectors later) go to the webhook outbox. They
  // are emitted inside the transaction that records the change they report.
  const emitEvent = async (
    type: ConnectionEventType,
    data: Readonly<Record<string, unknown>>,
    tx: StoreTx,
  ): Promise<void> => {
    log.info({ type, data }, 'event');
    await webhooks.emitIn(tx, type, data);
  };
  // One token source per app grant, for the connection layer and the connectors alike.
  const appGrants = createAppGrants(env, clock);
  const connections = createConnections(env, stores, engine, {
    clock,
    log,
    appGrants,
    locks: coordination.locks,
    onEvent: (type, data, tx) => emitEvent(type, data as unknown as Record<string, unknown>, tx),
  });
  if (connections !== null) closing.connections = () => connections.stop();
  if (connections !== null && options.timers !== false) connections.start();
  closing.connectors = () => host.stopAll();
  const parts = platformParts(env, {
    engine,
    connections,
    appGrants,
    clock,
    log,
    run: options.timers !== false,
    coordination,
  });
  for (const { connector } of parts) if (connector !== null) await host.start(connector);
  if (options.timers !== false) host.watch();
  for (const { connector, simulated } of options.connectors ?? []) await host.start(connector, { simulated });

  // Inbound-only platforms have no connector object: what their route answered is their health.
  const inbound = new InboundRecord();
  const connectors = (): Promise<ConnectorStatus[]> => {
    const running = host.statuses();
    return Promise.all(
      REAL_PLATFORMS.map(async (platform): Promise<ConnectorStatus> => {
        const found = running.find((s) => s.descriptor.platform === platform);
        if (found !== undefined) return found;
        const module = CONNECTOR_MODULES[platform];
        const descriptor = module.descriptor;
        const role = roleOf(descriptor);
        const secret = module.inboundSecret;
        if (module.pushOnly === true && secret !== undefined && env[secret] !== undefined) {
          return {
            descriptor: {
              ...descriptor,
              mode: 'push',
              notes: `${descriptor.notes} Running on pushes alone: ${secret} is set.`,
            },
            enabled: true,
            simulated: false,
            role,
            health: inbound.health(platform),
          };
        }
        if (role === 'identity' && missingCredentials(env, platform) === null && connections !== null)
          return {
            descriptor,
            enabled: true,
            simulated: false,
            role,
            health: await identityHealth(connections, platform),
          };
        const missing = missingCredentials(env, platform);
        return {
          descriptor,
          enabled: false,
          simulated: false,
          role,
          health: {
            state: 'off',
            lastSuccessAt: null,
            lastError:
              missing !== null
                ? `off: no credentials (${missing})`
                : connections === null && role === 'identity'
                  ? 'off: set PRESENCE_SECRET_KEY (it encrypts the tokens of connected accounts)'
                  : 'off: not started',
            nextPollAt: null,
          },
        };
      }),
    );
  };

  const plugins: ((app: FastifyInstance) => void)[] = [
    (app) =>
      inboundFamilyRoutes(app, {
        secretOf: (platform) =>
          Object.hasOwn(CONNECTOR_MODULES, platform)
            ? CONNECTOR_MODULES[platform as (typeof REAL_PLATFORMS)[number]].inboundSecret
            : undefined,
        record: (platform, status) => inbound.record(platform, status, clock.now()),
      }),
    (app) => signalRoutes(app, { engine, clock, decay: env.PRESENCE_INFERRED_DECAY }),
    ...parts.flatMap(({ inbound: handler }) =>
      handler === null ? [] : [(app: FastifyInstance) => inboundHandlerRoutes(app, handler)],
    ),
    (app) => webhookRoutes(app, webhooks),
    (app) => streamRoutes(app, { stream, keys, viewers: viewerTokens }),
    (app) => dashboardRoutes(app),
    (app) => {
      if (connections !== null) connectionRoutes(app, connections);
      else {
        const off = (): never => {
          throw new AppError(
            'not_found',
            'OAuth connections are off: set PRESENCE_SECRET_KEY (it encrypts stored tokens)',
          );
        };
        for (const url of [
          '/v1/connect/:platform',
          '/v1/connect/:platform/callback',
          '/v1/connections',
          '/v1/connections/:id',
        ]) {
          app.all(url, { schema: { hide: true } }, off);
        }
      }
    },
    ...(options.plugins ?? []),
  ];
  const app = await buildApp({
    engine,
    keys,
    clock,
    connectors,
    ready: () => backend.readiness(),
    ...(cluster === null ? {} : { writeFault: () => cluster.fault() }),
    rateLimitPerMinute: env.PRESENCE_RATE_LIMIT,
    logger,
    accessLog: { all: env.PRESENCE_ACCESS_LOG === 'all', slowMs: env.PRESENCE_SLOW_REQUEST_MS },
    plugins,
    privacy: { service: privacy, tokens: viewerTokens, hasUser: (userId) => engine.hasUser(userId) },
    gauges: {
      webhook_endpoints_enabled: {
        help: 'Webhook endpoints enabled',
        read: () => webhooks.stats().enabled_endpoints,
      },
      webhook_deliveries_queued: {
        help: 'Webhook deliveries waiting to be sent',
        read: () => webhooks.stats().queued,
      },
      webhook_deliveries_in_flight: {
        help: 'Webhook requests in flight',
        read: () => webhooks.stats().in_flight,
      },
      ...stream.metrics(),
      ...figures.gauges(),
      ...(cluster?.metrics() ?? {}),
      ...(rows?.metrics() ?? {}),
    },
    connectionsOf: async (userId) =>
      connections === null ? [] : (await connections.list({ user_id: userId })).map((c) => ({ ...c })),
    users: new UserService({
      engine,
      revokeConnections: async (userId) => {
        await connections?.deleteConnectionsOfUser(userId);
      },
    }),
  });

  closing.http = () => app.close();
  let closed: Promise<ShutdownReport> | null = null;
  return {
    app,
    engine,
    webhooks,
    connections,
    db,
    keys,
    host,
    privacy,
    viewerTokens,
    stream,
    figures,
    close() {
      closed ??= (() => {
        // A database locked by another connection must not hold each statement for 5 s.
        if (db?.open === true) db.pragma(`busy_timeout = ${SHUTDOWN_BUSY_TIMEOUT_MS}`);
        return shutdown();
      })();
      return closed;
    },
  };
}
