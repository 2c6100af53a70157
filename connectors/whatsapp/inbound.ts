/**
 * @module connectors/whatsapp/inbound
 * `GET/POST /v1/inbound/whatsapp`: the Cloud API webhook. GET answers Meta's verification
 * handshake; POST is checked against `X-Hub-Signature-256` over the raw body, then every message
 * and read receipt from a linked `wa_id` becomes inferred presence. Numbers nobody linked are
 * ignored without error (Meta would otherwise retry them).
 * Docs: https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { PresenceEngine } from '../../src/aggregator/engine';
import { AppError } from '../../src/core/errors';
import { hmacHex, safeEqual } from '../../src/core/hmac';
import type { Log } from '../../src/core/log';
import type { DecayStep } from '../../src/core/presence';
import { keepRawJson } from '../../src/http/raw-body';
import { toWhatsAppSightings } from './map';
import type { WhatsAppWebhook } from './types';

export interface WhatsAppInboundDeps {
  readonly appSecret: string;
  /** The token Meta echoes in the GET handshake; without it the handshake is refused. */
  readonly verifyToken?: string;
  readonly engine: PresenceEngine;
  readonly decay: readonly DecayStep[];
  readonly log: Log;
}

/** Only what the mapping reads is checked; Meta adds fields freely. */
const Webhook = z.object({
  object: z.literal('whatsapp_business_account'),
  entry: z.array(
    z.object({
      id: z.string(),
      changes: z.array(
        z.object({ field: z.string(), value: z.object({ messaging_product: z.string() }).passthrough() }),
      ),
    }),
  ),
});

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

export function whatsappInboundRoutes(app: FastifyInstance, deps: WhatsAppInboundDeps): void {
  void app.register((scope, _opts, done) => {
    keepRawJson(scope);
    const r = scope.withTypeProvider<ZodTypeProvider>();

    r.get(
      '/v1/inbound/whatsapp',
      {
        schema: {
          summary: "Meta's webhook verification handshake",
          tags: ['inbound'],
          security: [],
          querystring: z.object({
            'hub.mode': z.string(),
            'hub.verify_token': z.string(),
            'hub.challenge': z.string().max(512),
          }),
        },
      },
      (req, reply) => {
        const q = req.query;
        if (
          q['hub.mode'] !== 'subscribe' ||
          deps.verifyToken === undefined ||
          !safeEqual(q['hub.verify_token'], deps.verifyToken)
        ) {
          throw new AppError(
            'forbidden',
            'verification refused: wrong hub.mode or hub.verify_token (WHATSAPP_VERIFY_TOKEN)',
          );
        }
        void reply.type('text/plain; charset=utf-8').send(q['hub.challenge']);
      },
    );

    r.post(
      '/v1/inbound/whatsapp',
      { schema: { summary: 'Cloud API `messages` webhooks (signed)', tags: ['inbound'], security: [] } },
      async (req) => {
        const header = req.headers['x-hub-signature-256'];
        const m = typeof header === 'string' ? SIGNATURE.exec(header) : null;
        const raw = req.rawBody ?? Buffer.alloc(0);
        if (m === null || !safeEqual(hmacHex(deps.appSecret, raw), m[1]!)) {
          throw new AppError('unauthorized', 'missing or invalid X-Hub-Signature-256');
        }
        const parsed = Webhook.safeParse(req.body);
        if (!parsed.success) throw new AppError('invalid_request', 'not a whatsapp_business_account webhook');
        let applied = 0;
        let ignored = 0;
        for (const s of toWhatsAppSightings(req.body as WhatsAppWebhook, deps.decay)) {
          const ack = deps.engine.reportAccount(
            { platform: 'whatsapp', workspaceId: '', externalId: s.waId },
            s.presence,
            0,
          );
          if (ack === false) ignored += 1;
          else {
            await ack;
            applied += 1;
          }
        }
        if (ignored > 0) deps.log.debug({ ignored }, 'whatsapp sightings from numbers nobody linked');
        return { received: true, applied, ignored };
      },
    );
    done();
  });
}
