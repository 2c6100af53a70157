/**
 * @module http/app
 * `buildApp(deps)`: the Fastify application. Zod schemas validate every request and describe every
 * response; the OpenAPI document at /docs is generated from them.
 */

import { randomUUID } from 'node:crypto';

import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyInstance,
  type RouteOptions,
} from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler } from 'fastify-type-provider-zod';
import type { Bindings, ChildLoggerOptions } from 'pino';
import { z } from 'zod';

import { RateLimiter, registerAuth } from './auth';
import type { AppDeps } from './deps';
import { clientErrorHandler, errorHandler, notFoundHandler } from './errors';
import { badQueryError, badStringError, checkJsonBytes, findBadString, MAX_PARAM_LENGTH } from './input';
import { registerMetrics } from './metrics';
import { badQueryEncoding, parseQuery } from './query';
import { heartbeatRoutes } from './routes/heartbeats';
import { keyRoutes } from './routes/keys';
import { opsRoutes } from './routes/ops';
import { presenceRoutes } from './routes/presence';
import { privacyRoutes } from './routes/privacy';
import { userRoutes } from './routes/users';

declare module 'fastify' {
  interface FastifyInstance {
    /** Every route registered on the app, in order (HEAD routes Fastify adds included). */
    readonly registeredRoutes: readonly RouteOptions[];
  }
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/;

/** Paths and keys pino must never print, whatever a log call passes it. */
export const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-slack-signature"]',
  'req.headers["x-zm-signature"]',
  'req.headers["x-hub-signature-256"]',
  '*.secret',
  '*.token',
  '*.access_token',
  '*.refresh_token',
  '*.key',
];

/** The groups of the OpenAPI document, in the order a reader meets them. */
const DOC_TAGS = [
  { name: 'presence', description: 'Presence objects, availability, overrides and history' },
  { name: 'devices', description: 'Device heartbeats and activity signals' },
  { name: 'users', description: 'Users and their linked platform accounts' },
  { name: 'connections', description: 'OAuth connections to platforms' },
  { name: 'connectors', description: 'The platform connectors and their health' },
  { name: 'webhooks', description: 'Change webhook endpoints and their delivery log' },
  { name: 'privacy', description: 'Viewer tokens, and who sees whose presence' },
  { name: 'keys', description: 'API keys' },
  {
    name: 'inbound',
    description:
      "Where platforms push to this service, each verified by the platform's own scheme; no API key",
  },
  { name: 'ops', description: 'Liveness, readiness and metrics; no API key' },
];

/**
 * Each route's OpenAPI entry from its zod schemas. Whether it needs a key is read from the same
 * `config.scope` the auth hook enforces (http/auth.ts), so the document cannot claim a key for a
 * public route (health, metrics, inbound, the OAuth callback) or forget one.
 */
const documented: typeof jsonSchemaTransform = (input) => {
  const out = jsonSchemaTransform(input);
  const scope = input.route.config?.scope;
  if (scope === undefined) return { ...out, schema: { ...out.schema, security: [] } };
  const given = (out.schema as { description?: unknown }).description;
  const viewer = input.route.config?.viewer;
  const needs =
    `Needs an API key with the \`${scope}\` scope.` +
    (viewer === 'read'
      ? ' A viewer token is accepted too: the answer is what that user may see (hidden users are unknown).'
      : viewer === 'self'
        ? " A viewer token is accepted too, for its own user's devices only."
        : '');
  const description = typeof given === 'string' && given !== '' ? `${given}\n\n${needs}` : needs;
  return { ...out, schema: { ...out.schema, description } };
};

const DEFAULT_ACCESS_LOG = { all: false, slowMs: 500 } as const;

/**
 * The access log. A JSON line per request cost a busy server a third of its time (pino's
 * serialization and the write of each line), so by default only the requests an operator acts on
 * get one: failures (5xx at error level, 4xx at info) and slow requests (warn, `slow: true`), each
 * with its request id. The rest are counted by /metrics (`http_requests_total`, latency histogram);
 * `all` brings back a line for every request.
 */
function registerAccessLog(app: FastifyInstance, options: { all: boolean; slowMs: number }): void {
  const { all, slowMs } = options;
  app.addHook('onResponse', (request, reply, done) => {
    const status = reply.statusCode;
    const elapsed = reply.elapsedTime;
    const slow = elapsed >= slowMs;
    if (all || slow || status >= 400) {
      const line = {
        method: request.method,
        route: request.routeOptions.url,
        status,
        ms: Math.round(elapsed * 10) / 10,
        ...(slow ? { slow: true } : {}),
      };
      if (status >= 500) request.log.error(line, 'request completed');
      else if (slow) request.log.warn(line, 'request completed');
      else request.log.info(line, 'request completed');
    }
    done();
  });
}

/**
 * Each request's logger (the parent's child with its request id), made only when something logs
 * through it. Making a pino child costs ~4 µs (its bindings serialized, redaction set up), and with
 * the access log off the hot path most requests never log at all. One object per request, its
 * methods on the prototype: a request that logs nothing allocates nothing else for it.
 */
class LazyChildLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | null = null;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private real(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.real().level = level;
  }

  fatal(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.fatal, l, args);
  }

  error(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.error, l, args);
  }

  warn(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.warn, l, args);
  }

  info(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.info, l, args);
  }

  debug(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.debug, l, args);
  }

  trace(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.trace, l, args);
  }

  silent(...args: unknown[]): void {
    const l = this.real();
    Reflect.apply(l.silent, l, args);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.real().child(bindings, options);
  }
}

export function lazyChildLogger(
  parent: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return new LazyChildLogger(parent, bindings, options);
}

function compiled(schema: z.ZodType): z.ZodType {
  // A plugin's route may still carry a plain JSON schema; that one is left as it is.
  return schema instanceof z.ZodType ? z.compile(schema) : schema;
}

/** What a route without a query schema of its own takes: nothing (an unknown parameter is a 400). */
const NO_QUERY = z.strictObject({});

/**
 * Platform inbound routes read the query the platform sends (Graph's validationToken, Meta's
 * hub.*) and may be sent more than they read; the API docs are static pages.
 */
const OPEN_QUERY = /^\/(?:v1\/inbound\/|docs(?:\/|$))/;

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    ...(deps.logger === false ? { logger: false } : { loggerInstance: deps.logger }),
    bodyLimit: 1024 * 1024,
    // A caller's own request id is kept when it is sane; otherwise a fresh one.
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
    // Fastify's two lines per request replaced by registerAccessLog's one, for the requests that matter.
    logController: new LogController({ disableRequestLogging: true }),
    childLoggerFactory: lazyChildLogger,
    routerOptions: {
      ignoreTrailingSlash: true,
      maxParamLength: MAX_PARAM_LENGTH,
      querystringParser: parseQuery,
    },
    // The router's own refusals (a path that is not percent-encoded UTF-8, an over-long segment),
    // and what Node's parser refuses before Fastify (431, a broken Content-Length, not HTTP), answer
    // with the contract's body like every other error.
    frameworkErrors: errorHandler,
    clientErrorHandler,
  });
  // zod's runtime parser tracks every parse in WeakMaps (to support cyclic input), which under load
  // costs more in garbage collection than the validation itself (13 % of a busy server's time with
  // the batch route). A compiled schema checks on a generated fast path and falls back to the
  // runtime parser only to describe a failure, so the issues and messages are the same.
  //
  // Before any schema, every string of the part (an object key included) must be valid Unicode
  // without NUL: checked here once rather than per field, so that no field can forget it.
  app.setValidatorCompiler<z.ZodType>((route) => {
    const validate = validatorCompiler({ ...route, schema: compiled(route.schema) });
    const part = route.httpPart ?? 'request';
    return (data: unknown) => {
      if (part === 'querystring' && badQueryEncoding(data) !== undefined) return { error: badQueryError() };
      const bad = findBadString(data);
      return bad === null ? validate(data) : { error: badStringError(part, bad) };
    };
  });
  app.setSerializerCompiler<z.ZodType>((route) =>
    serializerCompiler({ ...route, schema: compiled(route.schema) }),
  );
  // Every route, as registered (tests go through all of them: auth, viewer tokens).
  const routes: RouteOptions[] = [];
  app.decorate('registeredRoutes', routes);
  app.addHook('onRoute', (route) => {
    routes.push(route);
  });
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);

  // Fastify's JSON parser (with its guards against `__proto__` and `constructor` keys), behind a
  // check of the declared charset and of the bytes: it would otherwise decode any bytes as UTF-8,
  // quietly turning what is not UTF-8 into U+FFFD.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (req, body: Buffer, done) => {
    const refused = checkJsonBytes(req.headers['content-type'], body);
    if (refused !== null) {
      done(refused, undefined);
      return;
    }
    void parseJson(req, body.toString('utf8'), done);
  });

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: 'presence-aggregator',
        version: '1',
        description:
          'Whether a person is reachable right now, and where. Errors: `{ error: { code, message, request_id, details } }`.',
      },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer' } } },
      security: [{ apiKey: [] }],
      tags: DOC_TAGS,
    },
    transform: documented,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  app.addHook('onRoute', (route) => {
    if (OPEN_QUERY.test(route.url) || route.schema?.querystring !== undefined) return;
    route.schema = { ...route.schema, querystring: NO_QUERY };
  });

  registerAuth(app, deps.keys, new RateLimiter(deps.rateLimitPerMinute, deps.clock), deps.privacy?.tokens);
  const registry = registerMetrics(app, deps.engine, { gauges: deps.gauges });
  app.addHook('onSend', (request, reply, _payload, done) => {
    void reply.header('x-request-id', request.id);
    done();
  });
  if (deps.logger !== false) registerAccessLog(app, deps.accessLog ?? DEFAULT_ACCESS_LOG);

  presenceRoutes(app, deps);
  heartbeatRoutes(app, deps);
  userRoutes(app, deps);
  keyRoutes(app, deps);
  if (deps.privacy !== undefined) privacyRoutes(app, deps.privacy);
  opsRoutes(app, deps, registry);
  for (const plugin of deps.plugins ?? []) plugin(app);
  return app;
}
