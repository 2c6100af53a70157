/**
 * @module bench/http
 * HTTP figures, each next to a reference served in the same run, loaded by autocannon in a
 * separate process (64 connections), in rounds that alternate the candidate with its references:
 *
 * - `GET /v1/presence` with 100 ids (the same list, or 100 uniformly random ids of 100,000 users
 *   made afresh for every request) against a route that sends the same bytes, prepared once.
 * - `POST /v1/heartbeats` (refreshes, and heartbeats that each change the state) against a bare
 *   Fastify server with the same body schema and nothing else, and against the Redis design
 *   (HSET + SETEX + PUBLISH, bench/redis.ts) behind a route of the same app, so with the same
 *   auth, hooks and validation.
 *
 * Each figure also shows the CPU time the servers (this process) spent per request, which does not
 * depend on how much of the machine the load generator got; the refresh persistence a heartbeat
 * run leaves behind is done right after it and counted in its time and CPU.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { devNull, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';

import Fastify, { type FastifyInstance } from 'fastify';
import { validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import pino from 'pino';
import { z } from 'zod';

import { parseEnv } from '../src/config/env';
import type { NormalizedState } from '../src/core/presence';
import { LOG_REDACT } from '../src/http/app';
import { HeartbeatBody } from '../src/http/routes/heartbeats';
import { createService } from '../src/main';
import type { LoadResult, LoadSpec } from './load';
import { RedisDesign } from './redis';
import { alternate, fmt, median, processCpu, ratioOf, ratios, type Figure } from './stats';

const run = promisify(execFile);
const LOAD = resolve(__dirname, 'load.ts');
const ROUNDS = Number(process.env.PRESENCE_BENCH_ROUNDS ?? 5);
const USERS = 100_000;

/** A load run's result, with the CPU time the server spent per request in it. */
export interface Measured extends LoadResult {
  readonly cpuUs: number;
}

/**
 * CPU time (µs) used so far by the server: this process, or another one (`pid`, from /proc:
 * processCpu).
 */
export function serverCpuUs(pid: number | undefined): number {
  if (pid === undefined) {
    const u = process.cpuUsage();
    return u.user + u.system;
  }
  const { user, system } = processCpu(pid);
  return (user + system) * 1e6;
}

let specs = 0;
export async function load(dir: string, spec: LoadSpec): Promise<Measured> {
  const file = join(dir, `load-${++specs}.json`);
  writeFileSync(file, JSON.stringify(spec));
  // The load runs in a child: the server's CPU time over the run is what serving cost (timers
  // such as the refresh persister included). Unlike req/s, it does not depend on how much of the
  // 2 cores the load generator got.
  const cpu = serverCpuUs(spec.serverPid);
  const { stdout } = await run(process.execPath, ['--require', require.resolve('tsx/cjs'), LOAD, file], {
    maxBuffer: 1024 * 1024,
  });
  const used = serverCpuUs(spec.serverPid) - cpu;
  const r = JSON.parse(stdout) as LoadResult;
  return { ...r, cpuUs: used / Math.max(1, r.requests) };
}

const state = (status: 'online' | 'busy' | 'idle', raw: unknown, label: string): NormalizedState => ({
  status,
  activity: null,
  customStatus: null,
  source: 'app',
  raw,
  label,
});

/**
 * Work a run leaves behind that belongs to it: the refreshes a heartbeat run made are written by
 * the engine's persister every 5 s, which would otherwise land in whichever run comes next (a
 * reference's). It is done right after the run, and its time and CPU are counted in the run's.
 */
export type Leftover = () => Promise<unknown>;

/** Runs each spec once a round, rotating the order; every result kept. */
export async function rounds(
  dir: string,
  specsToRun: readonly (LoadSpec | readonly [LoadSpec, Leftover])[],
): Promise<Measured[][]> {
  const results = specsToRun.map((): Measured[] => []);
  await alternate(
    ROUNDS,
    specsToRun.map((entry, i) => async () => {
      const [spec, leftover] = 'url' in entry ? [entry, undefined] : entry;
      let r = await load(dir, spec);
      if (leftover !== undefined) {
        const cpu = process.cpuUsage();
        const t0 = performance.now();
        await leftover();
        const ms = performance.now() - t0;
        const used = process.cpuUsage(cpu);
        r = {
          ...r,
          rps: r.requests / (spec.seconds + ms / 1000),
          cpuUs: r.cpuUs + (used.user + used.system) / Math.max(1, r.requests),
        };
      }
      results[i]!.push(r);
      return r.rps;
    }),
  );
  return results;
}

export function line(rs: readonly Measured[]): string {
  const failed = rs.reduce((n, r) => n + r.failed, 0);
  const cpu = median(rs.map((r) => r.cpuUs));
  return `${fmt(median(rs.map((r) => r.rps)))} req/s, p99 ${median(rs.map((r) => r.p99))} ms, server CPU ${cpu.toFixed(0)} µs/req${failed > 0 ? `, ${failed} FAILED` : ''}`;
}

