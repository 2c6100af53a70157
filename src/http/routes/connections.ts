/**
 * @module http/routes/connections
 * OAuth connections (admin scope): start an authorize flow, the platform's callback (public: the
 * single-use state protects it), list, show and delete connections.
 */

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';

import type { ConnectionService, ConnectionView } from '../../oauth/service';
import { COMMON_ERRORS, ErrorBody, IsoTime, UserId } from '../schemas';

/** A callback query value: a platform's code, state or error text. */
const CallbackText = z.string().max(4096);

const ConnectionSchema = z.object({
  id: z.string(),
  platform: z.string(),
  kind: z.enum(['user', 'app']),
  user_id: z.string().nullable(),
  external_id: z.string(),
  workspace_id: z.string().nullable(),
  scopes: z.array(z.string()),
  health: z.enum(['ok', 'refreshing', 'reauth_required', 'revoked', 'error']),
  last_error: z.string().nullable(),
  last_error_at: IsoTime.nullable(),
  next_retry_at: IsoTime.nullable(),
  expires_at: IsoTime.nullable(),
  grant_expires_at: IsoTime.nullable(),
  expires_soon: z.boolean(),
  refreshable: z.boolean(),
  refreshed_at: IsoTime.nullable(),
  created_at: IsoTime,
  updated_at: IsoTime,
});

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** What a person sees in the browser after granting access. */
function connectedPage(c: ConnectionView): string {
  const who = `${c.platform} account ${c.external_id}${c.workspace_id ? ` (${c.workspace_id})` : ''}`;
  return `<!doctype html><meta charset="utf-8"><title>Connected</title><body style="font-family:sans-serif;margin:3em"><h1>Connected</h1><p>${escapeHtml(who)} is now linked to ${escapeHtml(c.user_id ?? '')}. You can close this window.</p></body>`;
}

export function connectionRoutes(app: FastifyInstance, connections: ConnectionService): void {
  const r = app.withTypeProvider<ZodTypeProvider>();
  const Platform = z.string().regex(/^[a-z]{2,16}$/, 'a platform name such as slack');

  r.get(
    '/v1/connect/:platform',
    {
      config: { scope: 'admin' },
      schema: {
        summary:
          "Start OAuth: 302 to the platform's authorize URL (state and PKCE where the platform takes it)",
        description: 'Send `Accept: application/json` to get the URL in a body instead of a redirect.',
        tags: ['connections'],
        params: z.strictObject({ platform: Platform }),
        querystring: z.strictObject({
          user_id: UserId,
          redirect_uri: z.url({ protocol: /^https?$/ }).optional(),
        }),
        response: {
          200: z.object({
            url: z.string(),
            state: z.string(),
            redirect_uri: z.string(),
            pkce: z.boolean(),
            expires_at: IsoTime,
          }),
          302: z.null(),
          404: ErrorBody,
          ...COMMON_ERRORS,
        },
      },
    },
    async (req, reply) => {
      const start = await connections.startAuthorize(
        req.params.platform,
        req.query.user_id,
        req.query.redirect_uri,
      );
      if ((req.headers.accept ?? '').includes('application/json')) {
        return reply.send({
          url: start.url,
          state: start.state,
          redirect_uri: start.redirect_uri,
          pkce: start.pkce,
          expires_at: start.expires_at,
        });
      }
      return reply.redirect(start.url, 302);
    },
  );

  r.get(
    '/v1/connect/:platform/callback',
    {
      schema: {
        summary: 'Finish OAuth: exchange the code, store the tokens encrypted, link the account',
        tags: ['connections'],
        security: [],
        params: z.strictObject({ platform: Platform }),
        // The names the flow reads are listed so the document shows them; platforms add others
        // (Microsoft's session_state, Discord's guild_id), which are accepted and ignored.
        querystring: z
          .object({
            code: CallbackText.optional().describe('the authorization code, when the person agreed'),
            state: CallbackText.optional().describe('the single-use state this service issued'),
            error: CallbackText.optional().describe(
              'set by the platform when the person refused or it failed',
            ),
            error_description: CallbackText.optional().describe("the platform's explanation of `error`"),
          })
          .catchall(CallbackText),
        response: { 200: ConnectionSchema, 400: ErrorBody, 403: ErrorBody, 409: ErrorBody },
      },
    },
    async (req, reply) => {
      const connection = await connections.completeCallback(req.params.platform, req.query);
      if ((req.headers.accept ?? '').includes('text/html')) {
        void reply.type('text/html; charset=utf-8').send(connectedPage(connection) as never);
        return;
      }
      void reply.send(connection);
    },
  );

  r.get(
    '/v1/connections',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Connections with health and expiry (never tokens)',
        tags: ['connections'],
        querystring: z.strictObject({ user_id: UserId.optional(), platform: Platform.optional() }),
        response: { 200: z.object({ connections: z.array(ConnectionSchema) }), ...COMMON_ERRORS },
      },
    },
    async (req) => ({ connections: await connections.list(req.query) }),
  );

  r.get(
    '/v1/connections/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'One connection',
        tags: ['connections'],
        params: z.strictObject({ id: z.string().min(1).max(64) }),
        response: { 200: ConnectionSchema, 404: ErrorBody, ...COMMON_ERRORS },
      },
    },
    (req) => connections.get(req.params.id),
  );

  r.delete(
    '/v1/connections/:id',
    {
      config: { scope: 'admin' },
      schema: {
        summary: 'Revoke at the platform where it can be, and delete the tokens',
        tags: ['connections'],
        params: z.strictObject({ id: z.string().min(1).max(64) }),
        response: {
          200: z.object({
            id: z.string(),
            deleted: z.literal(true),
            revoke_supported: z.boolean(),
            revoked_at_platform: z.boolean(),
            revoke_error: z.string().nullable(),
          }),
          404: ErrorBody,
          ...COMMON_ERRORS,
        },
      },
    },
    (req) => connections.deleteConnection(req.params.id),
  );
}
