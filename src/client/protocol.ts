/**
 * @module client/protocol
 * The stream protocol as the client sees it (the messages the service sends) and the client's
 * options and callbacks. Types only.
 */

import type { Activity, ChangedField, CustomStatus, Presence, Status } from '../types';

/** The messages the service sends. */
export type StreamMessage =
  | {
      readonly type: 'snapshot';
      readonly presence: Readonly<Record<string, Presence>>;
      readonly unknown: readonly string[];
      readonly position: string;
      readonly recovered?: false;
    }
  | {
      readonly type: 'presence';
      readonly user_id: string;
      readonly version: number;
      readonly previous: { status: Status; activity: Activity | null; custom_status: CustomStatus | null };
      readonly current: Presence;
      readonly changed: readonly ChangedField[];
      readonly position: string;
    }
  | { readonly type: 'resumed'; readonly recovered: true; readonly position: string }
  | { readonly type: 'pong' }
  | {
      readonly type: 'identified';
      readonly user_id: string;
      readonly device_id: string;
      readonly status: Status;
    }
  | {
      readonly type: 'error';
      readonly error: { code: string; message: string; request_id: string; details: unknown[] };
    }
  | { readonly type: 'resync' | 'reconnect' };

/** The part of the WebSocket API the client uses (the browser's, Node 22's, or the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** The service's base URL, e.g. `https://presence.example.com`. */
  readonly url: string;
  /** An API key with the read scope (write too, to identify as a device). */
  readonly token: string;
  /** Ids to watch from the start. */
  readonly userIds?: readonly string[];
  /** At most one message per user per window (0–5000 ms). */
  readonly coalesceMs?: number;
  /** `auto` (default): WebSocket, else SSE. */
  readonly transport?: 'auto' | 'ws' | 'sse';
  /** The WebSocket class; defaults to the global one. In Node 20, pass `require('ws')`. */
  readonly WebSocket?: WebSocketConstructor;
  /** Reconnect back-off: the first wait and the longest (default 500 ms, 15 s), with jitter. */
  readonly reconnect?: { readonly minMs?: number; readonly maxMs?: number };
}

export type ChangeListener = (
  userId: string,
  presence: Presence | undefined,
  previous: Presence | undefined,
) => void;
