/**
 * @module bench/engine
 * In-process figures for the presence engine on a real SQLite file:
 * refresh heartbeats/s, durable state changes/s, 1,000-user batch read latency, heap per user.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { PresenceEngine } from '../src/aggregator/engine';
import { systemClock } from '../src/core/clock';
import { Ladder, type NormalizedState, type Status } from '../src/core/presence';
import { migrate, openDb, type Db } from '../src/store/db';
import { SqlitePresenceStore } from '../src/store/presence-store';

export interface Figure {
  readonly name: string;
  readonly value: string;
  readonly target?: string;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g !== undefined) {
    g();
    g();
  }
}

function freshEngine(dir: string, name: string): { engine: PresenceEngine; db: Db } {
  const db = openDb(join(dir, name));
  migrate(db);
  const engine = new PresenceEngine({
    clock: systemClock,
    store: new SqlitePresenceStore(db),
    ladder: new Ladder(),
  });
  engine.load();
  return { engine, db };
}

const teams = (availability: string, activity: string, status: Status): NormalizedState => ({
  status,
  activity: null,
  customStatus: null,
  source: 'app',
  raw: { availability, activity },
  label: `${availability}/${activity}`,
});
const AVAILABLE = teams('Available', 'Available', 'online');
const BUSY = teams('Busy', 'Busy', 'busy');
const SLACK_ACTIVE: NormalizedState = {
  status: 'online',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'active',
  label: 'active',
};
const DISCORD_IDLE: NormalizedState = {
  status: 'idle',
  activity: null,
  customStatus: null,
  source: 'app',
  raw: 'idle',
  label: 'idle',
};

async function heartbeats(dir: string): Promise<Figure[]> {
  const { engine, db } = freshEngine(dir, 'heartbeats.db');
  const users = 10_000;
  const ids = Array.from({ length: users }, (_, i) => `user-${i}`);
  for (const id of ids) await engine.heartbeat(id, 'laptop', 'online', null, 30_000);
  const n = 2_000_000;
  const started = performance.now();
  for (let i = 0; i < n; i++) void engine.heartbeat(ids[i % users]!, 'laptop', 'online', null, 30_000);
  const elapsed = performance.now() - started;
  const persisted = performance.now();
  const rows = await engine.persistRefreshes();
  const persistMs = performance.now() - persisted;
  await engine.stop();
  db.close();
  return [
    { name: 'refresh heartbeats/s (no state change)', value: fmt(n / (elapsed / 1000)), target: '≥ 200,000' },
    { name: `  coarse persist of ${fmt(rows)} refreshed users`, value: `${persistMs.toFixed(0)} ms` },
  ];
}

async function changes(dir: string): Promise<Figure[]> {
  const { engine, db } = freshEngine(dir, 'changes.db');
  const users = 10_000;
  const ids = Array.from({ length: users }, (_, i) => `user-${i}`);
  for (const id of ids) engine.ensureUser(id);
  const n = 300_000;
  const inFlight = 1000; // like 1,000 concurrent requests, each awaiting its ack
  const started = performance.now();
  for (let i = 0; i < n; i += inFlight) {
    const acks: Promise<void>[] = [];
    for (let j = i; j < i + inFlight; j++) {
      const state = (j / users) % 2 < 1 ? BUSY : AVAILABLE;
      acks.push(engine.report(ids[j % users]!, { platform: 'teams', state, ttlMs: 600_000 }));
    }
    await Promise.all(acks);
  }
  const elapsed = performance.now() - started;
  const committed = db.prepare('SELECT count(*) FROM transitions').pluck().get() as number;
  await engine.stop();
  db.close();
  return [
    {
      name: 'durable state changes/s (acked after commit)',
      value: fmt(committed / (elapsed / 1000)),
      target: '≥ 15,000',
    },
  ];
}

async function readsAndMemory(dir: string): Promise<Figure[]> {
  gc();
  const before = process.memoryUsage().heapUsed;
  const beforeBuffers = process.memoryUsage().arrayBuffers;
  const { engine, db } = freshEngine(dir, 'reads.db');
  const users = 100_000;
  const ids = Array.from({ length: users }, (_, i) => `user-${i}`);
  for (let i = 0; i < users; i++) {
    const id = ids[i]!;
    engine.ensureUser(id);
    engine.linkAccount(id, { platform: 'slack', workspaceId: 'T1', externalId: `U${i}` });
    engine.linkAccount(id, { platform: 'teams', workspaceId: 'tenant', externalId: `aad-${i}` });
    engine.linkAccount(id, { platform: 'discord', workspaceId: '', externalId: `${1e15 + i}` });
    void engine.report(id, { platform: 'slack', state: SLACK_ACTIVE, ttlMs: 600_000 });
    void engine.report(id, { platform: 'teams', state: i % 3 === 0 ? BUSY : AVAILABLE, ttlMs: 600_000 });
    void engine.report(id, { platform: 'discord', state: DISCORD_IDLE, ttlMs: 600_000 });
  }
  engine.flushSync();
  gc();
  const perUser = (process.memoryUsage().heapUsed - before) / users;

  const batches = 2000;
  let seed = 1;
  const nextBatch = (): string[] => {
    const batch = new Array<string>(1000);
    for (let k = 0; k < 1000; k++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      batch[k] = ids[seed % users]!;
    }
    return batch;
  };
  const measure = (read: (batch: string[]) => unknown): number[] => {
    const times: number[] = [];
    for (let b = 0; b < batches; b++) {
      const batch = nextBatch();
      const t0 = performance.now();
      read(batch);
      times.push(performance.now() - t0);
    }
    return times.sort((x, y) => x - y);
  };
  const objects = measure((batch) => JSON.stringify(engine.getMany(batch)));
  // The API's path: cached per-user JSON, filled by the first read of each user.
  for (let i = 0; i < users; i += 1000) engine.getManyJson(ids.slice(i, i + 1000));
  const json = measure((batch) => engine.getManyJson(batch));
  gc();
  // The cached views are Buffers: their bytes live outside the JS heap, so count both.
  const perUserCached =
    (process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers - before - beforeBuffers) / users;
  await engine.stop();
  db.close();
  const ms = (t: number[]) => `${percentile(t, 50).toFixed(3)} / ${percentile(t, 99).toFixed(3)} ms`;
  return [
    { name: '1,000-user batch read as JSON (cached views) p50 / p99', value: ms(json), target: 'p99 ≤ 1 ms' },
    { name: '  same, objects built afresh and serialized', value: ms(objects) },
    {
      name: 'heap per tracked user (100,000 users, 3 platforms)',
      value: `${fmt(perUser)} B`,
      target: '≤ 2,048 B',
    },
    { name: "  same, with every user's JSON view cached (heap + buffers)", value: `${fmt(perUserCached)} B` },
  ];
}

export function fmt(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export async function benchEngine(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-bench-'));
  try {
    return [...(await heartbeats(dir)), ...(await changes(dir)), ...(await readsAndMemory(dir))];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
