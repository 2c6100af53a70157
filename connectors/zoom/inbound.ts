/**
 * @module connectors/zoom/inbound
 * `POST /v1/inbound/zoom`: Zoom webhooks. Every request, the URL validation included, must carry
 * `x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")>` with a fresh
 * timestamp. (Answering an unsigned `endpoint.url_validation` would hand anyone an HMAC of text
 * of their choosing, which is exactly a valid signature for a forged event.)
 * Docs: https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events
 */

import { createHash } from 'node:crypto';

import { z } from 'zod';

import type { Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import { hmacHex, safeEqual } from '../../src/core/hmac';
import type { Log } from '../../src/core/log';
import type { DeliveryDedupFactory } from '../../src/core/ports';
import {
  parseSignedBody,
  deliveryMemory,
  forgetQuietly,
  type InboundEndpoint,
  type InboundHandler,
  type PresencePort,
} from '../inbound';
import { toZoomEventPresence } from './map';
import type { ZoomPresenceEventObject } from './types';

export const ZOOM_INBOUND_PATH = '/v1/inbound/zoom';

export interface ZoomInboundOptions {
  readonly secretToken: string;
  /** Where the presence events go. */
  readonly port: PresencePort;
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
  /** The delivery memory shared by the nodes (the coordination's); default: this process's. */
  readonly deliveries?: DeliveryDedupFactory;
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

/** What a verified Zoom delivery is. */
export type ZoomDelivery =
  | { readonly kind: 'url_validation'; readonly plainToken: string }
  | { readonly kind: 'presence'; readonly object: ZoomPresenceEventObject; readonly deliveryId: string }
  /** Any other event: acknowledged, nothing applied. */
  | { readonly kind: 'other' };

export function zoomInbound(options: ZoomInboundOptions): InboundHandler {
  const tolerance = options.toleranceMs ?? 5 * 60_000;
  const seen = deliveryMemory(options.deliveries, options.clock, 'zoom:webhooks', {
    ttlMs: options.dedupeTtlMs ?? 2 * 3_600_000,
    max: options.dedupeMax ?? 50_000,
  });
  const unknownValues = new Set<string>();
  const webhooks: InboundEndpoint<ZoomDelivery> = {
    method: 'POST',
    path: ZOOM_INBOUND_PATH,
    summary: 'Zoom webhooks: url_validation and user.presence_status_updated (signed)',
    body: 'raw',
    verify(request) {
      const ts = request.headers['x-zm-request-timestamp'];
      const sig = request.headers['x-zm-signature'];
      if (typeof ts !== 'string' || !/^\d{1,16}$/.test(ts) || typeof sig !== 'string') {
        throw new AppError('unauthorized', 'missing x-zm-request-timestamp or x-zm-signature');
      }
      if (Math.abs(options.clock.now() - toMs(Number(ts))) > tolerance) {
        throw new AppError('unauthorized', 'x-zm-request-timestamp is outside the accepted window');
      }
      const expected = `v0=${hmacHex(options.secretToken, Buffer.concat([Buffer.from(`v0:${ts}:`), request.raw]))}`;
      if (!safeEqual(sig, expected)) throw new AppError('unauthorized', 'invalid x-zm-signature');
    },
    parse(request) {
      const envelope = Envelope.safeParse(parseSignedBody(request).value);
      if (!envelope.success) throw new AppError('invalid_request', 'not a Zoom webhook envelope');
      const { event, payload } = envelope.data;
      if (event === 'endpoint.url_validation') {
        const v = Validation.safeParse(payload);
        if (!v.success) throw new AppError('invalid_request', 'payload.plainToken is missing');
        return { kind: 'url_validation', plainToken: v.data.plainToken };
      }
      if (event !== 'user.presence_status_updated') return { kind: 'other' };
      const object = PresenceObject.safeParse(payload.object);
      if (!object.success)
        throw new AppError(
          'invalid_request',
          'payload.object needs id and presence_status (strings), and app, when given, { type, presence_status }',
        );
      // A retry, or a replay of a signed request, carries the very bytes already taken: the
      // body's hash names the delivery (the signature covers it; x-zm-request-id does not).
      const deliveryId = createHash('sha256').update(request.raw).digest('base64url');
      return { kind: 'presence', object: object.data, deliveryId };
    },
    async handle(delivery) {
      if (delivery.kind === 'url_validation') {
        const { plainToken } = delivery;
        return {
          status: 200,
          body: { plainToken, encryptedToken: hmacHex(options.secretToken, plainToken) },
        };
      }
      if (delivery.kind === 'other') return { status: 200, body: { received: true, applied: false } };
      const { object: o, deliveryId } = delivery;
      if (!(await seen.firstTime(deliveryId)))
        return { status: 200, body: { received: true, applied: false, duplicate: true } };
      const mapped = toZoomEventPresence(o, options.clock.now());
      if (mapped === null) {
        // Never guessed: logged once per value, the previous state stands.
        if (!unknownValues.has(o.presence_status))
          options.log.warn({ value: o.presence_status }, 'unknown Zoom presence value ignored');
        unknownValues.add(o.presence_status);
        return { status: 200, body: { received: true, applied: false } };
      }
      try {
        // Accounts are linked by Zoom user id; an email link is accepted as well.
        const ids = o.email === undefined ? [o.id] : [o.id, o.email];
        const accounts = ids.map((externalId) => ({
          platform: 'zoom' as const,
          workspaceId: '',
          externalId,
        }));
        if (!(await options.port.push({ accounts, presence: mapped, ttlMs: options.ttlMs })))
          return { status: 200, body: { received: true, applied: false } };
      } catch (err) {
        // Not taken after all: Zoom's retry of it must be applied.
        await forgetQuietly(seen, deliveryId);
        throw err;
      }
      return { status: 200, body: { received: true, applied: true } };
    },
  };
  return { platform: 'zoom', endpoints: [webhooks] };
}
