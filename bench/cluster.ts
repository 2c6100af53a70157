/**
 * @module bench/cluster
 * Several nodes (issue 16): one `presence serve` node of a 2-node deployment (the shipped bin, as
 * child processes, on one PostgreSQL database and one Redis key prefix, both made for the run and
 * removed after), loaded by autocannon (bench/load.ts) in rounds alternating with the single-node
 * service (SQLite file, in this process, as bench/http.ts measures it) and the Redis design
 * (HSET + SETEX + PUBLISH behind a route of that same app):
 *
 * - refresh heartbeats (same state again) on the node vs single-node SQLite, and vs the Redis design;
 * - heartbeats that each change the state (durable: acked after the PostgreSQL commit) per second;
 * - `GET /v1/presence` with 100 uniformly random ids, new each request;
 * - Redis round trips per refresh heartbeat, from the node's /metrics before and after the refresh
 *   rounds (`presence_cluster_expiry_round_trips_total` ÷ `presence_cluster_refresh_heartbeats_total`).
 *
 * The other node takes the loaded node's changes through the log, as in a deployment; the load
 * goes to one node, so each figure is per node. Skipped, with a note, when PostgreSQL
 * (127.0.0.1:5432) or Redis (PRESENCE_BENCH_REDIS_URL) does not answer. PRESENCE_BENCH_CLUSTER_USERS
 * (20,000) sets the users, all seeded with one device before the rounds.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import Redis from 'ioredis';
import pg from 'pg';

import { parseEnv } from '../src/config/env';
import { createService } from '../src/main';
import { cleanEnv, runBin, startServe, type ServeProcess } from '../test/e2e/serve-process';
import { createTestDatabase, pgUrl, type TestDatabase } from '../test/helpers/pg-database';
import {
  addRedisRoute,
  compare,
  coverage,
  load,
  quietLogger,
  rounds,
  serverCpuUs,
  type Leftover,
  type Measured,
} from './http';
import type { LoadSpec } from './load';
import { deletePrefix, RedisDesign } from './redis';
import { fmt, median, type Figure } from './stats';

const USERS = Number(process.env.PRESENCE_BENCH_CLUSTER_USERS ?? 20_000);
/** Seeded devices and refreshes both ask for an hour, so that nothing expires during the run. */
const TTL_S = 3600;

/** One counter of a node's /metrics. */
async function counter(node: ServeProcess, name: string): Promise<number> {
  const res = await fetch(`${node.base}/metrics`, { headers: { authorization: `Bearer ${node.key}` } });
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(await res.text());
  if (m === null) throw new Error(`${name} is not in ${node.base}/metrics`);
  return Number(m[1]);
}

/** One device heartbeat for each of user-0 … user-(USERS-1), 64 in flight: every user known and online. */
async function seedOverHttp(base: string, key: string): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < USERS) {
      const i = next++;
      const res = await fetch(`${base}/v1/heartbeats`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          user_id: `user-${i}`,
          device_id: 'laptop',
          status: 'online',
          ttl_seconds: TTL_S,
        }),
      });
      if (res.status !== 204) throw new Error(`seeding user-${i}: ${res.status} ${await res.text()}`);
    }
  };
  await Promise.all(Array.from({ length: 64 }, worker));
}

/**
 * CPU time (µs) spent so far where the node's work lands besides its own process: the other node
 * (following the changes), the PostgreSQL backends serving this run's database (both nodes'
 * pools; the WAL writer and checkpointer not included) and the Redis server (INFO cpu: the
 * whole server, which other clients of this shared machine's Redis may also use, so an upper bound).
 */
interface Elsewhere {
  readonly other: number;
  /** Per backend pid: a backend that started or ended between two readings is left out of both. */
  readonly postgres: ReadonlyMap<number, number>;
  readonly redis: number;
}

async function elsewhere(otherPid: number, dbName: string, redisInfo: Redis): Promise<Elsewhere> {
  const admin = new pg.Client({ connectionString: pgUrl('postgres') });
  await admin.connect();
  const postgres = new Map<number, number>();
  try {
    const { rows } = await admin.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE datname = $1',
      [dbName],
    );
    for (const { pid } of rows) {
      try {
        postgres.set(pid, serverCpuUs(pid));
      } catch {
        // A backend that ended meanwhile.
      }
    }
  } finally {
    await admin.end();
  }
  const info = await redisInfo.info('cpu');
  const field = (name: string): number => Number(new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1] ?? 0);
  return {
    other: serverCpuUs(otherPid),
    postgres,
    redis: (field('used_cpu_user') + field('used_cpu_sys')) * 1e6,
  };
}

