/**
 * @module connectors/inbound
 * What every platform inbound handler is and shares. A handler knows its platform's push
 * protocol, nothing of HTTP frameworks or the engine: the route layer (src/http/routes/inbound.ts)
 * hands it each request as an `InboundRequest`, calls its `verify`, `parse` and `handle` in that
 * order, and sends the `InboundReply` it returns. Whatever a push changes goes through the
 * handler's `PushPort`, the one way pushes leave a handler on every platform.
 *
 * - `parseSignedBody`: after verification, the body by its content type: JSON (and, where the
 *   platform posts them, forms); any other type is `415 unsupported_media_type`, bad JSON `400`.
 * - `deliveryMemory`: the memory that drops a delivery already taken (a platform's retry, or a
 *   replay of a validly signed request), bounded in time: the coordination's `DeliveryDedup`
 *   (shared by the nodes, so a push redelivered to another node is still taken once), or by
 *   default this process's `SeenDeliveries`, bounded in size too.
 */

import type { ZodType } from 'zod';

import type { Clock } from '../src/core/clock';
import type { MappedPresence } from '../src/core/connector';
import { inProcessDeliveries } from '../src/core/coordination';
import { AppError } from '../src/core/errors';
import type { Log } from '../src/core/log';
import type { AccountRef, DeliveryDedup, DeliveryDedupFactory } from '../src/core/ports';

/** Moved to core (the in-process delivery memory behind `DeliveryDedup`); exported here as before. */
export { SeenDeliveries } from '../src/core/coordination';

/** One request as a handler sees it. */
export interface InboundRequest {
  /** Header names in lower case, as Node gives them. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** The decoded query string (validated against the endpoint's `querystring` when it has one). */
  readonly query: Readonly<Record<string, unknown>>;
  /** `body: 'raw'` endpoints: the exact bytes received, before anything parsed them. */
  readonly raw: Buffer;
  /** `body: 'parsed'` endpoints: the JSON body the framework parsed. */
  readonly body: unknown;
  /** The request's own logger (it carries the request id). */
  readonly log: Log;
  readonly id: string;
}

/** What to answer. No body: an empty reply. */
export interface InboundReply {
  readonly status: number;
  readonly body?: unknown;
  /** Defaults to JSON for an object body. */
  readonly contentType?: string;
}

export interface InboundEndpoint<T = unknown> {
  readonly method: 'GET' | 'POST';
  readonly path: string;
  /** The OpenAPI summary. */
  readonly summary: string;
  /**
   * raw: every content type arrives as the bytes sent, nothing parsed before `verify` (a signature
   * covers the exact bytes). parsed: the framework's own JSON parser (its 415 for other types).
   */
  readonly body: 'raw' | 'parsed';
  /** Checked before anything else; a query that does not match is a 400. */
  readonly querystring?: ZodType;
  /** Answered before the body is read when it returns a reply (Graph's validation handshake). */
  readonly early?: (query: Readonly<Record<string, unknown>>) => InboundReply | null;
  /** Proves the request is the platform's: throws `unauthorized`/`forbidden` (or `invalid_request`
   * when there is nothing to check). */
  verify(request: InboundRequest): void;
  /** What the verified request says: throws `invalid_request` or `unsupported_media_type`. */
  parse(request: InboundRequest): T;
  /** Acts on it through the handler's port and says what to answer. */
  handle(content: T, request: InboundRequest): InboundReply | Promise<InboundReply>;
}

/** A platform's inbound side: the endpoints it serves. */
export interface InboundHandler {
  readonly platform: string;
  // Endpoints differ in what they parse; the route layer only passes one's parse to its handle.
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly endpoints: readonly InboundEndpoint<any>[];
}

/**
 * The one way a handler passes on what it was pushed. `E` is what the push says in the
 * platform's terms (a Slack event, Graph notifications) or already mapped (`PresencePush`); who
 * takes it (the platform's connector, or the presence reporter) is the composition's choice.
 */
export interface PushPort<E, R = void> {
  push(event: E): Promise<R>;
}

/** Presence a push gave, for the first of `accounts` someone linked. */
export interface PresencePush {
  readonly accounts: readonly AccountRef[];
  readonly presence: MappedPresence;
  readonly ttlMs: number;
}

/** Resolves false when nobody linked any of the accounts; rejects when it could not be stored. */
export type PresencePort = PushPort<PresencePush, boolean>;

export type SignedBody =
  | { readonly kind: 'json'; readonly value: unknown }
  | { readonly kind: 'form'; readonly value: Readonly<Record<string, string>> };

/** The request's media type, lower case, without parameters ('' when none was sent). */
export function mediaType(request: InboundRequest): string {
  const header = request.headers['content-type'];
  return (typeof header === 'string' ? header : '').split(';')[0]!.trim().toLowerCase();
}

/** A header's value when it was sent once. */
export function headerOf(request: InboundRequest, name: string): string | undefined {
  const v = request.headers[name];
  return typeof v === 'string' ? v : undefined;
}

/**
 * The verified body by its content type. Throws `unsupported_media_type` (415) for a type the
 * route does not take and `invalid_request` (400) for JSON that does not parse.
 */
export function parseSignedBody(
  request: InboundRequest,
  options: { readonly forms?: boolean } = {},
): SignedBody {
  const type = mediaType(request);
  const raw = request.raw;
  if (type === 'application/json') {
    try {
      return { kind: 'json', value: JSON.parse(raw.toString('utf8')) as unknown };
    } catch {
      throw new AppError('invalid_request', 'body is not valid JSON');
    }
  }
  if (options.forms === true && type === 'application/x-www-form-urlencoded')
    return { kind: 'form', value: Object.fromEntries(new URLSearchParams(raw.toString('utf8'))) };
  throw new AppError(
    'unsupported_media_type',
    `send application/json${options.forms === true ? ' (or a form)' : ''} to this route, not ${type === '' ? 'no content type' : type}`,
  );
}

/**
 * A route's delivery memory (`scope` names the route): from `deliveries`, the coordination's (one
 * memory for every node), else this process's alone.
 */
export function deliveryMemory(
  deliveries: DeliveryDedupFactory | undefined,
  clock: Clock,
  scope: string,
  options: { readonly ttlMs: number; readonly max: number },
): DeliveryDedup {
  return (deliveries ?? inProcessDeliveries(clock))(scope, options);
}

/**
 * Forgets a delivery whose work failed, keeping the work's error: if the memory cannot be reached
 * either, the mark ends at its TTL (and the memory's own failure shows on the next delivery).
 */
export async function forgetQuietly(seen: DeliveryDedup, id: string): Promise<void> {
  await seen.forget(id).catch(() => undefined);
}
