/**
 * @module connectors/slack/inbound
 * `POST /v1/inbound/slack`: where Slack's Events API delivers (https://docs.slack.dev/apis/events-api/).
 *
 * - Every request is verified first with Slack's v0 signature over the exact bytes received
 *   (the route keeps the raw body: its own content-type parser, inside an encapsulated plugin, so
 *   the rest of the API keeps Fastify's JSON parser). Unsigned, tampered or stale requests get the
 *   contract's 401 and change nothing.
 * - `url_verification` is answered with its challenge.
 * - An `event_callback` is acknowledged at once and handled afterwards: Slack wants a 200 within
 *   3 s and retries otherwise (`X-Slack-Retry-Num`), so work never delays the answer. Deliveries
 *   are deduplicated by `event_id`, so a retry of an event already taken is acknowledged only.
 * - No API key: the signature is the authentication.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { systemClock, type Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import { keepRawBody, parseSignedBody, rawBodyOf, SeenDeliveries } from '../inbound';
import { checkSlackSignature, type SlackSignatureCheck } from './client';
import type { SlackEventCallback } from './types';

export const SLACK_INBOUND_PATH = '/v1/inbound/slack';

export interface SlackInboundDeps {
  /** The app's signing secret (`SLACK_SIGNING_SECRET`). */
  readonly signingSecret: string;
  /** Takes each verified, new `event_callback` after the 200 has gone out (e.g. `connector.handleEvent`). */
  readonly handler: (envelope: SlackEventCallback) => Promise<void> | void;
  /** For the five-minute window and the dedupe memory. Defaults to the system clock. */
  readonly clock?: Clock;
  /** How long an event id is remembered. Slack retries up to three times within minutes; default 2 h, a wide margin. */
  readonly dedupeTtlMs?: number;
  /** At most this many ids are remembered (oldest dropped first). Default 50,000. */
  readonly dedupeMax?: number;
}

const REASONS: Record<Exclude<SlackSignatureCheck, 'ok'>, string> = {
  missing: 'missing X-Slack-Signature or X-Slack-Request-Timestamp',
  malformed: 'malformed X-Slack-Signature or X-Slack-Request-Timestamp',
  stale: 'X-Slack-Request-Timestamp is more than 5 minutes from now',
  mismatch: 'X-Slack-Signature does not match the request',
};

function header(request: FastifyRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Registers `POST /v1/inbound/slack` in its own encapsulated scope. */
export function slackInboundRoutes(app: FastifyInstance, deps: SlackInboundDeps): void {
  const clock = deps.clock ?? systemClock;
  const seen = new SeenDeliveries(deps.dedupeTtlMs ?? 2 * 3_600_000, deps.dedupeMax ?? 50_000);

  void app.register((scope, _opts, done) => {
    // Signed bytes must be kept as sent: every content type arrives as a Buffer, parsed in the handler after verification.
    keepRawBody(scope);

    scope.post(
      SLACK_INBOUND_PATH,
      {
        schema: {
          summary: 'Slack Events API deliveries (v0 signature; no API key)',
          tags: ['inbound'],
          security: [],
        },
      },
      async (request, reply) => {
        const bytes = rawBodyOf(request);
        const raw = bytes.toString('utf8');
        const check = checkSlackSignature({
          signingSecret: deps.signingSecret,
          rawBody: raw,
          timestamp: header(request, 'x-slack-request-timestamp'),
          signature: header(request, 'x-slack-signature'),
          nowMs: clock.now(),
        });
        if (check !== 'ok') throw new AppError('unauthorized', `Slack request refused: ${REASONS[check]}`);

        // Interactivity and slash commands post forms; the connector takes none of them, but a
        // signed one is acknowledged rather than refused. Any other type is a 415.
        const body = parseSignedBody(request, bytes, { forms: true }).value;
        if (!isObject(body) || typeof body.type !== 'string') return reply.code(200).send({ ok: true });

        if (body.type === 'url_verification') {
          if (typeof body.challenge !== 'string')
            throw new AppError('invalid_request', 'url_verification without a challenge');
          return reply.code(200).send({ challenge: body.challenge });
        }

        if (body.type === 'event_callback' && isObject(body.event) && typeof body.event.type === 'string') {
          const envelope = body as unknown as SlackEventCallback;
          const retry = header(request, 'x-slack-retry-num');
          const id = typeof envelope.event_id === 'string' ? envelope.event_id : null;
          if (id !== null && !seen.firstTime(id, clock.now())) {
            request.log.debug({ eventId: id, retry }, 'duplicate slack delivery acknowledged');
            return reply.code(200).send({ ok: true, duplicate: true });
          }
          // After the answer: Slack counts a delivery as failed if the 200 takes over 3 s.
          setImmediate(() => {
            Promise.resolve()
              .then(() => deps.handler(envelope))
              .catch((err: unknown) =>
                app.log.error({ err, eventId: id, type: envelope.event.type }, 'slack event handler failed'),
              );
          });
          return reply.code(200).send({ ok: true });
        }

        if (body.type === 'app_rate_limited')
          request.log.warn(
            { team: body.team_id, minuteRateLimited: body.minute_rate_limited },
            'slack says the app exceeded 30,000 events per hour; deliveries are paused',
          );
        return reply.code(200).send({ ok: true });
      },
    );
    done();
  });
}
