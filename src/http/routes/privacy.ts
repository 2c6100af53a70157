/**
 * @module http/routes/privacy
 * Viewer tokens, and each user's privacy settings, contacts and blocks (README, Viewers and
 * privacy). Operator routes: they need an API key, never a viewer token.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import { AppError } from '../../core/errors';
import { toIso } from '../../core/time';
import { VISIBILITIES, type PrivacySettings } from '../../privacy/project';
import type { PrivacyService } from '../../privacy/service';
import {
  VIEWER_TOKEN_DEFAULT_TTL_S,
  VIEWER_TOKEN_MAX_TTL_S,
  type ViewerTokens,
} from '../../privacy/viewer-tokens';
import { COMMON_ERRORS, ErrorBody, IsoTime, UserId } from '../schemas';
import { UserParams } from './presence';

export interface PrivacyDeps {
  readonly service: PrivacyService;
  /** Null without PRESENCE_SECRET_KEY (tokens are signed with a key derived from it). */
  readonly tokens: ViewerTokens | null;
  readonly hasUser: (userId: string) => boolean;
}

export const MAX_LIST = 10_000;

const Visibility = z.enum(VISIBILITIES);

const SettingsBody = z.strictObject({
  presence: Visibility.optional(),
  last_seen: Visibility.optional(),
  details: Visibility.optional(),
  reciprocal: z.boolean().optional(),
});

const SettingsView = z.object({
  presence: Visibility,
  last_seen: Visibility,
  details: Visibility,
  reciprocal: z.boolean(),
});

const IdList = z.strictObject({ user_ids: z.array(UserId).max(MAX_LIST, `at most ${MAX_LIST} user ids`) });
const IdListView = z.object({ user_ids: z.array(z.string()) });
const OtherParams = z.strictObject({ user_id: UserId, other_id: UserId });

const settingsView = (s: PrivacySettings): z.infer<typeof SettingsView> => ({
  presence: s.presence,
  last_seen: s.lastSeen,
  details: s.details,
  reciprocal: s.reciprocal,
});

