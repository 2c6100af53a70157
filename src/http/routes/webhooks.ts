/**
 * @module http/routes/webhooks
 * Webhook endpoints (admin scope): register, list, show, update (rotate the secret, re-enable),
 * delete, the delivery log, replay. The schemas, of input and reply, are the webhook layer's own,
 * so validation, the facade's types and the OpenAPI document say the same thing. The route
 * validates a request's body and query (a 400 names the part), and hands them to the facade's
 * `parsed` operations, which do not parse them again.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import {
  createEndpointSchema,
  deliveriesPageSchema,
  deliveriesQuerySchema,
  endpointReplySchema as Endpoint,
  replaySchema,
  updateEndpointSchema,
  type WebhookService,
} from '../../webhooks';
import { COMMON_ERRORS, ErrorBody } from '../schemas';

const Id = z.strictObject({ id: z.string().min(1).max(64) });
const errors = { 404: ErrorBody, 409: ErrorBody, ...COMMON_ERRORS };

export function webhookRoutes(app: FastifyInstance, webhooks: WebhookService): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const admin = { scope: 'admin' as const };

  r.post(
    '/v1/webhooks',
    {
      config: admin,
      schema: {
        summary: 'Register an endpoint; the reply holds its secret, shown once',
        description:
          'Events are signed per Standard Webhooks v1 (webhook-id, webhook-timestamp, webhook-signature). Verify the raw body.',
        tags: ['webhooks'],
        body: createEndpointSchema,
        response: { 201: Endpoint, ...errors },
      },
    },
    async (req, reply) => {
      void reply.code(201).send(await webhooks.parsed.createEndpoint(req.body));
    },
  );

  r.get(
    '/v1/webhooks',
    {
      config: admin,
      schema: {
        summary: 'Endpoints',
        tags: ['webhooks'],
        response: { 200: z.object({ webhooks: z.array(Endpoint) }), ...errors },
      },
    },
    () => ({ webhooks: webhooks.listEndpoints() }),
  );

  r.get(
    '/v1/webhooks/:id',
    {
      config: admin,
      schema: {
        summary: 'One endpoint',
        tags: ['webhooks'],
        params: Id,
        response: { 200: Endpoint, ...errors },
      },
    },
    (req) => webhooks.getEndpoint(req.params.id),
  );

  r.patch(
    '/v1/webhooks/:id',
    {
      config: admin,
      schema: {
        summary:
          'Update an endpoint: url, filters, coalescing; `rotate_secret` (both signatures sent for 24 h); `enabled`',
        tags: ['webhooks'],
        params: Id,
        body: updateEndpointSchema,
        response: { 200: Endpoint, ...errors },
      },
    },
    (req) => webhooks.parsed.updateEndpoint(req.params.id, req.body),
  );

  r.delete(
    '/v1/webhooks/:id',
    {
      config: admin,
      schema: {
        summary: 'Delete an endpoint',
        tags: ['webhooks'],
        params: Id,
        response: { 204: z.null(), ...errors },
      },
    },
    async (req, reply) => {
      await webhooks.deleteEndpoint(req.params.id);
      void reply.code(204).send(null);
    },
  );

  r.get(
    '/v1/webhooks/:id/deliveries',
    {
      config: admin,
      schema: {
        summary:
          'The delivery log: each delivery with its attempts, status codes, latency, errors, next attempt',
        tags: ['webhooks'],
        params: Id,
        querystring: deliveriesQuerySchema,
        response: {
          200: deliveriesPageSchema,
          ...errors,
        },
      },
    },
    (req) => webhooks.parsed.deliveries(req.params.id, req.query),
  );

  r.post(
    '/v1/webhooks/:id/replay',
    {
      config: admin,
      schema: {
        summary: 'Send again every event since a time, with the same webhook-ids',
        tags: ['webhooks'],
        params: Id,
        body: replaySchema,
        response: { 202: z.object({ replayed: z.number().int() }), ...errors },
      },
    },
    async (req, reply) => {
      void reply.code(202).send(await webhooks.parsed.replay(req.params.id, req.body));
    },
  );
}
