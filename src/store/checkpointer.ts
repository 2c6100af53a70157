/**
 * @module store/checkpointer
 * Copies the write-ahead log back into the database file from a worker thread, on a connection of
 * its own, so that no commit waits for it. SQLite's own auto-checkpoint runs inside the commit
 * that takes the WAL past its mark and holds the event loop through the copy and an fsync: in the
 * webhook bench that was most of the p99 (11.6 ms with it, 1.8 ms without). A PASSIVE checkpoint
 * neither waits for nor blocks the writer.
 *
 * Copying is not enough on its own: the WAL starts over from its first frame only when a write
 * begins after every frame was copied (https://www.sqlite.org/wal.html, "Avoiding Excessively
 * Large WAL Files"). Under a commit every millisecond or two, a pass in the worker always ends with
 * new frames behind it, so the WAL grew to the safety net below and the auto-checkpoint ran inside
 * commits again (the webhook bench, 30 s at 1,000 changes/s: WAL 43 MB, p99 19.5 ms; with the
 * rounds below, 24 MB and 3.9 ms). So a round has two halves: the worker copies the bulk in PASSIVE
 * passes until a pass finds only a few new frames, then asks the main thread, the only writer, to
 * copy what is left between two transactions, where no commit can add more; the next write starts
 * the WAL over. That costs the event loop a few hundred frames and two fsyncs (0.6–6 ms measured
 * here), at most once a round.
 */

import { Worker } from 'node:worker_threads';

import type { Log } from '../core/log';
import type { Db } from './db';

/** About 40 MB of WAL: only reached if the worker has stopped checkpointing. */
export const SAFETY_NET_PAGES = 10_000;
/** Below this many frames (~4 MB, SQLite's own mark) the WAL is left to start over by itself. */
const START_OVER_FRAMES = 1_000;
/** A pass that finds no more than this many new frames (~1 MB) ends the worker's half of a round. */
const FEW_FRAMES = 256;
/** PASSIVE passes per round before the worker gives up catching up until the next round. */
const MAX_PASSES = 4;
/** How many times the main thread looks for a moment with no transaction open, per request. */
const FINISH_TRIES = 100;

// Plain JavaScript, evaluated in the worker: no TypeScript loader is needed there.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const { startOverFrames, fewFrames, maxPasses } = workerData;
const db = new Database(workerData.path);
db.pragma('busy_timeout = 5000');
// A pass copies what was committed since the one before it; while commits go on, each pass is
// shorter than the last, so a few passes leave only the frames committed during the last one.
const round = () => {
  try {
    let previous = -1;
    for (let pass = 0; pass < maxPasses; pass++) {
      const { log } = db.pragma('wal_checkpoint(PASSIVE)')[0];
      if (log < startOverFrames) return;
      const added = log - previous;
      previous = log;
      if (added <= fewFrames) break;
    }
    parentPort.postMessage({ finish: true });
  } catch (e) {
    parentPort.postMessage({ error: String(e && e.message || e) });
  }
};
const timer = setInterval(round, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

export interface Checkpointer {
  /** Rounds the worker asked the main thread to finish; for tests and the bench. */
  readonly asked: number;
  /** Rounds the main thread finished: every frame copied, so the next write starts the WAL over. */
  readonly finished: number;
  stop(): Promise<void>;
}

export function startCheckpointer(db: Db, options: { intervalMs?: number; log?: Log } = {}): Checkpointer {
  db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  const worker = new Worker(WORKER, {
    eval: true,
    workerData: {
      path: db.name,
      driver: require.resolve('better-sqlite3'),
      intervalMs: options.intervalMs ?? 500,
      startOverFrames: START_OVER_FRAMES,
      fewFrames: FEW_FRAMES,
      maxPasses: MAX_PASSES,
    },
  });
  worker.unref();
  let failures = 0;
  /** A failure is retried at the next round; say so once, not every round. */
  const failed = (error: string): void => {
    if (failures++ === 0) options.log?.warn({ error }, 'background WAL checkpoint failed; retrying');
  };
  let asked = 0;
  let finished = 0;
  let stopped = false;
  /** Whether a finish is waiting for a moment between transactions. */
  let waiting = false;
  const finish = (tries: number): void => {
    if (stopped || !db.open) {
      waiting = false;
      return;
    }
    // A transaction of the asynchronous stores may be open, suspended at an await: copying then
    // would leave the frames it is about to commit behind, so wait for the next turn of the loop.
    if (db.inTransaction) {
      if (tries < FINISH_TRIES) setImmediate(finish, tries + 1);
      else waiting = false;
      return;
    }
    waiting = false;
    try {
      // A reader on an older snapshot keeps frames from being copied (log > checkpointed): the WAL
      // cannot start over until it is done, and a later round tries again.
      const [result] = db.pragma('wal_checkpoint(PASSIVE)') as {
        busy: number;
        log: number;
        checkpointed: number;
      }[];
      if (result !== undefined && result.busy === 0 && result.checkpointed === result.log) finished++;
    } catch (error) {
      failed((error as Error).message);
    }
  };
  worker.on('message', (m: { error?: string; finish?: true }) => {
    if (m.error !== undefined) failed(m.error);
    if (m.finish === true && !waiting) {
      asked++;
      waiting = true;
      setImmediate(finish, 0);
    }
  });
  const exited = new Promise<void>((resolve) => {
    worker.once('exit', () => resolve());
    worker.once('error', (e) => {
      options.log?.warn({ error: e.message }, 'WAL checkpoint worker stopped; SQLite checkpoints on its own');
    });
  });
  return {
    get asked() {
      return asked;
    },
    get finished() {
      return finished;
    },
    async stop() {
      stopped = true;
      worker.postMessage('stop');
      await exited;
    },
  };
}
