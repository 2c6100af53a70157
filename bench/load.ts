/**
 * @module bench/load
 * The HTTP bench's load generator, run as its own process so that it does not share the server's
 * event loop: autocannon with 64 connections against one URL, or with a request made afresh each
 * time from uniformly random user ids (bench/stats.ts `Rng`). Takes the path of a JSON `LoadSpec`;
 * prints one JSON `LoadResult` line, with the number of distinct ids the run touched.
 */

import { readFileSync, writeFileSync } from 'node:fs';

import autocannon from 'autocannon';

import { Coverage, Rng } from './stats';

export type Generator =
  /** GET `path` + `perList` random ids of `user-0 … user-(users-1)`, comma-separated. */
  | { readonly kind: 'ids'; readonly path: string; readonly users: number; readonly perList: number }
  /**
   * POST a heartbeat for a random user's device `laptop`. `refresh`: always `online` (the state
   * each user was seeded with); `change`: the other status than the last one sent for that user,
   * tracked in `stateFile` (one byte a user) across runs.
   */
  | {
      readonly kind: 'heartbeat';
      readonly path: string;
      readonly users: number;
      readonly mode: 'refresh' | 'change';
      readonly stateFile?: string;
      /** Sent as `ttl_seconds` when set (the service's default, 30 s, otherwise). */
      readonly ttlSeconds?: number;
    };

export interface LoadSpec {
  readonly url: string;
  readonly seconds: number;
  readonly headers?: Record<string, string>;
  readonly generate?: Generator;
  /**
   * The server runs in this other process (a `serve` child): its CPU time is read from /proc
   * instead of the bench process's own.
   */
  readonly serverPid?: number;
}

export interface LoadResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
  /** Requests answered in the run. */
  readonly requests: number;
  /** Distinct user ids the run's requests named, and how many they named in all. */
  readonly distinct?: number;
  readonly draws?: number;
}

interface Request {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string;
}

function requestMaker(g: Generator, coverage: Coverage): { make: () => Request; done: () => void } {
  const rng = new Rng();
  if (g.kind === 'ids') {
    return {
      make: () => {
        let list = '';
        for (let k = 0; k < g.perList; k++) {
          const i = rng.below(g.users);
          coverage.add(i);
          list += k === 0 ? `user-${i}` : `,user-${i}`;
        }
        return { path: `${g.path}${list}` };
      },
      done: () => undefined,
    };
  }
  const state =
    g.stateFile === undefined
      ? new Uint8Array(g.users)
      : (() => {
          try {
            return new Uint8Array(readFileSync(g.stateFile));
          } catch {
            return new Uint8Array(g.users);
          }
        })();
  const ttl = g.ttlSeconds === undefined ? '' : `,"ttl_seconds":${g.ttlSeconds}`;
  return {
    make: () => {
      const i = rng.below(g.users);
      coverage.add(i);
      let status = 'online';
      if (g.mode === 'change') {
        state[i] = state[i] === 0 ? 1 : 0;
        status = state[i] === 1 ? 'busy' : 'online';
      }
      return {
        method: 'POST',
        path: g.path,
        headers: { 'content-type': 'application/json' },
        body: `{"user_id":"user-${i}","device_id":"laptop","status":"${status}"${ttl}}`,
      };
    },
    done: () => {
      if (g.stateFile !== undefined) writeFileSync(g.stateFile, state);
    },
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadSpec;
  const g = spec.generate;
  const coverage = new Coverage(g?.users ?? 1);
  const maker = g === undefined ? null : requestMaker(g, coverage);
  const r = await autocannon({
    url: spec.url,
    connections: 64,
    duration: spec.seconds,
    ...(spec.headers === undefined ? {} : { headers: spec.headers }),
    ...(maker === null
      ? {}
      : {
          requests: [
            {
              setupRequest: (request) => {
                const made = maker.make();
                request.method = made.method ?? 'GET';
                request.path = made.path;
                if (made.body !== undefined) request.body = made.body;
                if (made.headers !== undefined) request.headers = { ...request.headers, ...made.headers };
                return request;
              },
            },
          ],
        }),
  });
  maker?.done();
  const result: LoadResult = {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    failed: r.errors + r.non2xx,
    requests: r.requests.total,
    ...(g === undefined ? {} : { distinct: coverage.distinct, draws: coverage.draws }),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
