/**
 * @module webhooks/schema
 * The inputs of the webhook facade as zod schemas, and the JSON shapes it returns. Each input is
 * parsed once with these: by the routes (which then call the facade's `parsed` operations), or by
 * the facade itself when it is called with input of unknown shape (the CLI, tests).
 */

import { z } from 'zod';

import { AppError, type ErrorDetail } from '../core/errors';
import { DELIVERY_STATUSES, DISABLED_REASONS, EVENT_TYPES } from '../core/ports';
import { USER_ID_PATTERN } from '../core/presence';
import { parseIso } from '../core/time';

export {
  DELIVERY_STATUSES,
  DISABLED_REASONS,
  EVENT_TYPES,
  type DeliveryStatus,
  type DisabledReason,
  type EventType,
} from '../core/ports';

/** The longest coalescing window an endpoint may ask for. */
export const MAX_COALESCE_MS = 600_000;
export const MAX_FILTER_USER_IDS = 1000;

const eventsFilter = z
  .array(z.enum(EVENT_TYPES))
  .min(1)
  .refine((a) => new Set(a).size === a.length, { message: 'event types must not repeat' });
const userIdsFilter = z
  .array(z.string().regex(USER_ID_PATTERN, 'not a valid user id'))
  .min(1)
  .max(MAX_FILTER_USER_IDS);
const coalesceMs = z.number().int().min(0).max(MAX_COALESCE_MS);

/** `POST /v1/webhooks`. Absent `events`/`user_ids` mean every type, every user. */
export const createEndpointSchema = z.strictObject({
  url: z.string().min(1),
  events: eventsFilter.optional(),
  user_ids: userIdsFilter.optional(),
  coalesce_ms: coalesceMs.optional(),
});
export type CreateEndpointInput = z.infer<typeof createEndpointSchema>;

/**
 * `PATCH /v1/webhooks/{id}`. `null` clears a filter. `enabled: true` re-enables a disabled
 * endpoint; `rotate_secret: true` issues a new secret while the old one keeps signing for the
 * rotation window.
 */
export const updateEndpointSchema = z.strictObject({
  url: z.string().min(1).optional(),
  events: eventsFilter.nullable().optional(),
  user_ids: userIdsFilter.nullable().optional(),
  coalesce_ms: coalesceMs.optional(),
  enabled: z.boolean().optional(),
  rotate_secret: z.boolean().optional(),
});
export type UpdateEndpointInput = z.infer<typeof updateEndpointSchema>;

/** `GET /v1/webhooks/{id}/deliveries?status=&limit=&before=` (query strings are coerced). */
export const deliveriesQuerySchema = z.strictObject({
  status: z.enum(DELIVERY_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(1000).optional(),
  /** A delivery id: return older ones (the `next_before` of the previous page). */
  before: z.coerce.number().int().min(1).optional(),
});
export type DeliveriesQuery = z.infer<typeof deliveriesQuerySchema>;

/** `POST /v1/webhooks/{id}/replay`. */
export const replaySchema = z.strictObject({
  since: z.string().refine((s) => !Number.isNaN(parseIso(s)), {
    message: 'must be an ISO-8601 time with a zone, e.g. 2026-11-23T14:00:00Z',
  }),
});
export type ReplayInput = z.infer<typeof replaySchema>;

/** Parses `input` or throws `AppError('invalid_request')` with one detail per problem. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const details: ErrorDetail[] = result.error.issues.map((i) => ({
    code: i.code,
    message: i.message,
    path: i.path.filter((p): p is string | number => typeof p !== 'symbol'),
  }));
  const first = details[0];
  const where = first?.path !== undefined && first.path.length > 0 ? `${first.path.join('.')}: ` : '';
  throw new AppError('invalid_request', `invalid ${what}: ${where}${first?.message ?? 'bad input'}`, details);
}

// ---------------------------------------------------------------- what the facade returns

/**
 * The JSON shapes the facade returns, defined once: the routes serialize (and document) replies
 * with these schemas, and the facade's types are inferred from them.
 */

const IsoTime = z.string().describe('ISO-8601 UTC with milliseconds');

export const endpointViewSchema = z
  .object({
    id: z.string(),
    url: z.string(),
    events: z.array(z.enum(EVENT_TYPES)).nullable().describe('null: every event type'),
    user_ids: z.array(z.string()).nullable().describe('null: every user'),
    coalesce_ms: z.number().int(),
    enabled: z.boolean(),
    /** Why it is disabled: `gone` (it answered 410), `failing` (5 days of failures), `manual`. */
    disabled_reason: z.enum(DISABLED_REASONS).nullable(),
    disabled_at: IsoTime.nullable(),
    /** The first failure since the last success, while it keeps failing. */
    failing_since: IsoTime.nullable(),
    /** While a rotation is under way: when the previous secret stops signing. */
    previous_secret_expires_at: IsoTime.nullable(),
    created_at: IsoTime,
    updated_at: IsoTime,
  })
  .describe('A webhook endpoint');
export type EndpointView = z.infer<typeof endpointViewSchema>;

/** What the routes reply with: an endpoint, with its secret after a create or a rotation. */
export const endpointReplySchema = endpointViewSchema
  .extend({
    secret: z.string().optional().describe('whsec_…: only in the reply to create and to a rotation'),
  })
  .describe('A webhook endpoint');

/** `createEndpoint` and a rotating `updateEndpoint` return the secret, once. */
export type EndpointWithSecret = EndpointView & { secret: string };

export const attemptViewSchema = z.object({
  attempt: z.number().int(),
  at: IsoTime,
  status_code: z.number().int().nullable(),
  latency_ms: z.number(),
  error: z.string().nullable(),
  next_attempt_at: IsoTime.nullable(),
});
export type AttemptView = z.infer<typeof attemptViewSchema>;

export const deliveryViewSchema = z.object({
  id: z.number().int(),
  /** The `webhook-id` sent. */
  webhook_id: z.string(),
  type: z.enum(EVENT_TYPES),
  user_id: z.string().nullable(),
  version: z.number().int().nullable(),
  status: z.enum(DELIVERY_STATUSES),
  replay: z.boolean(),
  attempt_count: z.number().int(),
  next_attempt_at: IsoTime.nullable(),
  last_status_code: z.number().int().nullable(),
  last_error: z.string().nullable(),
  created_at: IsoTime,
  updated_at: IsoTime,
  attempts: z.array(attemptViewSchema),
});
export type DeliveryView = z.infer<typeof deliveryViewSchema>;

export const deliveriesPageSchema = z.object({
  deliveries: z.array(deliveryViewSchema),
  /** Pass as `before` for the next (older) page; null on the last page. */
  next_before: z.number().int().nullable(),
});
export type DeliveriesPage = z.infer<typeof deliveriesPageSchema>;
