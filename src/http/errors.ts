/**
 * @module http/errors
 * One error handler for everything the API can fail with, Fastify's own errors included: the
 * contract's body `{ error: { code, message, request_id, details } }`, a catalogue code, a fitting
 * status. Only unknown errors are logged with a stack and answered 500.
 */

import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

import { AppError, codeToStatus, type ErrorCode, type ErrorDetail } from '../core/errors';
import { classifyStoreError, isStoreFault, StoreUnavailableError } from '../store/faults';
import { MAX_PARAM_LENGTH } from './input';

export interface ErrorBody {
  error: { code: ErrorCode; message: string; request_id: string; details: ErrorDetail[] };
}

export function errorBody(
  code: ErrorCode,
  message: string,
  requestId: string,
  details: readonly ErrorDetail[] = [],
): ErrorBody {
  return { error: { code, message, request_id: requestId, details: [...details] } };
}

/** A Fastify 4xx (bad JSON, body too large, wrong content type, …) → a catalogue code. */
function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 401:
      return 'unauthorized';
    case 403:
      return 'forbidden';
    case 404:
    case 405:
      return 'not_found';
    case 409:
      return 'conflict';
    case 413:
      return 'payload_too_large';
    case 415:
      return 'unsupported_media_type';
    case 429:
      return 'rate_limited';
    default:
      return 'invalid_request';
  }
}

function sendError(
  reply: FastifyReply,
  status: number,
  body: ErrorBody,
  headers: Record<string, string> = {},
): void {
  // The request id header is set here too: replies to the router's own refusals skip the hooks.
  void reply
    .code(status)
    .headers({ ...headers, 'x-request-id': body.error.request_id })
    .type('application/json; charset=utf-8')
    .send(body);
}

/** Fastify errors whose own message repeats the request's path, which can be long or hostile. */
const OWN_MESSAGES: Readonly<Record<string, string>> = {
  FST_ERR_BAD_URL: 'the path is not validly percent-encoded UTF-8',
  FST_ERR_MAX_PARAM_LENGTH: `a path segment is longer than ${MAX_PARAM_LENGTH} characters`,
};

export function errorHandler(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  try {
    handle(error, request, reply);
  } catch (failure) {
    // The handler itself must never be the reason a client sees a body outside the contract.
    request.log.error({ err: failure, original: error }, 'error handler failed');
    sendError(
      reply,
      500,
      errorBody('internal', 'internal error; see the service log for this request id', request.id),
    );
  }
}

function handle(error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const id = request.id;
  if (isStoreFault(error)) {
    // A write outside the engine's group commit (keys, webhooks, connections) met a failing
    // store: the same 503 the engine gives, never a 500.
    const refusal = new StoreUnavailableError(classifyStoreError(error, 0));
    request.log.warn({ err: error, reason: refusal.fault.reason }, 'the store refused a write');
    sendError(reply, refusal.status, errorBody(refusal.code, refusal.message, id, refusal.details), {
      ...refusal.headers,
    });
    return;
  }
  if (error instanceof AppError) {
    sendError(reply, error.status, errorBody(error.code, error.message, id, error.details), {
      ...error.headers,
    });
    return;
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where = error.validationContext ?? 'request';
    const details: ErrorDetail[] = error.validation.map((v) => ({
      code: v.keyword,
      message: v.message ?? 'invalid',
      path: [
        where,
        ...v.instancePath
          .split('/')
          .filter((p) => p !== '')
          .map((p) => (/^\d+$/.test(p) ? Number(p) : p)),
      ],
    }));
    const first = details[0];
    const field = first?.path?.slice(1).join('.') || where;
    sendError(
      reply,
      400,
      errorBody('invalid_request', `invalid ${field}: ${first?.message ?? 'bad input'}`, id, details),
    );
    return;
  }
  const status = typeof error.statusCode === 'number' ? error.statusCode : 500;
  if (status >= 400 && status < 500) {
    // Fastify's messages for these are safe and useful ("Body is too large", "Unexpected token…"),
    // except those that echo the whole path back.
    const code = codeForStatus(status);
    const message = OWN_MESSAGES[error.code] ?? error.message;
    sendError(
      reply,
      status === 405 ? 404 : status,
      errorBody(code, message, id, [{ code: error.code ?? code, message }]),
    );
    return;
  }
  request.log.error({ err: error }, 'unhandled error');
  sendError(reply, 500, errorBody('internal', 'internal error; see the service log for this request id', id));
}

export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  sendError(
    reply,
    codeToStatus('not_found'),
    errorBody('not_found', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`, request.id),
  );
}

/**
 * What Node's HTTP parser refuses before Fastify sees a request (oversized headers, a broken
 * Content-Length, bytes that are not HTTP) still gets the contract's error body, on the raw socket.
 * Each parser code is kept in `details` as the greppable reason.
 * https://nodejs.org/api/http.html#event-clienterror
 */
const CLIENT_ERRORS: Readonly<Record<string, { status: number; message: string }>> = {
  HPE_HEADER_OVERFLOW: { status: 431, message: 'the request line and headers are larger than 16 KiB' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'the request did not arrive in time' },
  HPE_INVALID_CONTENT_LENGTH: { status: 400, message: 'the Content-Length header is not valid' },
  HPE_UNEXPECTED_CONTENT_LENGTH: {
    status: 400,
    message: 'Content-Length and Transfer-Encoding conflict; send one of them',
  },
  HPE_INVALID_TRANSFER_ENCODING: {
    status: 400,
    message: 'the Transfer-Encoding header is not valid, or conflicts with Content-Length',
  },
  HPE_INVALID_EOF_STATE: {
    status: 400,
    message: 'the connection ended before the body announced by Content-Length arrived',
  },
};

export function clientErrorHandler(
  this: FastifyInstance,
  err: Error & { code?: string },
  socket: Duplex,
): void {
  // A reset connection has no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // A response already under way on this connection cannot be followed by another.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (!socket.writable || inFlight?.headersSent === true) {
    socket.destroy();
    return;
  }
  const known = CLIENT_ERRORS[err.code ?? ''];
  const status = known?.status ?? 400;
  const message = known?.message ?? 'the request is not valid HTTP/1.1';
  const id = randomUUID();
  const reason = err.code ?? 'HTTP_PARSE_ERROR';
  const body = JSON.stringify(errorBody(codeForStatus(status), message, id, [{ code: reason, message }]));
  this.log.info({ request_id: id, status, reason }, 'request refused by the HTTP parser');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Bad Request'}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      `x-request-id: ${id}\r\n` +
      'Connection: close\r\n\r\n' +
      body,
    () => socket.destroy(),
  );
}
