/**
 * @module http/errors
 * One error handler for everything the API can fail with, Fastify's own errors included: the
 * contract's body `{ error: { code, message, request_id, details } }`, a catalogue code, a fitting
 * status. Only unknown errors are logged with a stack and answered 500.
 */

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';

import { AppError, codeToStatus, type ErrorCode, type ErrorDetail } from '../core/errors';

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
  void reply.code(status).headers(headers).type('application/json; charset=utf-8').send(body);
}

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
    // Fastify's messages for these are safe and useful ("Body is too large", "Unexpected token…").
    const code = codeForStatus(status);
    sendError(
      reply,
      status === 405 ? 404 : status,
      errorBody(code, error.message, id, [{ code: error.code ?? code, message: error.message }]),
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
