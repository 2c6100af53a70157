/**
 * The OpenAPI document at /docs/json: valid OpenAPI 3 by an independent validator
 * (@apidevtools/swagger-parser, which checks it against the official schema and the spec's own
 * rules), complete (every route of the API, the inbound routes included), and true about keys:
 * each operation it marks as needing a key really refuses a request without one, and each it
 * marks public really takes one.
 */

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import SwaggerParser from '@apidevtools/swagger-parser';
import type { OpenAPIV3 } from 'openapi-types';

import { slackInboundRoutes } from '../../src/http/routes/inbound';
import { teamsInboundRoutes } from '../../src/http/routes/inbound';
import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from '../helpers/engine';

const METHODS = ['get', 'put', 'post', 'delete', 'patch'] as const;

let svc: Service;
let cleanup: () => void;
let doc: OpenAPIV3.Document;

beforeAll(async () => {
  const tmp = tmpDir();
  cleanup = tmp.cleanup;
  const clock = new FakeClock();
  svc = await createService(
    parseEnv({
      PRESENCE_DB: join(tmp.dir, 'openapi.db'),
      LOG_LEVEL: 'silent',
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
      WHATSAPP_APP_SECRET: 'app-secret',
      WHATSAPP_VERIFY_TOKEN: 'verify-token',
      ZOOM_WEBHOOK_SECRET_TOKEN: 'zoom-secret',
    }),
    {
      clock,
      logger: false,
      timers: false,
      // Slack's and Teams' inbound routes come with their running connectors, which these tests
      // do not start; mounted here as serve mounts them, so the document shows every route.
      plugins: [
        (app) => slackInboundRoutes(app, { signingSecret: 'slack-secret', clock, handler: () => undefined }),
        (app) =>
          teamsInboundRoutes(app, {
            connector: {
              verifyClientState: () => false,
              handleChangeNotifications: async () => {},
              handleLifecycleNotifications: async () => {},
            },
          }),
      ],
    },
  );
  const res = await svc.app.inject({ url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  doc = JSON.parse(res.body) as OpenAPIV3.Document;
});

afterAll(async () => {
  await svc.close();
  cleanup();
});

function operations(): { method: string; path: string; op: OpenAPIV3.OperationObject }[] {
  const out: { method: string; path: string; op: OpenAPIV3.OperationObject }[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      const op = item?.[method];
      if (op !== undefined) out.push({ method, path, op });
    }
  }
  return out;
}

describe('the OpenAPI document', () => {
  it('is valid OpenAPI 3 according to swagger-parser', async () => {
    expect(doc.openapi).toMatch(/^3\./);
    // validate() dereferences in place: it gets a copy.
    await expect(SwaggerParser.validate(structuredClone(doc))).resolves.toBeDefined();
  });

  it('has no parameter that is not a real name (an object schema spread into parameters)', () => {
    for (const { path, op } of operations()) {
      for (const p of (op.parameters ?? []) as OpenAPIV3.ParameterObject[]) {
        expect({ path, name: p.name, schema: typeof p.schema }).toEqual({
          path,
          name: p.name,
          schema: 'object',
        });
        expect(['type', 'additionalProperties', 'properties']).not.toContain(p.name);
      }
    }
  });

  it('documents the OAuth callback with the parameters a platform sends', () => {
    const params = (doc.paths['/v1/connect/{platform}/callback']?.get?.parameters ??
      []) as OpenAPIV3.ParameterObject[];
    expect(params.map((p) => `${p.in}:${p.name}`).sort()).toEqual([
      'path:platform',
      'query:code',
      'query:error',
      'query:error_description',
      'query:state',
    ]);
  });

  it('lists every route of the API, the inbound routes included', () => {
    const listed = new Set(operations().map(({ method, path }) => `${method.toUpperCase()} ${path}`));
    for (const expected of [
      'GET /v1/presence',
      'POST /v1/presence/query',
      'GET /v1/presence/{user_id}',
      'GET /v1/availability',
      'PUT /v1/presence/{user_id}/override',
      'DELETE /v1/presence/{user_id}/override',
      'POST /v1/heartbeats',
      'POST /v1/signals',
      'GET /v1/presence/{user_id}/history',
      'GET /v1/users',
      'PUT /v1/users/{user_id}',
      'GET /v1/users/{user_id}',
      'DELETE /v1/users/{user_id}',
      'POST /v1/users/{user_id}/accounts',
      'DELETE /v1/users/{user_id}/accounts/{platform}/{external_id}',
      'GET /v1/connect/{platform}',
      'GET /v1/connect/{platform}/callback',
      'GET /v1/connections',
      'DELETE /v1/connections/{id}',
      'GET /v1/connectors',
      'POST /v1/webhooks',
      'GET /v1/webhooks',
      'GET /v1/webhooks/{id}',
      'PATCH /v1/webhooks/{id}',
      'DELETE /v1/webhooks/{id}',
      'GET /v1/webhooks/{id}/deliveries',
      'POST /v1/webhooks/{id}/replay',
      'GET /v1/inbound/{platform}',
      'POST /v1/inbound/{platform}',
      'POST /v1/inbound/slack',
      'POST /v1/inbound/teams',
      'POST /v1/inbound/teams/lifecycle',
      'POST /v1/inbound/zoom',
      'GET /v1/inbound/whatsapp',
      'POST /v1/inbound/whatsapp',
      'GET /healthz',
      'GET /readyz',
      'GET /metrics',
    ]) {
      expect(listed).toContain(expected);
    }
  });

  it('marks exactly the public routes as needing no key', () => {
    expect(doc.security).toEqual([{ apiKey: [] }]);
    const isPublic = (path: string): boolean =>
      ['/healthz', '/readyz', '/metrics', '/v1/connect/{platform}/callback'].includes(path) ||
      path.startsWith('/v1/inbound/');
    for (const { method, path, op } of operations()) {
      const where = `${method} ${path}`;
      if (isPublic(path)) expect({ where, security: op.security }).toEqual({ where, security: [] });
      else {
        expect({ where, security: op.security }).toEqual({ where, security: undefined });
        expect(op.description).toMatch(/Needs an API key with the `(read|write|admin)` scope/);
      }
    }
  });

  it('says what the server does: no key is refused exactly where the document asks for one', async () => {
    const sample: Record<string, string> = {
      user_id: 'alice',
      platform: 'slack',
      external_id: 'U1',
      id: 'x1',
    };
    for (const { method, path, op } of operations()) {
      const url = path.replace(/\{(\w+)\}/g, (_m, name: string) => sample[name] ?? 'x');
      const res = await svc.app.inject({
        method: method.toUpperCase() as 'GET',
        url,
        ...(method === 'get' || method === 'delete' ? {} : { payload: {} }),
      });
      const askedForKey = res.statusCode === 401 && /missing API key/.test(res.body);
      expect({ where: `${method} ${path}`, askedForKey }).toEqual({
        where: `${method} ${path}`,
        askedForKey: op.security === undefined,
      });
    }
  });
});
