/**
 * @module http/routes/inbound
 * The OpenAPI entry of `/v1/inbound/{platform}`, where platforms push to this service. Each
 * platform's own route (registered by its connector when its verification secret is set) has its
 * own entry too; this one describes the family, so the document lists the inbound routes whatever
 * the configuration, and answers 404 naming the missing variable for a platform that is off.
 */

import { z } from 'zod';

import { ErrorBody } from '../schemas';

export const INBOUND_FALLBACK_SCHEMA = {
  summary: 'Platform pushes (no API key; each verified by its platform)',
  description: [
    'Where platforms deliver events. No API key: each request is verified by its platform’s own scheme.',
    '',
    '| platform | method and path | verified by | needs |',
    '| --- | --- | --- | --- |',
    '| slack | `POST /v1/inbound/slack` | `X-Slack-Signature` (v0, HMAC-SHA256, 5-minute window) | `SLACK_SIGNING_SECRET` |',
    '| teams | `POST /v1/inbound/teams`, `POST /v1/inbound/teams/lifecycle` | `validationToken` handshake, then `clientState` per item | Teams credentials (`MS_TENANT_ID`, `MS_CLIENT_ID`, `MS_CLIENT_SECRET`) |',
    '| zoom | `POST /v1/inbound/zoom` | `x-zm-signature` (v0, HMAC-SHA256) and `endpoint.url_validation` | `ZOOM_WEBHOOK_SECRET_TOKEN` |',
    '| whatsapp | `GET /v1/inbound/whatsapp` (handshake), `POST /v1/inbound/whatsapp` | `hub.verify_token`, then `X-Hub-Signature-256` | `WHATSAPP_APP_SECRET` (and `WHATSAPP_VERIFY_TOKEN` for the handshake) |',
    '',
    'A platform whose variable is not set answers 404 `not_found`, naming the variable to set.',
    'Routes of configured platforms appear in this document under their own paths.',
  ].join('\n'),
  tags: ['inbound'],
  params: z.object({
    platform: z.string().describe('slack, teams, zoom or whatsapp'),
  }),
  response: { 404: ErrorBody },
};
