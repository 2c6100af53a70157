/**
 * @module http/routes/inbound
 * Every route where platforms push to this service. Each platform's inbound handler (its
 * connector module's; connectors/<platform>/inbound.ts) says its endpoints and how to verify and
 * parse a request; here each endpoint becomes a Fastify route that calls the handler's `verify`,
 * `parse` and `handle` in that order and sends what it answers. An error thrown by any of them
 * is answered by the app's error handler with the contract's body.
 *
 * - Endpoints that take the raw body are registered in one encapsulated scope per platform whose
 *   only content-type parser keeps every type as a Buffer, so nothing is parsed before the
 *   signature is checked and the rest of the API keeps Fastify's own parsers.
 * - `/v1/inbound/{platform}` answers 404 for a platform that is off, naming the variable to set;
 *   its OpenAPI entry describes the family, so the document lists the inbound routes whatever the
 *   configuration.
 */

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type {
  InboundEndpoint,
  InboundHandler,
  InboundReply,
  InboundRequest,
} from '../../../connectors/inbound';
import { slackInbound, type SlackInboundOptions } from '../../../connectors/slack/inbound';
import {
  teamsInbound,
  teamsInboundOptions,
  type TeamsNotificationSink,
} from '../../../connectors/teams/inbound';
import type { SlackEventCallback } from '../../../connectors/slack/types';
import { AppError } from '../../core/errors';
import type { Log } from '../../core/log';

import { ErrorBody } from '../schemas';

export const INBOUND_FALLBACK_SCHEMA = {
  summary: 'Platform pushes (no API key; each verified by its platform)',
  description: [
    'Where platforms deliver events. No API key: each request is verified by its platform’s own scheme.',
    '',
    '| platform | method and path | verified by | needs |',
    '| --- | --- | --- | --- |',
    '| slack | `POST /v1/inbound/slack` | `X-Slack-Signature` (v0, HMAC-SHA256, 5-minute window) | `SLACK_SIGNING_SECRET` |',
    '| teams | `POST /v1/inbound/teams`, `POST /v1/inbound/teams/lifecycle` | `validationToken` handshake, then `clientState` per item | Teams credentials (`MS_TENANT_ID`, `MS_CLIENT_ID`, `MS_CLIENT_SECRET`) |',
    '| zoom | `POST /v1/inbound/zoom` | `x-zm-signature` (v0, HMAC-SHA256) and `endpoint.url_validation` | `ZOOM_WEBHOOK_SECRET_TOKEN` |',
    '| whatsapp | `GET /v1/inbound/whatsapp` (handshake), `POST /v1/inbound/whatsapp` | `hub.verify_token`, then `X-Hub-Signature-256` | `WHATSAPP_APP_SECRET` (and `WHATSAPP_VERIFY_TOKEN` for the handshake) |',
    '',
    'A platform whose variable is not set answers 404 `not_found`, naming the variable to set.',
    'Routes of configured platforms appear in this document under their own paths.',
  ].join('\n'),
  tags: ['inbound'],
  params: z.object({
    platform: z.string().describe('slack, teams, zoom or whatsapp'),
  }),
  response: { 404: ErrorBody },
};

/** Every content type is kept as the bytes received; `request.body` is a Buffer (or undefined). */
function keepRawBody(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
}

function inboundRequest(request: FastifyRequest): InboundRequest {
  return {
    headers: request.headers,
    query: (request.query as Readonly<Record<string, unknown>> | undefined) ?? {},
    raw: Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0),
    body: request.body,
    log: request.log,
    id: request.id,
  };
}

function send(reply: FastifyReply, answer: InboundReply): FastifyReply {
  void reply.code(answer.status);
  if (answer.contentType !== undefined) void reply.type(answer.contentType);
  return reply.send(answer.body);
}

