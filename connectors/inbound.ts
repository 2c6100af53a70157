/**
 * @module connectors/inbound
 * What every platform inbound route (Slack, Zoom, WhatsApp) shares:
 *
 * - `keepRawBody`: the signature covers the exact bytes sent, so every content type arrives as a
 *   Buffer and nothing is parsed before the signature is checked. Registered inside the route's
 *   encapsulated plugin, it leaves the rest of the API on Fastify's own parsers.
 * - `parseSignedBody`: after verification, the body by its content type: JSON (and, where the
 *   platform posts them, forms); any other type is `415 unsupported_media_type`, bad JSON `400`.
 * - `SeenDeliveries`: the memory that drops a delivery already taken (a platform's retry, or a
 *   replay of a validly signed request), bounded in time and size.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AppError } from '../src/core/errors';

/** Every content type is kept as the bytes received; `request.body` is a Buffer (or undefined). */
export function keepRawBody(scope: FastifyInstance): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
}

/** The raw bytes of a request whose scope uses `keepRawBody`. */
export function rawBodyOf(request: FastifyRequest): Buffer {
  return Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
}

export type SignedBody =
  | { readonly kind: 'json'; readonly value: unknown }
  | { readonly kind: 'form'; readonly value: Readonly<Record<string, string>> };

/**
 * The verified body by its content type. Throws `unsupported_media_type` (415) for a type the
 * route does not take and `invalid_request` (400) for JSON that does not parse.
 */
export function parseSignedBody(
  request: FastifyRequest,
  raw: Buffer,
  options: { readonly forms?: boolean } = {},
): SignedBody {
  const header = request.headers['content-type'];
  const type = (typeof header === 'string' ? header : '').split(';')[0]!.trim().toLowerCase();
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
 * Delivery ids seen recently, in arrival order, so that expiry and the size cap drop the oldest
 * first. One instance per route.
 */
export class SeenDeliveries {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly max: number,
  ) {}

  /** True the first time an id is offered (within the TTL), false for a repeat. */
  firstTime(id: string, now: number): boolean {
    for (const [old, at] of this.seen) {
      if (at + this.ttlMs > now && this.seen.size < this.max) break;
      this.seen.delete(old);
    }
    const at = this.seen.get(id);
    if (at !== undefined && at + this.ttlMs > now) return false;
    this.seen.delete(id); // re-inserted at the end: arrival order stays oldest first
    this.seen.set(id, now);
    return true;
  }

  /** Forgets an id whose work failed, so that the platform's retry is taken. */
  forget(id: string): void {
    this.seen.delete(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