/** "the other node 12 µs, PostgreSQL 80 µs, Redis ≤ 9 µs" per request between two readings. */
function elsewherePer(a: Elsewhere, b: Elsewhere, requests: number): string {
  const per = (x: number): string => (x / Math.max(1, requests)).toFixed(0);
  let postgres = 0;
  for (const [pid, after] of b.postgres) {
    const before = a.postgres.get(pid);
    if (before !== undefined) postgres += after - before;
  }
  return `CPU per request elsewhere: the other node ${per(b.other - a.other)} µs, PostgreSQL backends ${per(postgres)} µs, Redis server ≤ ${per(b.redis - a.redis)} µs`;
}

const total = (rs: readonly Measured[]): number => rs.reduce((n, r) => n + r.requests, 0);

/** Whether PostgreSQL answers, as a database of our own, or why not. */
async function database(): Promise<TestDatabase | string> {
  try {
    return await createTestDatabase();
  } catch (error) {
    return `no PostgreSQL at 127.0.0.1:5432 (${(error as Error).message})`;
  }
}

export async function benchCluster(seconds = 3): Promise<Figure[]> {
  const redis = await RedisDesign.connect();
  if (typeof redis === 'string') return [{ name: 'cluster', value: 'skipped', note: redis }];
  const db = await database();
  if (typeof db === 'string') {
    await redis.close();
    return [{ name: 'cluster', value: 'skipped', note: db }];
  }
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-cluster-'));
  const prefix = `presence-bench-cluster:${randomBytes(4).toString('hex')}:`;
  const nodes: ServeProcess[] = [];
  const info = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  await info.connect();
  const single = await createService(
    parseEnv({
      PRESENCE_DB: join(dir, 'single.db'),
      PRESENCE_RATE_LIMIT: '100000000',
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    }),
    { logger: quietLogger() },
  );
  try {
    const env = {
      PRESENCE_DATABASE_URL: db.url,
      PRESENCE_REDIS_URL: redis.url,
      PRESENCE_REDIS_PREFIX: prefix,
      PRESENCE_RATE_LIMIT: '100000000',
      PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    };
    const migrated = await runBin(['migrate'], cleanEnv(env));
    if (migrated.code !== 0) throw new Error(`presence migrate failed: ${migrated.stderr}`);
    for (let i = 0; i < 2; i++) nodes.push(await startServe({ env }));
    const node = nodes[0]!;
    const nodePid = node.child.pid!;
    const measureElsewhere = () => elsewhere(nodes[1]!.child.pid!, db.name, info);

    // The single-node service as bench/http.ts runs it, with the Redis design's route.
    for (let i = 0; i < USERS; i++) {
      void single.engine.heartbeat(`user-${i}`, 'laptop', 'online', null, TTL_S * 1000);
      if (i % 2000 === 1999) await single.engine.flush();
    }
    await single.engine.flush();
    addRedisRoute(single.app, redis);
    await single.app.listen({ host: '127.0.0.1', port: 0 });
    const address = single.app.server.address();
    const singleBase = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    const singleKey = (await single.keys.create(['read', 'write'], 'bench')).key;

    const seeded = performance.now();
    await seedOverHttp(node.base, node.key);
    const seedS = (performance.now() - seeded) / 1000;

    const auth = (key: string) => ({ authorization: `Bearer ${key}` });
    const heartbeats = (
      base: string,
      key: string,
      path: string,
      mode: 'refresh' | 'change',
      pid?: number,
    ): LoadSpec => ({
      url: `${base}${path}`,
      headers: auth(key),
      seconds,
      ...(pid === undefined ? {} : { serverPid: pid }),
      generate: {
        kind: 'heartbeat',
        path,
        users: USERS,
        mode,
        ttlSeconds: TTL_S,
        ...(mode === 'change'
          ? { stateFile: join(dir, `state-${base.split(':')[2]}${path.replace(/\//g, '-')}`) }
          : {}),
      },
    });
    const reads = (base: string, key: string, pid?: number): LoadSpec => ({
      url: `${base}/v1/presence`,
      headers: auth(key),
      seconds,
      ...(pid === undefined ? {} : { serverPid: pid }),
      generate: { kind: 'ids', path: '/v1/presence?user_ids=', users: USERS, perList: 100 },
    });
    // The single node's refreshes are persisted by its timer every 5 s; done right after each of
    // its runs (and counted in it) as bench/http.ts does. The serve node's timer runs in the child.
    const persisted = (spec: LoadSpec): readonly [LoadSpec, Leftover] => [
      spec,
      () => single.engine.persistRefreshes(),
    ];

    const nodeRefresh = heartbeats(node.base, node.key, '/v1/heartbeats', 'refresh', nodePid);
    const singleRefresh = heartbeats(singleBase, singleKey, '/v1/heartbeats', 'refresh');
    const redisRefresh = heartbeats(singleBase, singleKey, '/bench/redis/heartbeats', 'refresh');
    // Warm-up: every path once before the rounds.
    await load(dir, { ...nodeRefresh, seconds: 2 });
    await load(dir, { ...singleRefresh, seconds: 2 });
    await load(dir, { ...redisRefresh, seconds: 1 });

    const refreshAt0 = await measureElsewhere();
    const refreshed0 = await counter(node, 'presence_cluster_refresh_heartbeats_total');
    const trips0 = await counter(node, 'presence_cluster_expiry_round_trips_total');
    const [nodeRefreshes, singleRefreshes, redisRefreshes] = await rounds(dir, [
      nodeRefresh,
      persisted(singleRefresh),
      redisRefresh,
    ]);
    // The node sends the expiries its refreshes moved every 250 ms: wait past the last batch.
    await new Promise((r) => setTimeout(r, 1000));
    const refreshed = (await counter(node, 'presence_cluster_refresh_heartbeats_total')) - refreshed0;
    const trips = (await counter(node, 'presence_cluster_expiry_round_trips_total')) - trips0;
    const refreshAt1 = await measureElsewhere();

    const nodeChange = heartbeats(node.base, node.key, '/v1/heartbeats', 'change', nodePid);
    const singleChange = heartbeats(singleBase, singleKey, '/v1/heartbeats', 'change');
    const changeAt0 = await measureElsewhere();
    const [nodeChanges, singleChanges] = await rounds(dir, [nodeChange, persisted(singleChange)]);
    const changeAt1 = await measureElsewhere();

    const nodeRead = reads(node.base, node.key, nodePid);
    const singleRead = reads(singleBase, singleKey);
    await load(dir, { ...nodeRead, seconds: 2 });
    await load(dir, { ...singleRead, seconds: 2 });
    const [nodeReads, singleReads] = await rounds(dir, [nodeRead, singleRead]);

    const changesPerS = median(nodeChanges!.map((r: Measured) => r.rps));
    const changeFigure = {
      ...compare(
        'POST /v1/heartbeats, each changing the state (acked after the PostgreSQL commit)',
        nodeChanges!,
        'single-node SQLite, same requests',
        singleChanges!,
        undefined,
        coverage(nodeChanges!, USERS),
      ),
      note: elsewherePer(changeAt0, changeAt1, total(nodeChanges!)),
    };
    return [
      {
        name: 'setup',
        value: `2 serve nodes (PostgreSQL + Redis), load on one; ${fmt(USERS)} users seeded through it over HTTP in ${seedS.toFixed(1)} s (${fmt(USERS / seedS)} first heartbeats/s, 64 in flight)`,
      },
      {
        ...compare(
          'POST /v1/heartbeats, refresh (same state again), one node of two',
          nodeRefreshes!,
          'single-node SQLite, same requests',
          singleRefreshes!,
          0.5,
          coverage(nodeRefreshes!, USERS),
        ),
        note: `the node's CPU is the serve child's (/proc); the single node's is this process's. ${elsewherePer(refreshAt0, refreshAt1, total(nodeRefreshes!))} (the Redis server's includes the Redis design's runs)`,
      },
      compare(
        '  the same against the Redis design',
        nodeRefreshes!,
        'Redis design route (HSET+SETEX+PUBLISH), same app as the single node',
        redisRefreshes!,
        1,
        undefined,
      ),
      {
        name: "  Redis round trips per refresh heartbeat (the node's /metrics)",
        value: `${(trips / Math.max(1, refreshed)).toFixed(4)} (${fmt(trips)} round trips for ${fmt(refreshed)} refreshes)`,
        target: 'well below 1',
        met: trips / Math.max(1, refreshed) < 0.1,
      },
      changeFigure,
      {
        name: '  durable state changes per second, one node',
        value: `${fmt(changesPerS)}/s`,
        target: '≥ 3,000/s',
        met: changesPerS >= 3000,
        note: `single node: ${fmt(median(singleChanges!.map((r) => r.rps)))}/s, ratio ${changeFigure.reference!.ratio === undefined ? '' : changeFigure.reference!.ratio.median.toFixed(2)}×`,
      },
      compare(
        `GET /v1/presence, 100 random ids of ${fmt(USERS)} users, new each request`,
        nodeReads!,
        'single-node SQLite, same requests',
        singleReads!,
        0.5,
        coverage(nodeReads!, USERS),
      ),
    ];
  } finally {
    for (const n of nodes.splice(0)) await n.stop();
    const alive = setInterval(() => undefined, 1000);
    await single.close();
    clearInterval(alive);
    await db.drop();
    const cleaner = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
    await cleaner.connect();
    await deletePrefix(cleaner, prefix);
    await cleaner.quit();
    await info.quit();
    await redis.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
