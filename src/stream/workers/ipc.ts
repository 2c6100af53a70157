/**
 * @module stream/workers/ipc
 * The messages between the main process and its stream workers, over Node's IPC channel (one
 * ordered channel per worker: a change sent before a load's answer is taken before it).
 */

import type { StreamQuery } from '../protocol';
import type { Activity, Status } from '../../core/presence';
import type { StreamStats } from '../subscriber';

/** A relayed change: its offset in the main hub's log, its user and version, its `presence` JSON. */
export type RelayedChange = readonly [offset: number, userId: string, version: number, json: string];

/** Main process → worker. */
export type ToWorker =
  /** The log's epoch and newest offset as the worker starts: it takes changes after it. */
  | { readonly t: 'init'; readonly epoch: string; readonly offset: number }
  | { readonly t: 'changes'; readonly changes: readonly RelayedChange[] }
  | { readonly t: 'restart'; readonly epoch: string; readonly offset: number }
  /** A WebSocket upgrade to complete (the socket comes as the message's handle). */
  | {
      readonly t: 'ws';
      readonly method: string;
      readonly headers: Readonly<Record<string, string | string[] | undefined>>;
      /** Bytes read past the request head (base64), given back to the socket. */
      readonly head: string;
      readonly keyId: string;
      readonly canWrite: boolean;
      readonly query: StreamQuery;
      readonly requestId: string;
    }
  /** The answer to a `load`: the snapshot body of the ids and each one's version (0: unknown). */
  | { readonly t: 'loaded'; readonly id: number; readonly body: string; readonly versions: readonly number[] }
  /** The answer to a `device` call. */
  | { readonly t: 'done'; readonly id: number; readonly error: WireError | null }
  | { readonly t: 'drain' };

/** Worker → main process. */
export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'load'; readonly id: number; readonly ids: readonly string[] }
  | {
      readonly t: 'device';
      /** 0: no answer wanted (alive). */
      readonly id: number;
      readonly op: 'hold' | 'update' | 'release' | 'alive';
      readonly userId: string;
      readonly deviceId: string;
      readonly status: Status | null;
      readonly activity: Activity | null;
    }
  /** A connection handed to the worker ended: its key's count is given back. */
  | { readonly t: 'closed'; readonly keyId: string }
  | { readonly t: 'stats'; readonly figures: WorkerFigures };

/** What a worker reports for /metrics, about once a second. */
export interface WorkerFigures {
  readonly connections: number;
  readonly subscriptions: number;
  readonly deviceConnections: number;
  readonly stats: StreamStats;
}

/** An AppError as it crosses the channel. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly details: readonly unknown[];
}
