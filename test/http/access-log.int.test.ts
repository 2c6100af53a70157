import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';

import type { FastifyInstance } from 'fastify';
import pino from 'pino';

import { parseEnv } from '../../src/config/env';
import { FakeClock } from '../../src/core/clock';
import { lazyChildLogger, LOG_REDACT } from '../../src/http/app';
import { createService, type Service } from '../../src/main';
import { tmpDir } from '../helpers/engine';

interface Line {
  level: number;
  msg: string;
  reqId?: string;
  status?: number;
  route?: string;
  slow?: boolean;
}

const ERROR = 50;
const WARN = 40;
const INFO = 30;

/** Two routes of the test's own: one that fails with a 500, one that takes at least `slowMs`. */
function testRoutes(slowMs: number): (app: FastifyInstance) => void {
  return (app) => {
    app.get('/test/boom', () => {
      throw new Error('the handler broke');
    });
    // Waits for its own elapsed time to pass the threshold (a condition, not a fixed sleep).
    app.get('/test/slow', async (_req, reply) => {
      while (reply.elapsedTime <= slowMs) await nextTurn();
      return { ok: true };
    });
  };
}

async function start(env: Record<string, string>): Promise<{
  svc: Service;
  lines: Line[];
  key: string;
  close: () => Promise<void>;
}> {
  const tmp = tmpDir();
  const lines: Line[] = [];
  const logger = pino(
    { level: 'info', redact: { paths: LOG_REDACT, censor: '[redacted]' } },
    { write: (text: string) => lines.push(JSON.parse(text) as Line) },
  );
  const parsed = parseEnv({ PRESENCE_DB: join(tmp.dir, 'log.db'), ...env });
  const svc = await createService(parsed, {
    clock: new FakeClock(),
    logger,
    timers: false,
    plugins: [testRoutes(parsed.PRESENCE_SLOW_REQUEST_MS)],
  });
  const key = (await svc.keys.create(['read', 'write'], 'test')).key;
  return {
    svc,
    lines,
    key,
    close: async () => {
      await svc.close();
      tmp.cleanup();
    },
  };
}

const accessLines = (lines: readonly Line[]): Line[] => lines.filter((l) => l.msg === 'request completed');

describe('access log', () => {
  it('writes nothing for a request that succeeds in time, yet counts it in /metrics', async () => {
    // A threshold no request on a loaded machine reaches: this test is about the default rule.
    const t = await start({ PRESENCE_SLOW_REQUEST_MS: '600000' });
    try {
      const auth = { authorization: `Bearer ${t.key}` };
      const hb = await t.svc.app.inject({
        method: 'POST',
        url: '/v1/heartbeats',
        headers: auth,
        payload: { user_id: 'ann', device_id: 'laptop' },
      });
      expect(hb.statusCode).toBe(204);
      const read = await t.svc.app.inject({ url: '/v1/presence?user_ids=ann', headers: auth });
      expect(read.statusCode).toBe(200);
      expect(accessLines(t.lines)).toEqual([]);
      const metrics = await t.svc.app.inject({ url: '/metrics' });
      expect(metrics.body).toMatch(
        /http_requests_total\{method="POST",route="\/v1\/heartbeats",status_code="204"\} 1/,
      );
    } finally {
      await t.close();
    }
  });

  it('logs a 5xx at error level and a 4xx at info, each with its request id', async () => {
    const t = await start({ PRESENCE_SLOW_REQUEST_MS: '600000' });
    try {
      const boom = await t.svc.app.inject({ url: '/test/boom', headers: { 'x-request-id': 'req-boom' } });
      expect(boom.statusCode).toBe(500);
      const denied = await t.svc.app.inject({
        url: '/v1/presence?user_ids=ann',
        headers: { 'x-request-id': 'req-denied' },
      });
      expect(denied.statusCode).toBe(401);
      const bad = await t.svc.app.inject({
        method: 'POST',
        url: '/v1/heartbeats',
        headers: { authorization: `Bearer ${t.key}`, 'x-request-id': 'req-bad' },
        payload: { user_id: 'ann' },
      });
      expect(bad.statusCode).toBe(400);
      const lines = accessLines(t.lines);
      expect(lines).toEqual([
        expect.objectContaining({ level: ERROR, reqId: 'req-boom', status: 500, route: '/test/boom' }),
        expect.objectContaining({ level: INFO, reqId: 'req-denied', status: 401, route: '/v1/presence' }),
        expect.objectContaining({ level: INFO, reqId: 'req-bad', status: 400, route: '/v1/heartbeats' }),
      ]);
      // The failure itself is logged too, with its stack, under the same request id.
      expect(t.lines).toContainEqual(
        expect.objectContaining({ level: ERROR, reqId: 'req-boom', msg: 'unhandled error' }),
      );
      // Never the key, also on a failed request.
      expect(JSON.stringify(t.lines)).not.toContain(t.key);
    } finally {
      await t.close();
    }
  });

  it('logs a slow request at warn level with its request id', async () => {
    const t = await start({ PRESENCE_SLOW_REQUEST_MS: '25' });
    try {
      const res = await t.svc.app.inject({ url: '/test/slow', headers: { 'x-request-id': 'req-slow' } });
      expect(res.statusCode).toBe(200);
      const lines = accessLines(t.lines).filter((l) => l.reqId === 'req-slow');
      expect(lines).toEqual([
        expect.objectContaining({ level: WARN, status: 200, slow: true, route: '/test/slow' }),
      ]);
    } finally {
      await t.close();
    }
  });

  it('logs every request with PRESENCE_ACCESS_LOG=all', async () => {
    const t = await start({ PRESENCE_ACCESS_LOG: 'all', PRESENCE_SLOW_REQUEST_MS: '600000' });
    try {
      const auth = { authorization: `Bearer ${t.key}` };
      for (const id of ['req-1', 'req-2', 'req-3']) {
        const res = await t.svc.app.inject({
          method: 'POST',
          url: '/v1/heartbeats',
          headers: { ...auth, 'x-request-id': id },
          payload: { user_id: 'ann', device_id: 'laptop' },
        });
        expect(res.statusCode).toBe(204);
      }
      expect(accessLines(t.lines)).toEqual(
        ['req-1', 'req-2', 'req-3'].map((reqId) =>
          expect.objectContaining({ level: INFO, reqId, status: 204, route: '/v1/heartbeats' }),
        ),
      );
    } finally {
      await t.close();
    }
  });
});

describe('the per-request logger', () => {
  it('is made from the parent only when something logs through it, with its bindings', () => {
    const lines: Line[] = [];
    const parent = pino({ level: 'info' }, { write: (text: string) => lines.push(JSON.parse(text) as Line) });
    let made = 0;
    const child = parent.child.bind(parent);
    parent.child = ((...args: Parameters<typeof child>) => {
      made += 1;
      return child(...args);
    }) as typeof parent.child;
    const log = lazyChildLogger(parent, { reqId: 'req-lazy' }, {});
    expect(log.level).toBe('info');
    expect(made).toBe(0);
    log.info({ a: 1 }, 'first');
    log.warn('second');
    expect(made).toBe(1);
    expect(lines).toEqual([
      expect.objectContaining({ reqId: 'req-lazy', msg: 'first', level: INFO }),
      expect.objectContaining({ reqId: 'req-lazy', msg: 'second', level: WARN }),
    ]);
  });
});
