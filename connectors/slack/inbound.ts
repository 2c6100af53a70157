/**
 * @module connectors/slack/inbound
 * `POST /v1/inbound/slack`: where Slack's Events API delivers (https://docs.slack.dev/apis/events-api/).
 *
 * - Every request is verified first with Slack's v0 signature over the exact bytes received (the
 *   endpoint takes the raw body). Unsigned, tampered or stale requests get the contract's 401 and
 *   change nothing.
 * - `url_verification` is answered with its challenge.
 * - An `event_callback` is acknowledged at once and pushed afterwards: Slack wants a 200 within
 *   3 s and retries otherwise (`X-Slack-Retry-Num`), so work never delays the answer. Deliveries
 *   are deduplicated by `event_id`, so a retry of an event already taken is acknowledged only.
 * - No API key: the signature is the authentication.
 */

import { systemClock, type Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import type { Log } from '../../src/core/log';
import type { DeliveryDedupFactory } from '../../src/core/ports';
import {
  headerOf,
  parseSignedBody,
  deliveryMemory,
  type InboundEndpoint,
  type InboundHandler,
  type PushPort,
} from '../inbound';
import { checkSlackSignature, type SlackSignatureCheck } from './client';
import type { SlackEventCallback } from './types';

export const SLACK_INBOUND_PATH = '/v1/inbound/slack';

export interface SlackInboundOptions {
  /** The app's signing secret (`SLACK_SIGNING_SECRET`). */
  readonly signingSecret: string;
  /** Takes each verified, new `event_callback` after the 200 has gone out (the Slack connector). */
  readonly port: PushPort<SlackEventCallback>;
  /** Where a failed push is logged. */
  readonly log: Log;
  /** For the five-minute window and the dedupe memory. Defaults to the system clock. */
  readonly clock?: Clock;
  /** How long an event id is remembered. Slack retries up to three times within minutes; default 2 h, a wide margin. */
  readonly dedupeTtlMs?: number;
  /** At most this many ids are remembered (oldest dropped first). Default 50,000. */
  readonly dedupeMax?: number;
  /** The delivery memory shared by the nodes (the coordination's); default: this process's. */
  readonly deliveries?: DeliveryDedupFactory;
}

const REASONS: Record<Exclude<SlackSignatureCheck, 'ok'>, string> = {
  missing: 'missing X-Slack-Signature or X-Slack-Request-Timestamp',
  malformed: 'malformed X-Slack-Signature or X-Slack-Request-Timestamp',
  stale: 'X-Slack-Request-Timestamp is more than 5 minutes from now',
  mismatch: 'X-Slack-Signature does not match the request',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** What a verified delivery is. */
export type SlackDelivery =
  | { readonly kind: 'url_verification'; readonly challenge: string }
  | { readonly kind: 'event'; readonly envelope: SlackEventCallback }
  | { readonly kind: 'rate_limited'; readonly team: unknown; readonly minuteRateLimited: unknown }
  /** Signed, but nothing the connector takes (forms from interactivity, other types): acknowledged. */
  | { readonly kind: 'other' };

/** Classifies a verified body. Throws `invalid_request` for a url_verification without a challenge. */
export function slackDelivery(body: unknown): SlackDelivery {
  if (!isObject(body) || typeof body.type !== 'string') return { kind: 'other' };
  if (body.type === 'url_verification') {
    if (typeof body.challenge !== 'string')
      throw new AppError('invalid_request', 'url_verification without a challenge');
    return { kind: 'url_verification', challenge: body.challenge };
  }
  if (body.type === 'event_callback' && isObject(body.event) && typeof body.event.type === 'string')
    return { kind: 'event', envelope: body as unknown as SlackEventCallback };
  if (body.type === 'app_rate_limited')
    return { kind: 'rate_limited', team: body.team_id, minuteRateLimited: body.minute_rate_limited };
  return { kind: 'other' };
}

export function slackInbound(options: SlackInboundOptions): InboundHandler {
  const clock = options.clock ?? systemClock;
  const seen = deliveryMemory(options.deliveries, clock, 'slack:events', {
    ttlMs: options.dedupeTtlMs ?? 2 * 3_600_000,
    max: options.dedupeMax ?? 50_000,
  });
  const events: InboundEndpoint<SlackDelivery> = {
    method: 'POST',
    path: SLACK_INBOUND_PATH,
    summary: 'Slack Events API deliveries (v0 signature; no API key)',
    body: 'raw',
    verify(request) {
      const check = checkSlackSignature({
        signingSecret: options.signingSecret,
        rawBody: request.raw.toString('utf8'),
        timestamp: headerOf(request, 'x-slack-request-timestamp'),
        signature: headerOf(request, 'x-slack-signature'),
        nowMs: clock.now(),
      });
      if (check !== 'ok') throw new AppError('unauthorized', `Slack request refused: ${REASONS[check]}`);
    },
    // Interactivity and slash commands post forms; the connector takes none of them, but a
    // signed one is acknowledged rather than refused. Any other type is a 415.
    parse: (request) => slackDelivery(parseSignedBody(request, { forms: true }).value),
    async handle(delivery, request) {
      switch (delivery.kind) {
        case 'url_verification':
          return { status: 200, body: { challenge: delivery.challenge } };
        case 'event': {
          const { envelope } = delivery;
          const retry = headerOf(request, 'x-slack-retry-num');
          const id = typeof envelope.event_id === 'string' ? envelope.event_id : null;
          if (id !== null && !(await seen.firstTime(id))) {
            request.log.debug({ eventId: id, retry }, 'duplicate slack delivery acknowledged');
            return { status: 200, body: { ok: true, duplicate: true } };
          }
          // After the answer: Slack counts a delivery as failed if the 200 takes over 3 s.
          setImmediate(() => {
            Promise.resolve()
              .then(() => options.port.push(envelope))
              .catch((err: unknown) =>
                options.log.error(
                  { err, eventId: id, type: envelope.event.type },
                  'slack event handler failed',
                ),
              );
          });
          return { status: 200, body: { ok: true } };
        }
        case 'rate_limited':
          request.log.warn(
            { team: delivery.team, minuteRateLimited: delivery.minuteRateLimited },
            'slack says the app exceeded 30,000 events per hour; deliveries are paused',
          );
          return { status: 200, body: { ok: true } };
        case 'other':
          return { status: 200, body: { ok: true } };
      }
    },
  };
  return { platform: 'slack', endpoints: [events] };
}
