/**
 * @module http/routes/heartbeats
 * Device heartbeats sent straight to the service.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { DONE } from '../../aggregator/group-commit';
import type { AppDeps } from '../deps';
import { Activity, COMMON_ERRORS, Status, UserId } from '../schemas';

export const HeartbeatBody = z.strictObject({
  user_id: UserId,
  device_id: z
    .string()
    .min(1)
    .max(128)
    .regex(/^[\x21-\x7e]+$/, 'device ids are printable ASCII without spaces'),
  status: Status.default('online'),
  activity: Activity.nullable().default(null),
  ttl_seconds: z.number().int().min(1).max(86_400).default(30),
});

export function heartbeatRoutes(app: FastifyInstance, { engine }: AppDeps): void {
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/heartbeats',
    {
      config: { scope: 'write', viewer: 'self' },
      schema: {
        summary: 'A device heartbeat (creates the user on first sight)',
        description:
          'Default status online, default TTL 30 s. Answers once the heartbeat is durable: at once when it only refreshes the same state, after the commit when it changes something.',
        tags: ['devices'],
        body: HeartbeatBody,
        response: { 204: z.null(), ...COMMON_ERRORS },
      },
    },
    (req, reply) => {
      const b = req.body;
      const ack = engine.heartbeat(b.user_id, b.device_id, b.status, b.activity, b.ttl_seconds * 1000);
      // A refresh is durable at once: answered in this turn, without a promise to wait through.
      if (ack === DONE) {
        void reply.code(204).send(null);
        return;
      }
      return ack.then(() => {
        void reply.code(204).send(null);
      });
    },
  );
}