export function coverage(rs: readonly Measured[], of: number): string {
  const distinct = median(rs.map((r) => r.distinct ?? 0));
  const draws = median(rs.map((r) => r.draws ?? 0));
  const expected = of * (1 - Math.pow(1 - 1 / of, draws));
  return `${fmt(distinct)} of ${fmt(of)} ids a round (${fmt(draws)} drawn; uniform: ${fmt(expected)})`;
}

export function compare(
  name: string,
  candidate: readonly Measured[],
  refName: string,
  reference: readonly Measured[],
  target: number | undefined,
  cover: string | undefined,
): Figure {
  const ratio = ratioOf(
    ratios(
      candidate.map((r) => r.rps),
      reference.map((r) => r.rps),
    ),
  );
  return {
    name,
    value: line(candidate),
    reference: { name: refName, value: line(reference), ratio },
    ...(cover === undefined ? {} : { coverage: cover }),
    ...(target === undefined ? {} : { target: `≥ ${target}×`, met: ratio.median >= target }),
  };
}

/**
 * The logger as `serve` ships it (pino at info, secrets redacted, the default access log: only
 * failed and slow requests get a line), written to /dev/null: its hooks and per-request child are
 * part of what every request costs, and nothing should reach the bench's own output.
 */
export function quietLogger(): pino.Logger {
  return pino(
    { level: 'info', redact: { paths: LOG_REDACT, censor: '[redacted]' } },
    pino.destination({ dest: devNull, sync: true }),
  );
}

/**
 * The Redis design behind a route of the service's own app (`POST /bench/redis/heartbeats`), so
 * with the same auth, hooks and body validation as `POST /v1/heartbeats`.
 */
export function addRedisRoute(app: FastifyInstance, redis: RedisDesign): void {
  app
    .withTypeProvider<ZodTypeProvider>()
    .post(
      '/bench/redis/heartbeats',
      { config: { scope: 'write' }, schema: { body: HeartbeatBody } },
      async (req, reply) => {
        const b = req.body;
        await redis.heartbeat({
          userId: b.user_id,
          deviceId: b.device_id,
          status: b.status,
          activity: b.activity,
          ttlSeconds: b.ttl_seconds,
        });
        await reply.code(204).send(null);
      },
    );
}

/** A Fastify server with the heartbeat route's body schema, compiled the same way, and nothing else. */
async function bareServer(): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify({ logger: false });
  app.setValidatorCompiler<z.ZodType>((route) =>
    validatorCompiler({ ...route, schema: z.compile(route.schema) }),
  );
  app
    .withTypeProvider<ZodTypeProvider>()
    .post('/v1/heartbeats', { schema: { body: HeartbeatBody } }, (_req, reply) => {
      void reply.code(204).send();
    });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return {
    app,
    url: `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`,
  };
}

