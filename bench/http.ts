/**
 * @module bench/http
 * HTTP figures: `GET /v1/presence` with 100 ids against a Fastify route in the same server that
 * returns a static JSON body of the same size (the ceiling), both loaded by autocannon running
 * in a separate process.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { parseEnv } from '../src/config/env';
import type { NormalizedState } from '../src/core/presence';
import { createService } from '../src/main';
import { fmt, type Figure } from './engine';

const run = promisify(execFile);
const AUTOCANNON = resolve(__dirname, '../node_modules/autocannon/autocannon.js');

interface Result {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly non2xx: number;
}

async function load(url: string, headers: Record<string, string>, seconds: number): Promise<Result> {
  const args = [AUTOCANNON, '--json', '-c', '64', '-d', String(seconds)];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const { stdout } = await run(process.execPath, args, { maxBuffer: 64 * 1024 * 1024 });
  const r = JSON.parse(stdout) as {
    requests: { average: number };
    latency: { p50: number; p99: number };
    errors: number;
    non2xx: number;
  };
  return {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    errors: r.errors,
    non2xx: r.non2xx,
  };
}

const state = (status: 'online' | 'busy' | 'idle', raw: unknown, label: string): NormalizedState => ({
  status,
  activity: null,
  customStatus: null,
  source: 'app',
  raw,
  label,
});

export async function benchHttp(seconds = 10): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-http-'));
  let staticBody: Buffer = Buffer.alloc(0);
  const env = parseEnv({
    PRESENCE_DB: join(dir, 'http.db'),
    PRESENCE_RATE_LIMIT: '100000000',
    LOG_LEVEL: 'silent',
  });
  const svc = await createService(env, { logger: false });
  try {
    const users = 10_000;
    for (let i = 0; i < users; i++) {
      const id = `user-${i}`;
      svc.engine.ensureUser(id);
      void svc.engine.report(id, {
        platform: 'slack',
        state: state('online', 'active', 'active'),
        ttlMs: 3600_000,
      });
      void svc.engine.report(id, {
        platform: 'teams',
        state: state('busy', { availability: 'Busy', activity: 'Busy' }, 'Busy/Busy'),
        ttlMs: 3600_000,
      });
      void svc.engine.report(id, {
        platform: 'discord',
        state: state('idle', 'idle', 'idle'),
        ttlMs: 3600_000,
      });
    }
    svc.engine.flushSync();
    const ids = Array.from({ length: 100 }, (_, i) => `user-${(i * 97) % users}`).join(',');
    staticBody = svc.engine.getManyJson(ids.split(','));
    // The ceiling: the same bytes, prepared once, from a route that does nothing but send them.
    svc.app.get('/bench/static', (_req, reply) => {
      void reply.type('application/json; charset=utf-8').send(staticBody);
    });
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const address = svc.app.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    const key = svc.keys.create(['read'], 'bench').key;
    const auth = { authorization: `Bearer ${key}` };

    await load(`${base}/bench/static`, {}, 2); // warm up both paths
    await load(`${base}/v1/presence?user_ids=${ids}`, auth, 2);
    const ceiling = await load(`${base}/bench/static`, {}, seconds);
    const presence = await load(`${base}/v1/presence?user_ids=${ids}`, auth, seconds);
    const ratio = (100 * presence.rps) / ceiling.rps;
    const line = (r: Result) =>
      `${fmt(r.rps)} req/s, p99 ${r.p99} ms${r.errors + r.non2xx > 0 ? `, ${r.errors + r.non2xx} failed` : ''}`;
    return [
      { name: `GET /v1/presence, 100 ids (${fmt(staticBody.length)} B body)`, value: line(presence) },
      { name: '  static JSON route, same body (ceiling)', value: line(ceiling) },
      { name: '  share of the ceiling', value: `${ratio.toFixed(0)} %`, target: '≥ 75 %' },
    ];
  } finally {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