export function privacyRoutes(app: FastifyInstance, deps: PrivacyDeps): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const { service } = deps;

  const known = (id: string): void => {
    if (!deps.hasUser(id)) throw new AppError('not_found', `unknown user ${id}`);
  };
  /** A list naming its own user would mean nothing (one always sees oneself): refused. */
  const notSelf = (id: string, ids: readonly string[], what: string): void => {
    const at = ids.indexOf(id);
    if (at >= 0)
      throw new AppError('invalid_request', `a user cannot be their own ${what}`, [
        { code: 'invalid_value', message: `${id} is the user itself`, path: ['body', 'user_ids', at] },
      ]);
  };
  const tokens = (): ViewerTokens => {
    if (deps.tokens === null)
      throw new AppError('not_found', 'viewer tokens are off: set PRESENCE_SECRET_KEY (it signs them)');
    return deps.tokens;
  };

  r.post(
    '/v1/viewer-tokens',
    {
      config: { scope: 'write' },
      schema: {
        summary: "A viewer token for an end user's app",
        description: `Bound to one user: reads presence as that user sees it (REST and stream) and acts as that user's devices; nothing else. Default TTL ${VIEWER_TOKEN_DEFAULT_TTL_S} s, at most ${VIEWER_TOKEN_MAX_TTL_S} s.`,
        tags: ['privacy'],
        body: z.strictObject({
          user_id: UserId,
          ttl_seconds: z.number().int().min(1).max(VIEWER_TOKEN_MAX_TTL_S).optional(),
        }),
        response: {
          201: z.object({ token: z.string(), expires_at: IsoTime }),
          404: ErrorBody,
          ...COMMON_ERRORS,
        },
      },
    },
    async (req, reply) => {
      known(req.body.user_id);
      const issued = await tokens().issue(
        req.body.user_id,
        req.body.ttl_seconds ?? VIEWER_TOKEN_DEFAULT_TTL_S,
      );
      void reply.code(201);
      return { token: issued.token, expires_at: toIso(issued.expiresAt) };
    },
  );

  r.delete(
    '/v1/users/:user_id/viewer-tokens',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Revoke every viewer token of the user (the next one issued works)',
        tags: ['privacy'],
        params: UserParams,
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      known(req.params.user_id);
      await tokens().revoke(req.params.user_id);
      await reply.code(204).send(null);
    },
  );

  r.get(
    '/v1/users/:user_id/privacy',
    {
      config: { scope: 'read' },
      schema: {
        summary: "The user's privacy settings (the defaults until set)",
        tags: ['privacy'],
        params: UserParams,
        response: { 200: SettingsView, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    (req) => {
      known(req.params.user_id);
      return settingsView(service.of(req.params.user_id).settings);
    },
  );

  r.put(
    '/v1/users/:user_id/privacy',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Set who sees the presence, last seen and details of the user',
        description:
          'Each of presence, last_seen, details is everyone, contacts or nobody; a field left out takes the default (PRESENCE_DEFAULT_VISIBILITY; reciprocal false).',
        tags: ['privacy'],
        params: UserParams,
        body: SettingsBody,
        response: { 200: SettingsView, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req) => {
      const id = req.params.user_id;
      known(id);
      const d = service.defaults;
      const b = req.body;
      return settingsView(
        await service.setSettings(id, {
          presence: b.presence ?? d.presence,
          lastSeen: b.last_seen ?? d.lastSeen,
          details: b.details ?? d.details,
          reciprocal: b.reciprocal ?? d.reciprocal,
        }),
      );
    },
  );

  const listRoutes = (
    path: 'contacts' | 'blocked',
    what: string,
    get: (id: string) => ReadonlySet<string>,
    set: (id: string, ids: readonly string[]) => Promise<string[]>,
  ): void => {
    r.get(
      `/v1/users/:user_id/${path}`,
      {
        config: { scope: 'read' },
        schema: {
          summary: `The user's ${path === 'contacts' ? 'contacts' : 'blocked users'}`,
          tags: ['privacy'],
          params: UserParams,
          response: { 200: IdListView, 404: ErrorBody, ...COMMON_ERRORS },
        },
      },
      (req) => {
        known(req.params.user_id);
        return { user_ids: [...get(req.params.user_id)] };
      },
    );
    r.put(
      `/v1/users/:user_id/${path}`,
      {
        config: { scope: 'write' },
        schema: {
          summary: `Replace the user's ${path === 'contacts' ? "contacts (one-way: they count as this user's contacts when they look at this user)" : 'blocked users (they see nothing of this user)'}`,
          tags: ['privacy'],
          params: UserParams,
          body: IdList,
          response: { 200: IdListView, 404: ErrorBody, ...COMMON_ERRORS },
        },
      },
      async (req) => {
        const id = req.params.user_id;
        known(id);
        notSelf(id, req.body.user_ids, what);
        return { user_ids: await set(id, req.body.user_ids) };
      },
    );
  };
  listRoutes(
    'contacts',
    'contact',
    (id) => service.of(id).contacts,
    (id, ids) => service.setContacts(id, ids),
  );
  listRoutes(
    'blocked',
    'blocked user',
    (id) => service.of(id).blocked,
    (id, ids) => service.setBlocked(id, ids),
  );

  r.post(
    '/v1/users/:user_id/contacts/:other_id',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Add one contact (idempotent)',
        tags: ['privacy'],
        params: OtherParams,
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      const { user_id: id, other_id: other } = req.params;
      known(id);
      if (other === id) throw new AppError('invalid_request', 'a user cannot be their own contact');
      await service.addContact(id, other);
      await reply.code(204).send(null);
    },
  );

  r.delete(
    '/v1/users/:user_id/contacts/:other_id',
    {
      config: { scope: 'write' },
      schema: {
        summary: 'Remove one contact (idempotent)',
        tags: ['privacy'],
        params: OtherParams,
        response: { 204: z.null(), 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    async (req, reply) => {
      known(req.params.user_id);
      await service.removeContact(req.params.user_id, req.params.other_id);
      await reply.code(204).send(null);
    },
  );
}
