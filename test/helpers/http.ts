import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import type { InjectOptions, LightMyRequestResponse } from 'fastify';

import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { createService, type Service } from '../../src/main';
import { tmpDir } from './engine';

export interface TestApi {
  svc: Service;
  clock: FakeClock;
  /** Keys with one scope each, and one with all three. */
  key: { read: string; write: string; admin: string; all: string };
  /** inject() with `Authorization: Bearer <key>` (the all-scopes key unless told). */
  call(options: InjectOptions & { key?: string | null }): Promise<LightMyRequestResponse>;
  /** call() with a body sent byte for byte as given (bad JSON, odd bytes), JSON content type unless told. */
  sendRaw(
    method: 'POST' | 'PUT',
    url: string,
    payload: string | Buffer,
    contentType?: string,
  ): Promise<LightMyRequestResponse>;
  json<T = any>(res: LightMyRequestResponse): T;
  close(): Promise<void>;
}

/** `clock` defaults to a FakeClock at 2026-11-23T14:00Z; webhook tests that verify timestamps pass real time. */
export async function testApi(env: Record<string, string> = {}, clock = new FakeClock()): Promise<TestApi> {
  const tmp = tmpDir();
  // A key of its own for the OAuth token vault, unless the test says otherwise ('' turns it off).
  const secret = { PRESENCE_SECRET_KEY: randomBytes(32).toString('base64') };
  const svc = await createService(
    parseEnv({ PRESENCE_DB: join(tmp.dir, 'api.db'), LOG_LEVEL: 'silent', ...secret, ...env }),
    {
      clock,
      logger: false,
      timers: false,
    },
  );
  const key = {
    read: (await svc.keys.create(['read'], 'read')).key,
    write: (await svc.keys.create(['write'], 'write')).key,
    admin: (await svc.keys.create(['admin'], 'admin')).key,
    all: (await svc.keys.create(['read', 'write', 'admin'], 'all')).key,
  };
  const call: TestApi['call'] = ({ key: k, headers, ...rest }) =>
    svc.app.inject({
      ...rest,
      headers: { ...(k === null ? {} : { authorization: `Bearer ${k ?? key.all}` }), ...headers },
    });
  return {
    svc,
    clock,
    key,
    call,
    sendRaw: (method, url, payload, contentType = 'application/json') =>
      call({ method, url, payload, headers: { 'content-type': contentType } }),
    json: (res) => JSON.parse(res.body),
    close: async () => {
      await svc.close();
      tmp.cleanup();
    },
  };
}

/** The error body of the contract, checked whole. */
export function expectError(res: LightMyRequestResponse, status: number, code: string): void {
  expect(res.statusCode).toBe(status);
  const body = JSON.parse(res.body) as {
    error: { code: string; message: string; request_id: string; details: unknown[] };
  };
  expect(body.error.code).toBe(code);
  expect(typeof body.error.message).toBe('string');
  expect(body.error.message.length).toBeGreaterThan(0);
  expect(body.error.request_id).toBe(res.headers['x-request-id']);
  expect(Array.isArray(body.error.details)).toBe(true);
}
