/**
 * @module webhooks/sign
 * Standard Webhooks v1 (https://www.standardwebhooks.com): the signing side the dispatcher uses,
 * and `verifyWebhook` for consumers.
 *
 * - The signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`, HMAC-SHA256, base64,
 *   prefixed `v1,`. The key is the base64-decoded part of the `whsec_` secret.
 * - During a secret rotation the header holds several signatures separated by spaces; a consumer
 *   accepts the message when any one of them verifies with the secret it holds.
 * - Consumers must verify the raw body, byte for byte, before parsing it: re-serialized JSON does
 *   not verify.
 */

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

import { systemClock, type Clock } from '../core/clock';

export const SECRET_PREFIX = 'whsec_';
/** How far a `webhook-timestamp` may be from now before a message is refused (replay defence). */
export const DEFAULT_TOLERANCE_SECONDS = 5 * 60;

/** A new endpoint secret: `whsec_` and 32 random bytes, base64. */
export function newSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

/** The HMAC key of a secret, with or without its `whsec_` prefix. Throws for an unusable one. */
export function secretKey(secret: string): Buffer {
  const b64 = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new Error('a webhook secret must be whsec_ and base64');
  const key = Buffer.from(b64, 'base64');
  if (key.length === 0) throw new Error('a webhook secret must not be empty');
  return key;
}

/**
 * One signature, `v1,<base64>`, of `body` as sent with `msgId` at `timestampSeconds` (unix
 * seconds). `secret` is a `whsec_` secret or a key from `secretKey`.
 */
export function sign(
  secret: string | Buffer,
  msgId: string,
  timestampSeconds: number,
  body: string | Buffer,
): string {
  const key = typeof secret === 'string' ? secretKey(secret) : secret;
  const mac = createHmac('sha256', key).update(`${msgId}.${timestampSeconds}.`).update(body);
  return `v1,${mac.digest('base64')}`;
}

/** The `webhook-signature` header: one signature per key, newest key first, space separated. */
export function signatureHeader(
  keys: readonly Buffer[],
  msgId: string,
  timestampSeconds: number,
  body: string | Buffer,
): string {
  let header = '';
  for (const key of keys) header += (header === '' ? '' : ' ') + sign(key, msgId, timestampSeconds, body);
  return header;
}

/** Why a message did not verify. The message says which check failed, never the secret. */
export class WebhookVerificationError extends Error {
  override name = 'WebhookVerificationError';
}

/** Headers as Node's `IncomingMessage` has them, as a plain record, or a fetch `Headers`. */
export type WebhookHeaders =
  Readonly<Record<string, string | readonly string[] | undefined>> | { get(name: string): string | null };

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === 'function') {
    return (headers as { get(name: string): string | null }).get(name) ?? undefined;
  }
  const record = headers as Readonly<Record<string, string | readonly string[] | undefined>>;
  let value = record[name];
  if (value === undefined) {
    for (const key of Object.keys(record)) {
      if (key.toLowerCase() === name) {
        value = record[key];
        break;
      }
    }
  }
  return Array.isArray(value) ? (value as readonly string[]).join(' ') : (value as string | undefined);
}

export interface VerifyOptions {
  /** Seconds a timestamp may be away from now (default 300). */
  readonly toleranceSeconds?: number;
  /** The clock to compare the timestamp with (default: the system clock). */
  readonly clock?: Clock;
}

/** What this service sends: `{ type, timestamp, data }`. */
export interface WebhookPayload<T = Record<string, unknown>> {
  readonly type: string;
  readonly timestamp: string;
  readonly data: T;
}

/**
 * Verifies a Standard Webhooks message and returns its parsed body. `rawBody` must be the body
 * exactly as received. Throws `WebhookVerificationError` for a missing header, a timestamp outside
 * the tolerance, a signature that matches none of the ones sent, or a body that is not JSON.
 */
export function verifyWebhook<T = WebhookPayload>(
  secret: string,
  rawBody: string | Buffer,
  headers: WebhookHeaders,
  options: VerifyOptions = {},
): T {
  const msgId = header(headers, 'webhook-id');
  const timestamp = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  for (const [name, value] of [
    ['webhook-id', msgId],
    ['webhook-timestamp', timestamp],
    ['webhook-signature', signatures],
  ] as const) {
    if (value === undefined || value === '') throw new WebhookVerificationError(`missing ${name} header`);
  }
  if (!/^\d{1,15}$/.test(timestamp!)) {
    throw new WebhookVerificationError('webhook-timestamp is not a number of unix seconds');
  }
  const sentAt = Number(timestamp);
  const now = Math.floor((options.clock ?? systemClock).now() / 1000);
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (sentAt < now - tolerance) throw new WebhookVerificationError('webhook-timestamp is too old');
  if (sentAt > now + tolerance) throw new WebhookVerificationError('webhook-timestamp is in the future');

  let key: Buffer;
  try {
    key = secretKey(secret);
  } catch (error) {
    throw new WebhookVerificationError((error as Error).message);
  }
  const expected = Buffer.from(sign(key, msgId!, sentAt, rawBody).slice(3), 'base64');
  let matched = false;
  for (const candidate of signatures!.split(' ')) {
    const comma = candidate.indexOf(',');
    if (comma < 0 || candidate.slice(0, comma) !== 'v1') continue;
    const given = Buffer.from(candidate.slice(comma + 1), 'base64');
    if (given.length === expected.length && timingSafeEqual(given, expected)) matched = true;
  }
  if (!matched) throw new WebhookVerificationError('no webhook-signature matches this secret and body');
  try {
    return JSON.parse(typeof rawBody === 'string' ? rawBody : rawBody.toString('utf8')) as T;
  } catch {
    throw new WebhookVerificationError('the body is not JSON');
  }
}
