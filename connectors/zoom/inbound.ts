/**
 * @module connectors/zoom/inbound
 * `POST /v1/inbound/zoom`: Zoom webhooks. Every request, the URL validation included, must carry
 * `x-zm-signature: v0=<hex HMAC-SHA256(secret, "v0:{timestamp}:{raw body}")>` with a fresh
 * timestamp. (Answering an unsigned `endpoint.url_validation` would hand anyone an HMAC of text
 * of their choosing, which is exactly a valid signature for a forged event.)
 * Docs: https://developers.zoom.us/docs/api/webhooks/#verify-webhook-events
 */

import type { FastifyInstance } from 'fastify';
import { z } from 'zod';

import type { PresenceEngine } from '../../src/aggregator/engine';
import type { Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import { hmacHex, safeEqual } from '../../src/core/hmac';
import type { Log } from '../../src/core/log';
import { keepRawJson } from '../../src/http/raw-body';
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
}

const Envelope = z.object({
  event: z.string(),
  event_ts: z.number().optional(),
  payload: z.record(z.string(), z.unknown()),
});
const Validation = z.object({ plainToken: z.string().min(1).max(256) });
const PresenceObject = z
  .object({ id: z.string().min(1), presence_status: z.string(), email: z.string().optional() })
  .passthrough();

/** Zoom documents seconds; a millisecond value is accepted too rather than refused as stale. */
const toMs = (ts: number): number => (ts < 1e12 ? ts * 1000 : ts);

export function zoomInboundRoutes(app: FastifyInstance, deps: ZoomInboundDeps): void {
  const tolerance = deps.toleranceMs ?? 5 * 60_000;
  const unknownValues = new Set<string>();
  void app.register((scope, _opts, done) => {
    keepRawJson(scope);
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
        const raw = req.rawBody ?? Buffer.alloc(0);
        if (typeof ts !== 'string' || !/^\d{1,16}$/.test(ts) || typeof sig !== 'string') {
          throw new AppError('unauthorized', 'missing x-zm-request-timestamp or x-zm-signature');
        }
        if (Math.abs(deps.clock.now() - toMs(Number(ts))) > tolerance) {
          throw new AppError('unauthorized', 'x-zm-request-timestamp is outside the accepted window');
        }
        const expected = `v0=${hmacHex(deps.secretToken, Buffer.concat([Buffer.from(`v0:${ts}:`), raw]))}`;
        if (!safeEqual(sig, expected)) throw new AppError('unauthorized', 'invalid x-zm-signature');

        const envelope = Envelope.safeParse(req.body);
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
          throw new AppError('invalid_request', 'payload.object needs id and presence_status');
        const o = object.data as ZoomPresenceEventObject;
        const mapped = toZoomEventPresence(o, deps.clock.now());
        if (mapped === null) {
          // Never guessed: logged once per value, the previous state stands.
          if (!unknownValues.has(o.presence_status))
            deps.log.warn({ value: o.presence_status }, 'unknown Zoom presence value ignored');
          unknownValues.add(o.presence_status);
          return { received: true, applied: false };
        }
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
        return { received: true, applied: true };
      },
    );
    done();
  });
}
