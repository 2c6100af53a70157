/**
 * @module bench/http
 * HTTP figures: `GET /v1/presence` with 100 ids against a Fastify route in the same server that
 * returns a static JSON body of the same size (the ceiling), both loaded by autocannon running
 * in a separate process. The two alternate for a few rounds and the medians are reported: on a
 * shared 2-core machine one run of either can be off by a third.
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

import { parseEnv } from '../src/config/env';
import type { NormalizedState } from '../src/core/presence';
import { createService } from '../src/main';
import { fmt, type Figure } from './engine';
import type { LoadResult, LoadSpec } from './load';

const run = promisify(execFile);
const LOAD = resolve(__dirname, 'load.ts');
const ROUNDS = 9;

let specs = 0;
async function load(dir: string, spec: LoadSpec): Promise<LoadResult> {
  // The spec goes through a file: a thousand id lists are more than one argument may hold.
  const file = join(dir, `load-${++specs}.json`);
  writeFileSync(file, JSON.stringify(spec));
  const { stdout } = await run(process.execPath, ['--require', require.resolve('tsx/cjs'), LOAD, file], {
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout) as LoadResult;
}

const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const state = (status: 'online' | 'busy' | 'idle', raw: unknown, label: string): NormalizedState => ({
  status,
  activity: null,
  customStatus: null,
  source: 'app',
  raw,
  label,
});

export async function benchHttp(seconds = 3): Promise<Figure[]> {
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
    const headers = { authorization: `Bearer ${svc.keys.create(['read'], 'bench').key}` };
    const ceilingSpec: LoadSpec = { url: `${base}/bench/static`, seconds };
    const presenceSpec: LoadSpec = { url: `${base}/v1/presence?user_ids=${ids}`, headers, seconds };
    // A thousand different lists: more than the batch memo holds, so every request assembles afresh.
    let seed = 7;
    const paths = Array.from({ length: 1000 }, () => {
      const list = Array.from({ length: 100 }, () => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return `user-${seed % users}`;
      });
      return `/v1/presence?user_ids=${list.join(',')}`;
    });

    await load(dir, { ...ceilingSpec, seconds: 2 }); // warm up both paths
    await load(dir, { ...presenceSpec, seconds: 2 });
    const ceilings: LoadResult[] = [];
    const presences: LoadResult[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Alternating which goes first cancels a drift in the machine's speed across the rounds.
      if (round % 2 === 0) ceilings.push(await load(dir, ceilingSpec));
      presences.push(await load(dir, presenceSpec));
      if (round % 2 === 1) ceilings.push(await load(dir, ceilingSpec));
    }
    const varied = await load(dir, { ...presenceSpec, paths });
    const ceiling = median(ceilings.map((r) => r.rps));
    const ratio = median(presences.map((r, i) => r.rps / ceilings[i]!.rps));
    const line = (rs: readonly LoadResult[]) => {
      const failed = rs.reduce((n, r) => n + r.failed, 0);
      return `${fmt(median(rs.map((r) => r.rps)))} req/s, p99 ${median(rs.map((r) => r.p99))} ms${failed > 0 ? `, ${failed} failed` : ''}`;
    };
    return [
      {
        name: `GET /v1/presence, the same 100 ids (${fmt(staticBody.length)} B body)`,
        value: line(presences),
      },
      { name: '  static JSON route, same body (ceiling)', value: line(ceilings) },
      {
        name: `  share of the ceiling (median of ${ROUNDS} rounds)`,
        value: `${(100 * ratio).toFixed(0)} %`,
        target: '≥ 75 %',
      },
      { name: 'GET /v1/presence, a different 100 ids each time', value: line([varied]) },
      { name: '  share of the ceiling', value: `${((100 * varied.rps) / ceiling).toFixed(0)} %` },
    ];
  } finally {
    await svc.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
