/**
 * @module bench/load
 * The HTTP bench's load generator, run as its own process so that it does not share the server's
 * event loop: autocannon against one URL, or against a rotating list of paths. Takes the path of a
 * JSON `LoadSpec`; prints one JSON line.
 */

import { readFileSync } from 'node:fs';

import autocannon from 'autocannon';

export interface LoadSpec {
  readonly url: string;
  readonly seconds: number;
  readonly headers?: Record<string, string>;
  /** Paths to cycle through, one per request; absent: the URL's own path every time. */
  readonly paths?: readonly string[];
}

export interface LoadResult {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly failed: number;
}

async function main(): Promise<void> {
  const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as LoadSpec;
  const paths = spec.paths;
  let next = 0;
  const r = await autocannon({
    url: spec.url,
    connections: 64,
    duration: spec.seconds,
    ...(spec.headers === undefined ? {} : { headers: spec.headers }),
    ...(paths === undefined
      ? {}
      : {
          requests: [
            {
              setupRequest: (request) => {
                request.path = paths[next++ % paths.length]!;
                return request;
              },
            },
          ],
        }),
  });
  const result: LoadResult = {
    rps: r.requests.average,
    p50: r.latency.p50,
    p99: r.latency.p99,
    failed: r.errors + r.non2xx,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