export async function benchHttp(seconds = 3): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-http-'));
  const env = parseEnv({
    PRESENCE_DB: join(dir, 'http.db'),
    PRESENCE_RATE_LIMIT: '100000000',
    // Signs the viewer token of the viewer read.
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
  });
  const svc = await createService(env, { logger: quietLogger() });
  const redis = await RedisDesign.connect();
  const bare = await bareServer();
  try {
    for (let i = 0; i < USERS; i++) {
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
      // The device the heartbeat load refreshes (its body asks for the same hour-long TTL).
      void svc.engine.heartbeat(id, 'laptop', 'online', null, 3600_000);
      if (i % 2000 === 1999) await svc.engine.flush();
    }
    await svc.engine.flush();
    // Every user's view cached, as in a server that has answered for a while (a refresh or a
    // change drops a view; the heartbeat rounds come after the reads).
    for (let i = 0; i < USERS; i += 1000)
      svc.engine.getManyJson(Array.from({ length: 1000 }, (_, k) => `user-${i + k}`));
    // Privacy for the viewer read: one user in ten hides their last seen from non-contacts, so a
    // viewer's list of 100 holds about ten users whose objects are projected and serialized.
    for (let i = 0; i < USERS; i += 10)
      await svc.privacy.setSettings(`user-${i}`, { ...svc.privacy.defaults, lastSeen: 'contacts' });
    const viewerToken = (await svc.viewerTokens!.issue('user-1', 86_400)).token;
    const sameIds = Array.from({ length: 100 }, (_, i) => `user-${(i * 997) % USERS}`).join(',');
    const staticBody = svc.engine.getManyJson(sameIds.split(','));
    // The ceiling: the same bytes, prepared once, from a route that does nothing but send them.
    svc.app.get('/bench/static', (_req, reply) => {
      void reply.type('application/json; charset=utf-8').send(staticBody);
    });
    if (typeof redis !== 'string') addRedisRoute(svc.app, redis);
    await svc.app.listen({ host: '127.0.0.1', port: 0 });
    const address = svc.app.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    const read = { authorization: `Bearer ${(await svc.keys.create(['read'], 'bench')).key}` };
    const write = { authorization: `Bearer ${(await svc.keys.create(['write'], 'bench')).key}` };

    const ceilingSpec: LoadSpec = { url: `${base}/bench/static`, seconds };
    const sameSpec: LoadSpec = { url: `${base}/v1/presence?user_ids=${sameIds}`, headers: read, seconds };
    const randomSpec: LoadSpec = {
      url: `${base}/v1/presence`,
      headers: read,
      seconds,
      generate: { kind: 'ids', path: '/v1/presence?user_ids=', users: USERS, perList: 100 },
    };
    const heartbeat = (
      url: string,
      path: string,
      mode: 'refresh' | 'change',
      headers: Record<string, string> = write,
    ): LoadSpec => ({
      url: `${url}${path}`,
      headers,
      seconds,
      generate: {
        kind: 'heartbeat',
        path,
        users: USERS,
        mode,
        ...(mode === 'change'
          ? { stateFile: join(dir, `state-${url.split(':')[2]}${path.replace(/\//g, '-')}`) }
          : {}),
      },
    });

    await load(dir, { ...ceilingSpec, seconds: 2 }); // warm up the paths
    const viewerSpec: LoadSpec = { ...randomSpec, headers: { authorization: `Bearer ${viewerToken}` } };
    await load(dir, { ...randomSpec, seconds: 2 });
    await load(dir, { ...viewerSpec, seconds: 2 });
    const [ceiling, same, random, viewer] = await rounds(dir, [
      ceilingSpec,
      sameSpec,
      randomSpec,
      viewerSpec,
    ]);
    const figures: Figure[] = [
      compare(
        `GET /v1/presence, the same 100 ids (${fmt(staticBody.length)} B body)`,
        same!,
        'static route, same bytes',
        ceiling!,
        undefined,
        undefined,
      ),
      compare(
        `GET /v1/presence, 100 random ids of ${fmt(USERS)} users, new each request`,
        random!,
        'static route, same bytes',
        ceiling!,
        0.6,
        coverage(random!, USERS),
      ),
      {
        ...compare(
          `GET /v1/presence as a viewer (viewer token), 100 random ids, one in ten projected`,
          viewer!,
          "the operator's reads of the same kind (API key)",
          random!,
          0.5,
          coverage(viewer!, USERS),
        ),
        note: 'the viewer sees 9 in 10 users in full (sent from the cache) and 1 in 10 without last seen',
      },
    ];

    /** The route just measured against the Redis design's, or why that comparison was skipped. */
    const againstRedis = (
      ours: readonly Measured[],
      theirs: readonly Measured[] | undefined,
      target: number,
    ): Figure =>
      typeof redis === 'string'
        ? { name: '  the same against the Redis design', value: 'skipped', note: redis }
        : {
            ...compare(
              '  the same against the Redis design',
              ours,
              'Redis design route (HSET+SETEX+PUBLISH)',
              theirs!,
              target,
              undefined,
            ),
            note: "server CPU counts this process only, not the Redis server's own",
          };

    const project = heartbeat(base, '/v1/heartbeats', 'refresh');
    const bareSpec = heartbeat(bare.url, '/v1/heartbeats', 'refresh', {});
    const redisRefresh = heartbeat(base, '/bench/redis/heartbeats', 'refresh');
    await load(dir, { ...project, seconds: 2 });
    await svc.engine.persistRefreshes();
    const persisted = [project, () => svc.engine.persistRefreshes()] as const;
    const refreshRuns = await rounds(
      dir,
      typeof redis === 'string' ? [persisted, bareSpec] : [persisted, bareSpec, redisRefresh],
    );
    const [refresh, bareRuns, redisRuns] = refreshRuns;
    figures.push(
      compare(
        'POST /v1/heartbeats, refresh (same state again)',
        refresh!,
        'bare Fastify route, same schema',
        bareRuns!,
        0.8,
        coverage(refresh!, USERS),
      ),
    );
    figures.push(againstRedis(refresh!, redisRuns, 2));
    const changeProject = heartbeat(base, '/v1/heartbeats', 'change');
    const changeRedis = heartbeat(base, '/bench/redis/heartbeats', 'change');
    const changed = [changeProject, () => svc.engine.persistRefreshes()] as const;
    const [changes, bareAgain, redisChanges] = await rounds(
      dir,
      typeof redis === 'string' ? [changed, bareSpec] : [changed, bareSpec, changeRedis],
    );
    figures.push(
      compare(
        'POST /v1/heartbeats, each changing the state (acked after commit)',
        changes!,
        'bare Fastify route, same schema',
        bareAgain!,
        undefined,
        coverage(changes!, USERS),
      ),
    );
    figures.push(againstRedis(changes!, redisChanges, 1.5));
    return figures;
  } finally {
    // The checkpoint worker is unref'd: while it finishes a large WAL, only a timer of ours keeps
    // the process from exiting in the middle of close().
    const alive = setInterval(() => undefined, 1000);
    await bare.app.close();
    if (typeof redis !== 'string') await redis.close();
    await svc.close();
    clearInterval(alive);
    rmSync(dir, { recursive: true, force: true });
  }
}
