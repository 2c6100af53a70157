/**
 * @module connectors/zoom/inbound
 * `POST /v1/inbound/zoom`: Zoom webhooks. Every request, the URL validation included, must carry
 * `x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")>` with a fresh
 * timestamp. (Answering an unsigned `endpoint.url_validation` would hand anyone an HMAC of text
 * of their choosing, which is exactly a valid signature for a forged event.)
 * Docs: https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events
 */

import { createHash } from 'node:crypto';

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

import type { PresenceEngine } from '../../src/aggregator/engine';
import type { Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import { hmacHex, safeEqual } from '../../src/core/hmac';
import type { Log } from '../../src/core/log';
import { keepRawBody, parseSignedBody, rawBodyOf, SeenDeliveries } from '../inbound';
import { toZoomEventPresence } from './map';
import type { ZoomPresenceEventObject } from './types';

export interface ZoomInboundDeps {
  readonly secretToken: string;
  readonly engine: PresenceEngine;
  readonly clock: Clock;
  readonly log: Log;
  /** How long a report counts: until the next reconcile poll and then some. */
  readonly ttlMs: number;
  /** Zoom does not document a window; five minutes, as Slack's, bounds replays. */
  readonly toleranceMs?: number;
  /**
   * How long a delivery is remembered. Zoom retries a failed delivery after 5, 20 and 60 minutes
   * with a new timestamp and the same body; default 2 h covers all three.
   */
  readonly dedupeTtlMs?: number;
  /** At most this many deliveries are remembered (oldest dropped first). Default 50,000. */
  readonly dedupeMax?: number;
}

const Envelope = z.object({
  event: z.string().min(1).max(128),
  event_ts: z.number().optional(),
  payload: z.record(z.string(), z.unknown()),
});
const Validation = z.object({ plainToken: z.string().min(1).max(256) });
/**
 * Every field the mapping reads, with its documented type (the event schema in
 * https://developers.zoom.us/docs/api/users/events/ , the same shape as Zoom's own SDK type
 * https://zoom.github.io/rivet-javascript/types/Users.UserPresenceStatusUpdatedEvent.html ,
 * where `app` is `{ type, presence_status }`). A wrong type anywhere is a 400 with nothing
 * applied, rather than half an event or a TypeError.
 */
const PresenceObject = z.object({
  id: z.string().min(1).max(256),
  presence_status: z.string().min(1).max(64),
  email: z.string().max(320).optional(),
  date_time: z.string().max(64).optional(),
  'date-time': z.string().max(64).optional(),
  app: z.object({ type: z.string().min(1).max(32), presence_status: z.string().min(1).max(64) }).optional(),
});

/** Zoom documents seconds; a millisecond value is accepted too rather than refused as stale. */
const toMs = (ts: number): number => (ts < 1e12 ? ts * 1000 : ts);

export function zoomInboundRoutes(app: FastifyInstance, deps: ZoomInboundDeps): void {
  const tolerance = deps.toleranceMs ?? 5 * 60_000;
  const seen = new SeenDeliveries(deps.dedupeTtlMs ?? 2 * 3_600_000, deps.dedupeMax ?? 50_000);
  const unknownValues = new Set<string>();
  void app.register((scope, _opts, done) => {
    keepRawBody(scope);
    scope.post(
      '/v1/inbound/zoom',
      {
        schema: {
          summary: 'Zoom webhooks: url_validation and user.presence_status_updated (signed)',
          tags: ['inbound'],
          security: [],
        },
      },
      async (req) => {
        const ts = req.headers['x-zm-request-timestamp'];
        const sig = req.headers['x-zm-signature'];
        const raw = rawBodyOf(req);
        if (typeof ts !== 'string' || !/^\d{1,16}$/.test(ts) || typeof sig !== 'string') {
          throw new AppError('unauthorized', 'missing x-zm-request-timestamp or x-zm-signature');
        }
        if (Math.abs(deps.clock.now() - toMs(Number(ts))) > tolerance) {
          throw new AppError('unauthorized', 'x-zm-request-timestamp is outside the accepted window');
        }
        const expected = `v0=${hmacHex(deps.secretToken, Buffer.concat([Buffer.from(`v0:${ts}:`), raw]))}`;
        if (!safeEqual(sig, expected)) throw new AppError('unauthorized', 'invalid x-zm-signature');

        const body = parseSignedBody(req, raw);
        const envelope = Envelope.safeParse(body.value);
        if (!envelope.success) throw new AppError('invalid_request', 'not a Zoom webhook envelope');
        const { event, payload } = envelope.data;
        if (event === 'endpoint.url_validation') {
          const v = Validation.safeParse(payload);
          if (!v.success) throw new AppError('invalid_request', 'payload.plainToken is missing');
          return {
            plainToken: v.data.plainToken,
            encryptedToken: hmacHex(deps.secretToken, v.data.plainToken),
          };
        }
        if (event !== 'user.presence_status_updated') return { received: true, applied: false };
        const object = PresenceObject.safeParse(payload.object);
        if (!object.success)
          throw new AppError(
            'invalid_request',
            'payload.object needs id and presence_status (strings), and app, when given, { type, presence_status }',
          );
        // A retry, or a replay of a signed request, carries the very bytes already taken: the
        // body's hash names the delivery (the signature covers it; x-zm-request-id does not).
        const deliveryId = createHash('sha256').update(raw).digest('base64url');
        if (!seen.firstTime(deliveryId, deps.clock.now()))
          return { received: true, applied: false, duplicate: true };
        const o = object.data as ZoomPresenceEventObject;
        const mapped = toZoomEventPresence(o, deps.clock.now());
        if (mapped === null) {
          // Never guessed: logged once per value, the previous state stands.
          if (!unknownValues.has(o.presence_status))
            deps.log.warn({ value: o.presence_status }, 'unknown Zoom presence value ignored');
          unknownValues.add(o.presence_status);
          return { received: true, applied: false };
        }
        try {
          // Accounts are linked by Zoom user id; an email link is accepted as well.
          const ack =
            deps.engine.reportAccount(
              { platform: 'zoom', workspaceId: '', externalId: o.id },
              mapped,
              deps.ttlMs,
            ) ||
            (o.email === undefined
              ? false
              : deps.engine.reportAccount(
                  { platform: 'zoom', workspaceId: '', externalId: o.email },
                  mapped,
                  deps.ttlMs,
                ));
          if (ack === false) return { received: true, applied: false };
          await ack;
        } catch (err) {
          // Not taken after all: Zoom's retry of it must be applied.
          seen.forget(deliveryId);
          throw err;
        }
        return { received: true, applied: true };
      },
    );
    done();
  });
}