function route(scope: FastifyInstance, endpoint: InboundEndpoint): void {
  const early = endpoint.early;
  scope.withTypeProvider<ZodTypeProvider>().route({
    method: endpoint.method,
    url: endpoint.path,
    schema: {
      summary: endpoint.summary,
      tags: ['inbound'],
      security: [],
      ...(endpoint.querystring === undefined ? {} : { querystring: endpoint.querystring }),
    },
    // Before the body is read: no parser ever sees a handshake that is answered here.
    ...(early === undefined
      ? {}
      : {
          onRequest: (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
            const answer = early((req.query as Readonly<Record<string, unknown>> | undefined) ?? {});
            if (answer === null) done();
            else void send(reply, answer);
          },
        }),
    handler: async (req, reply) => {
      const request = inboundRequest(req);
      endpoint.verify(request);
      const content: unknown = endpoint.parse(request);
      return send(reply, await endpoint.handle(content, request));
    },
  });
}

/** Registers a platform handler's endpoints. */
export function inboundHandlerRoutes(app: FastifyInstance, handler: InboundHandler): void {
  const raw = handler.endpoints.filter((e) => e.body === 'raw');
  if (raw.length > 0)
    void app.register((scope, _opts, done) => {
      // Signed bytes must be kept as sent: parsed by the handler after verification.
      keepRawBody(scope);
      for (const endpoint of raw) route(scope, endpoint);
      done();
    });
  for (const endpoint of handler.endpoints) if (endpoint.body === 'parsed') route(app, endpoint);
}

const INBOUND_PATH = /^\/v1\/inbound\/([a-z]+)(?:[/?]|$)/;

export interface InboundFamilyOptions {
  /** The variable each known platform's inbound route needs, named in its 404 while it is off. */
  readonly secretOf: (platform: string) => string | undefined;
  /** Told of every answer of an inbound route (what push-only platforms' health is made of). */
  readonly record: (platform: string, status: number) => void;
}

/**
 * What every inbound route shares: the answers are recorded per platform, and any
 * `/v1/inbound/{platform}` no handler serves says what is missing.
 */
export function inboundFamilyRoutes(app: FastifyInstance, options: InboundFamilyOptions): void {
  app.addHook('onResponse', (req, reply, done) => {
    const m = INBOUND_PATH.exec(req.url);
    if (m !== null) options.record(m[1]!, reply.statusCode);
    done();
  });
  // GET and POST are what platforms send (WhatsApp's handshake is a GET); documented, so the
  // OpenAPI document lists the inbound routes even when none is configured.
  app.route({
    method: ['GET', 'POST'],
    url: '/v1/inbound/:platform',
    schema: INBOUND_FALLBACK_SCHEMA,
    handler: (req) => {
      const platform = (req.params as { platform: string }).platform;
      const secret = options.secretOf(platform);
      throw new AppError(
        'not_found',
        secret === undefined
          ? `no inbound route for ${platform}`
          : `inbound ${platform} is not configured: set ${secret}`,
      );
    },
  });
}

export type SlackInboundDeps = Omit<SlackInboundOptions, 'port' | 'log'> & {
  /** Takes each verified, new `event_callback` after the 200 has gone out. */
  readonly handler: (envelope: SlackEventCallback) => Promise<void> | void;
  /** Where a failed handler is logged; the app's logger by default. */
  readonly log?: Log;
};

/** `POST /v1/inbound/slack`, its events handed to `handler` (tests and the OpenAPI check mount it alone). */
export function slackInboundRoutes(app: FastifyInstance, deps: SlackInboundDeps): void {
  const { handler, log, ...rest } = deps;
  inboundHandlerRoutes(
    app,
    slackInbound({ ...rest, log: log ?? app.log, port: { push: async (e) => handler(e) } }),
  );
}

/** `POST /v1/inbound/teams` and `…/teams/lifecycle`, for a connector (or a test's sink). */
export function teamsInboundRoutes(
  app: FastifyInstance,
  deps: { readonly connector: TeamsNotificationSink; readonly log?: Log },
): void {
  inboundHandlerRoutes(app, teamsInbound(teamsInboundOptions(deps.connector, deps.log)));
}
