/**
 * @module demo/source
 * Where the demo's table comes from: the service's own HTTP API, read like any other client
 * would, in pages no larger than the API's batch limit. Everything the screen needs goes through
 * `RowSource`; the demo's default is the real-time stream (demo/stream-source.ts), and these
 * polled reads remain for a caller that passes `httpSource`.
 */

import { MAX_BATCH } from '../src/http/schemas';
import type { AvailabilityView } from '../src/normalizer/availability';
import type { PresenceView } from '../src/normalizer/view';
import type { ChangeLine, DemoRow } from './table';

export type Api = (method: string, path: string, body?: unknown) => Promise<unknown>;

/** A small client of the service's API, as a downstream program would write it. */
export function client(base: string, key: string): Api {
  return async (method, path, body) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path.split('?')[0]} → ${res.status} ${text.slice(0, 300)}`);
    return text === '' ? null : (JSON.parse(text) as unknown);
  };
}

/** `items` in consecutive pages of at most `size`. */
export function pages<T>(items: readonly T[], size: number): T[][] {
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`page size must be a whole number above 0`);
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/**
 * Runs each call with at most `limit` in flight, the others queued in order. The demo registers
 * thousands of people and sends their heartbeats through one of these, so a large `--users`
 * neither opens thousands of sockets at once nor waits for one request at a time.
 */
export function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const queue: (() => void)[] = [];
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= limit) await new Promise<void>((resolve) => queue.push(resolve));
    running += 1;
    try {
      return await task();
    } finally {
      running -= 1;
      queue.shift()?.();
    }
  };
}

/** What the screen reads: the rows of these people, in this order, and everyone's availability. */
export interface RowSource {
  rows(ids: readonly string[]): Promise<DemoRow[]>;
  availability(ids: readonly string[]): Promise<AvailabilityView[]>;
  /** Before the first read: watch these people (a stream subscribes and waits for its snapshot). */
  start?(ids: readonly string[], signal?: AbortSignal): Promise<void>;
  /** Each change of someone's presence, when the source sees changes (the stream does; polls do not). */
  onChange?(listener: (change: ChangeLine) => void): void;
  close?(): void;
}

/**
 * Reads over HTTP: `POST /v1/presence/query` (ids in the body, so the URL stays short) and
 * `GET /v1/availability`, one page of at most the API's limit at a time.
 */
export function httpSource(api: Api, pageSize: number = MAX_BATCH): RowSource {
  const presence = async (ids: readonly string[]): Promise<Record<string, PresenceView>> => {
    const out: Record<string, PresenceView> = {};
    for (const page of pages(ids, pageSize)) {
      const body = (await api('POST', '/v1/presence/query', { user_ids: page })) as {
        presence: Record<string, PresenceView>;
      };
      Object.assign(out, body.presence);
    }
    return out;
  };
  const availability = async (ids: readonly string[]): Promise<Record<string, AvailabilityView>> => {
    const out: Record<string, AvailabilityView> = {};
    for (const page of pages(ids, pageSize)) {
      const body = (await api(
        'GET',
        `/v1/availability?user_ids=${page.map(encodeURIComponent).join(',')}`,
      )) as {
        availability: Record<string, AvailabilityView>;
      };
      Object.assign(out, body.availability);
    }
    return out;
  };
  return {
    async rows(ids) {
      const [p, a] = await Promise.all([presence(ids), availability(ids)]);
      return ids.flatMap((id) => {
        const row = p[id];
        return row === undefined ? [] : [{ presence: row, availability: a[id] }];
      });
    },
    async availability(ids) {
      const a = await availability(ids);
      return ids.flatMap((id) => (a[id] === undefined ? [] : [a[id]]));
    },
  };
}
