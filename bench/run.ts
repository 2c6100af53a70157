/**
 * `npm run bench`: prints the figures the README quotes, with the machine they came from. Each
 * figure comes with the reference it was measured against in the same run (the ratio's median
 * and range over alternating rounds), the ids it touched, and its target.
 * Run with --expose-gc so the heap figures are measured after full collections.
 *
 * `npm run bench -- http` runs one section (engine, http, webhooks, scale, stream, cluster). Environment:
 * PRESENCE_BENCH_ROUNDS (default 5), PRESENCE_BENCH_REDIS_URL (default redis://127.0.0.1:6379),
 * PRESENCE_BENCH_SCALE (user counts of the scale section, default 10000,100000,1000000),
 * PRESENCE_BENCH_CLUSTER_USERS (users of the cluster section, default 20000).
 */
import { cpus, loadavg, totalmem } from 'node:os';

import { benchCluster } from './cluster';
import { benchEngine } from './engine';
import { benchHttp } from './http';
import { benchScale } from './scale';
import { showRatio, type Figure } from './stats';
import { benchStream } from './stream';
import { benchWebhooks } from './webhooks';

/** The machine is shared: the load average is printed with every section's figures. */
const load = (): string =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(', ');

function print(section: string, figures: readonly Figure[]): void {
  console.log(`\n${section} (load average after: ${load()})`);
  for (const f of figures) {
    const verdict = f.met === undefined ? '' : f.met ? '  [met]' : '  [MISSED]';
    console.log(`  ${f.name}: ${f.value}${f.target === undefined ? '' : `   target ${f.target}${verdict}`}`);
    const r = f.reference;
    if (r !== undefined) {
      const ratio = r.ratio === undefined ? '' : `${showRatio(r.ratio)} `;
      console.log(`      ${ratio}vs ${r.name}${r.value === undefined ? '' : ` (${r.value})`}`);
    }
    if (f.coverage !== undefined) console.log(`      sample: ${f.coverage}`);
    if (f.note !== undefined) console.log(`      note: ${f.note}`);
  }
}

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  console.log(
    `presence-aggregator bench — ${new Date().toISOString().slice(0, 16)} UTC, load average ${load()}, node ${process.version}, ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  );
  if ((globalThis as { gc?: unknown }).gc === undefined)
    console.log('(run with --expose-gc for a precise heap figure)');
  const only = process.argv[2];
  if (only === undefined || only === 'engine')
    print('engine, in-process, SQLite file in WAL mode', await benchEngine());
  if (only === undefined || only === 'http')
    print('HTTP, autocannon in a separate process, 64 connections, 3 s a run', await benchHttp());
  if (only === undefined || only === 'webhooks')
    print('webhooks, local receiver in a worker thread', await benchWebhooks());
  if (only === undefined || only === 'scale')
    print('scale: costs as the number of users grows', await benchScale());
  if (only === undefined || only === 'stream')
    print(
      'stream: clients in child processes (2 holding the connections; the fan-out adds a 3rd with the probe subscribers), server in this one',
      await benchStream(),
    );
  if (only === undefined || only === 'cluster')
    print(
      'cluster: 2 serve nodes on PostgreSQL + Redis, autocannon on one, 64 connections, 3 s a run',
      await benchCluster(),
    );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
