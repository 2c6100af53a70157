/**
 * @module http/routes/signals
 * `POST /v1/signals`: activity seen elsewhere (a browser extension, a CRM, activity an operator
 * is entitled to see) becomes inferred presence that fades, exactly as WhatsApp messages do.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { AppError } from '../../core/errors';
import type { DecayStep } from '../../core/presence';
import { SIGNAL_KINDS, signalPresence } from '../../core/signals';
import { parseIso, toIso } from '../../core/time';
import type { PresenceEngine } from '../../aggregator/engine';
import type { Clock } from '../../core/clock';
import { COMMON_ERRORS, ErrorBody, Platform, UserId } from '../schemas';

const SignalBody = z
  .strictObject({
    user_id: UserId.optional(),
    platform: Platform.exclude(['simulated']),
    external_id: z.string().min(1).max(256).optional(),
    workspace_id: z.string().min(1).max(256).optional(),
    kind: z.enum(SIGNAL_KINDS),
    at: z.iso.datetime({ offset: true }),
  })
  .refine((b) => (b.user_id === undefined) !== (b.external_id === undefined), {
    message: 'give either user_id, or platform with external_id',
  });

/** Clocks disagree a little; a signal from further in the future than this is refused. */
const FUTURE_SKEW_MS = 60_000;

export interface SignalDeps {
  readonly engine: PresenceEngine;
  readonly clock: Clock;
  readonly decay: readonly DecayStep[];
}

export function signalRoutes(app: FastifyInstance, deps: SignalDeps): void {
  const { engine, clock } = deps;
  app.withTypeProvider<ZodTypeProvider>().post(
    '/v1/signals',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'An activity signal: inferred presence that fades (online, then idle, then away)',
        tags: ['devices'],
        body: SignalBody,
        response: {
          202: z.object({
            user_id: z.string(),
            applied: z.boolean().describe('false when the signal was too old to count'),
          }),
          404: ErrorBody,
          ...COMMON_ERRORS,
        },
      },
    },
    async (req, reply) => {
      const b = req.body;
      const at = parseIso(b.at);
      const now = clock.now();
      if (at > now + FUTURE_SKEW_MS) {
        throw new AppError('invalid_request', `at is in the future (now is ${toIso(now)})`, [
          { code: 'too_big', message: 'at is in the future', path: ['body', 'at'] },
        ]);
      }
      let userId = b.user_id;
      if (userId === undefined) {
        userId = engine.resolveAccount({
          platform: b.platform,
          externalId: b.external_id!,
          workspaceId: b.workspace_id ?? '',
        });
        if (userId === undefined)
          throw new AppError('not_found', `no user has linked ${b.platform} account ${b.external_id}`);
      } else if (!engine.hasUser(userId)) {
        throw new AppError('not_found', `unknown user ${userId}`);
      }
      const last = deps.decay[deps.decay.length - 1];
      const applied = last !== undefined && at + last.untilMs > now;
      await engine.reportMapped(userId, b.platform, signalPresence(b.kind, Math.min(at, now), deps.decay), 0);
      void reply.code(202).send({ user_id: userId, applied });
    },
  );
}
