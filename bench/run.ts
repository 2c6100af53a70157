/**
 * `npm run bench`: prints the figures the README quotes, with the machine they came from.
 * Run with --expose-gc so the heap figure is measured after full collections.
 */
import { cpus, totalmem } from 'node:os';

import { benchEngine, type Figure } from './engine';
import { benchHttp } from './http';
import { benchWebhooks } from './webhooks';

function print(section: string, figures: readonly Figure[]): void {
  console.log(`\n${section}`);
  const width = Math.max(...figures.map((f) => f.name.length));
  for (const f of figures) {
    console.log(
      `  ${f.name.padEnd(width)}  ${f.value.padStart(18)}${f.target === undefined ? '' : `   (target ${f.target})`}`,
    );
  }
}

async function main(): Promise<void> {
  const cpu = cpus()[0]?.model ?? 'unknown cpu';
  console.log(
    `presence-aggregator bench — node ${process.version}, ${cpus().length} × ${cpu}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  );
  if ((globalThis as { gc?: unknown }).gc === undefined)
    console.log('(run with --expose-gc for a precise heap figure)');
  // `npm run bench -- http` runs one section; no argument runs them all.
  const only = process.argv[2];
  if (only === undefined || only === 'engine')
    print('engine, in-process, SQLite file in WAL mode', await benchEngine());
  if (only === undefined || only === 'http')
    print('HTTP, autocannon in a separate process, 64 connections, 3 s a run', await benchHttp());
  if (only === undefined || only === 'webhooks')
    print('webhooks, local receiver in a worker thread', await benchWebhooks());
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
