/**
 * @module stream/protocol
 * What clients send the stream: the query both transports take, and the WebSocket's messages.
 * Each is validated whole before anything changes; a bad one is answered with the REST error
 * body (`invalid_request`, details naming the bad field).
 */

import { z } from 'zod';

import { AppError, type ErrorDetail } from '../core/errors';
import { ACTIVITIES, STATUSES, USER_ID_PATTERN } from '../core/presence';
import { MAX_IDS_PER_CONNECTION } from './hub';

export const MAX_COALESCE_MS = 5000;

/** The largest WebSocket message a client may send: a subscribe of 10,000 long ids is about 1.3 MB. */
export const MAX_FRAME_BYTES = 2 * 1024 * 1024;

const UserId = z.string().regex(USER_ID_PATTERN, 'user ids are 1-128 characters of A-Z a-z 0-9 . _ : @ -');
const UserIds = z.array(UserId).max(MAX_IDS_PER_CONNECTION, `at most ${MAX_IDS_PER_CONNECTION} user ids`);
const CoalesceMs = z.number().int().min(0).max(MAX_COALESCE_MS);
const Since = z.string().min(1).max(200);
const DeviceId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, 'device ids are printable ASCII without spaces');

/** The query of `GET /v1/stream` and `GET /v1/ws`. */
export const StreamQuery = z.strictObject({
  user_ids: z
    .string()
    .transform((s) => (s === '' ? [] : s.split(',')))
    .pipe(UserIds)
    .optional()
    .describe(`Comma-separated user ids to watch, at most ${MAX_IDS_PER_CONNECTION}`),
  coalesce_ms: z.coerce
    .number()
    .pipe(CoalesceMs)
    .optional()
    .describe('At most one message per user per window, with the latest state (0–5000, default 0)'),
  since: Since.optional().describe('Resume after this position (`<epoch>:<offset>`)'),
  access_token: z
    .string()
    .optional()
    .describe('The API key, for clients that cannot set headers (browsers); never logged'),
});
export type StreamQuery = z.infer<typeof StreamQuery>;

export const ClientMessage = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('subscribe'),
    user_ids: UserIds.min(1),
    coalesce_ms: CoalesceMs.optional(),
  }),
  z.strictObject({ type: z.literal('unsubscribe'), user_ids: UserIds.min(1) }),
  // `user_ids` (optional): ids to watch from now on, resumed with the others. A client watching
  // many ids sends them here rather than in the URL, which servers cap with the request's head.
  z.strictObject({ type: z.literal('resume'), since: Since, user_ids: UserIds.optional() }),
  z.strictObject({ type: z.literal('ping') }),
  z.strictObject({ type: z.literal('pong') }),
  z.strictObject({
    type: z.literal('identify'),
    user_id: UserId,
    device_id: DeviceId,
    status: z.enum(STATUSES).optional(),
    activity: z.enum(ACTIVITIES).nullable().optional(),
  }),
  z.strictObject({
    type: z.literal('status'),
    status: z.enum(STATUSES),
    activity: z.enum(ACTIVITIES).nullable().optional(),
  }),
]);
export type ClientMessage = z.infer<typeof ClientMessage>;

/** The zod issues as the REST error body's details. */
function detailsOf(error: z.ZodError): ErrorDetail[] {
  return error.issues.map((i) => ({ code: i.code, message: i.message, path: i.path as (string | number)[] }));
}

/** A frame's text as a client message, or the error to answer it with. */
export function parseClientMessage(text: string): ClientMessage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new AppError('invalid_request', 'a message is one JSON object with a `type`');
  }
  const parsed = ClientMessage.safeParse(json);
  if (parsed.success) return parsed.data;
  const first = parsed.error.issues[0];
  const where = first === undefined || first.path.length === 0 ? 'message' : first.path.join('.');
  throw new AppError(
    'invalid_request',
    `invalid ${where}: ${first?.message ?? 'bad message'}`,
    detailsOf(parsed.error),
  );
}

/** The query of a stream request, or a 400 naming the bad parameter. */
export function parseStreamQuery(query: Record<string, string>): StreamQuery {
  const parsed = StreamQuery.safeParse(query);
  if (parsed.success) return parsed.data;
  const first = parsed.error.issues[0];
  const where = first === undefined || first.path.length === 0 ? 'query' : first.path.join('.');
  throw new AppError(
    'invalid_request',
    `invalid querystring ${where}: ${first?.message ?? 'bad query'}`,
    detailsOf(parsed.error),
  );
}
