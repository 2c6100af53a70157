/**
 * @module http/raw-body
 * Platform pushes are signed over the exact bytes sent, so their routes parse JSON themselves and
 * keep the raw body. Registered inside an encapsulated plugin, it applies to those routes only.
 */

import type { FastifyInstance, FastifyRequest } from 'fastify';

import { AppError } from '../core/errors';

declare module 'fastify' {
  interface FastifyRequest {
    rawBody?: Buffer;
  }
}

export function keepRawJson(scope: FastifyInstance): void {
  scope.removeContentTypeParser('application/json');
  scope.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer' },
    (req: FastifyRequest, body: Buffer, done) => {
      req.rawBody = body;
      if (body.length === 0) {
        done(null, {});
        return;
      }
      try {
        done(null, JSON.parse(body.toString('utf8')) as unknown);
      } catch {
        done(new AppError('invalid_request', 'body is not valid JSON'), undefined);
      }
    },
  );
}
