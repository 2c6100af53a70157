/**
 * @module connectors/whatsapp/inbound
 * `GET/POST /v1/inbound/whatsapp`: the Cloud API webhook. GET answers Meta's verification
 * handshake; POST is checked against `X-Hub-Signature-256` over the raw body, then every message
 * and read (or played) receipt from a linked account becomes inferred presence. Numbers nobody
 * linked are ignored without error (Meta would otherwise retry them). The signature carries no
 * timestamp, so a signed body can be replayed at any time: every message and status is
 * remembered by its id for at least as long as the presence it gives lasts, and a repeat is
 * acknowledged without being applied again.
 * Docs: https://developers.facebook.com/docs/graph-api/webhooks/getting-started
 */

import { z } from 'zod';

import { systemClock, type Clock } from '../../src/core/clock';
import { AppError } from '../../src/core/errors';
import { hmacHex, safeEqual } from '../../src/core/hmac';
import type { Log } from '../../src/core/log';
import type { DeliveryDedupFactory } from '../../src/core/ports';
import type { DecayStep } from '../../src/core/presence';
import {
  headerOf,
  parseSignedBody,
  deliveryMemory,
  forgetQuietly,
  type InboundEndpoint,
  type InboundHandler,
  type PresencePort,
} from '../inbound';
import { toWhatsAppSightings } from './map';
import {
  WhatsAppInboundMessageSchema,
  WhatsAppMessagesValueSchema,
  WhatsAppStatusSchema,
  WhatsAppWebhookSchema,
  type WhatsAppInboundMessage,
  type WhatsAppStatus,
  type WhatsAppBatch,
} from './types';

export const WHATSAPP_INBOUND_PATH = '/v1/inbound/whatsapp';

export interface WhatsAppInboundOptions {
  readonly appSecret: string;
  /** The token Meta echoes in the GET handshake; without it the handshake is refused. */
  readonly verifyToken?: string;
  /** Where the sightings go. */
  readonly port: PresencePort;
  readonly decay: readonly DecayStep[];
  readonly log: Log;
  /** For the dedupe memory. Defaults to the system clock. */
  readonly clock?: Clock;
  /** At most this many message and status ids are remembered (oldest dropped first). Default 100,000. */
  readonly dedupeMax?: number;
  /** The delivery memory shared by the nodes (the coordination's); default: this process's. */
  readonly deliveries?: DeliveryDedupFactory;
}

const SIGNATURE = /^sha256=([0-9a-f]{64})$/;

/**
 * Keeps the items that pass their schema and counts the others. A `messages` change whose value
 * is not even an object with arrays is refused whole (400).
 */
function checked(hook: z.infer<typeof WhatsAppWebhookSchema>): { hook: WhatsAppBatch; malformed: number } {
  let malformed = 0;
  const keep = <T>(items: readonly unknown[] | undefined, schema: z.ZodType<T>): T[] => {
    const out: T[] = [];
    for (const item of items ?? []) {
      const r = schema.safeParse(item);
      if (r.success) out.push(r.data);
      else malformed += 1;
    }
    return out;
  };
  const entry = hook.entry.map((e) => ({
    changes: e.changes.map((c) => {
      if (c.field !== 'messages') return { field: c.field, value: {} };
      const value = WhatsAppMessagesValueSchema.safeParse(c.value);
      if (!value.success)
        throw new AppError(
          'invalid_request',
          'a messages change needs a value with messages/statuses arrays',
        );
      return {
        field: c.field,
        value: {
          messages: keep<WhatsAppInboundMessage>(value.data.messages, WhatsAppInboundMessageSchema),
          statuses: keep<WhatsAppStatus>(value.data.statuses, WhatsAppStatusSchema),
        },
      };
    }),
  }));
  return { hook: { entry }, malformed };
}

const Handshake = z.object({
  'hub.mode': z.string(),
  'hub.verify_token': z.string(),
  'hub.challenge': z.string().max(512),
});

export function whatsappInbound(options: WhatsAppInboundOptions): InboundHandler {
  const clock = options.clock ?? systemClock;
  // Past the decay a replayed sighting changes nothing anyway (it has expired); until then the
  // memory holds it. Meta's own retries come within that time too.
  const lastStep = options.decay[options.decay.length - 1]?.untilMs ?? 0;
  const seen = deliveryMemory(options.deliveries, clock, 'whatsapp:messages', {
    ttlMs: Math.max(2 * 3_600_000, lastStep),
    max: options.dedupeMax ?? 100_000,
  });

  const handshake: InboundEndpoint<string> = {
    method: 'GET',
    path: WHATSAPP_INBOUND_PATH,
    summary: "Meta's webhook verification handshake",
    body: 'raw',
    querystring: Handshake,
    verify(request) {
      const q = request.query as z.infer<typeof Handshake>;
      if (
        q['hub.mode'] !== 'subscribe' ||
        options.verifyToken === undefined ||
        !safeEqual(q['hub.verify_token'], options.verifyToken)
      ) {
        throw new AppError(
          'forbidden',
          'verification refused: wrong hub.mode or hub.verify_token (WHATSAPP_VERIFY_TOKEN)',
        );
      }
    },
    parse: (request) => (request.query as z.infer<typeof Handshake>)['hub.challenge'],
    handle: (challenge) => ({ status: 200, body: challenge, contentType: 'text/plain; charset=utf-8' }),
  };

  const messages: InboundEndpoint<{ hook: WhatsAppBatch; malformed: number }> = {
    method: 'POST',
    path: WHATSAPP_INBOUND_PATH,
    summary: 'Cloud API `messages` webhooks (signed)',
    body: 'raw',
    verify(request) {
      const header = headerOf(request, 'x-hub-signature-256');
      const m = header === undefined ? null : SIGNATURE.exec(header);
      if (m === null || !safeEqual(hmacHex(options.appSecret, request.raw), m[1]!)) {
        throw new AppError('unauthorized', 'missing or invalid X-Hub-Signature-256');
      }
    },
    parse(request) {
      const parsed = WhatsAppWebhookSchema.safeParse(parseSignedBody(request).value);
      if (!parsed.success) throw new AppError('invalid_request', 'not a whatsapp_business_account webhook');
      return checked(parsed.data);
    },
    async handle({ hook, malformed }) {
      if (malformed > 0) options.log.warn({ malformed }, 'whatsapp webhook items of the wrong shape ignored');
      let applied = 0;
      let ignored = 0;
      let duplicates = 0;
      for (const s of toWhatsAppSightings(hook, options.decay)) {
        if (!(await seen.firstTime(s.key))) {
          duplicates += 1;
          continue;
        }
        try {
          const accounts = s.ids.map((externalId) => ({
            platform: 'whatsapp' as const,
            workspaceId: '',
            externalId,
          }));
          if (await options.port.push({ accounts, presence: s.presence, ttlMs: 0 })) applied += 1;
          else ignored += 1;
        } catch (err) {
          // Not taken after all: Meta's retry of it must be applied.
          await forgetQuietly(seen, s.key);
          throw err;
        }
      }
      if (ignored > 0) options.log.debug({ ignored }, 'whatsapp sightings from numbers nobody linked');
      return { status: 200, body: { received: true, applied, ignored, duplicates, malformed } };
    },
  };
  return { platform: 'whatsapp', endpoints: [handshake, messages] };
}
