/**
 * @module demo/stream-source
 * The demo's table as a real client of the real-time stream: the project's own `PresenceClient`
 * keeps a local presence map of everyone, and the screen is drawn from that map. Nothing is
 * polled. Availability is not on the stream; it is computed from each presence object with the
 * same pure function the `GET /v1/availability` route uses, so it is what that route would say.
 */

import WebSocket from 'ws';

import { PresenceClient, type WebSocketConstructor } from '../src/client';
import { toAvailability } from '../src/normalizer/availability';
import type { PresenceView } from '../src/normalizer/view';
import { pages, type RowSource } from './source';
import type { ChangeLine } from './table';

/**
 * Ids per stream connection: the most the service takes. A long id list does not go in the URL
 * (Node refuses request heads past 16 KB): the client sends it in the connection's first
 * `subscribe` or `resume` message, so a reconnect of 10,000 ids is fine.
 */
export const IDS_PER_CONNECTION = 10_000;

/** Node 20 has no global WebSocket: the `ws` package's, as the client's docs say. */
const Ws = WebSocket as unknown as WebSocketConstructor;

/** A change the table shows: the stream's presence message, as the client's `onChange` hands it over. */
export function changeLine(current: PresenceView, previous: PresenceView, at: number): ChangeLine {
  return {
    at,
    userId: current.user_id,
    version: current.version,
    previous: { status: previous.status, activity: previous.activity, custom_status: previous.custom_status },
    current: { status: current.status, activity: current.activity, custom_status: current.custom_status },
    explain: current.explain,
  };
}

export interface StreamSourceOptions {
  readonly url: string;
  readonly token: string;
  /** When a change arrived (the demo's fast clock). */
  readonly now: () => number;
  readonly idsPerConnection?: number;
}

/** Rows from the stream's local maps; `start` subscribes and resolves once every connection is in sync. */
export function streamSource(o: StreamSourceOptions): RowSource {
  const clients: PresenceClient[] = [];
  const listeners: ((c: ChangeLine) => void)[] = [];
  const find = (id: string): PresenceView | undefined => {
    for (const c of clients) {
      const p = c.presence.get(id);
      if (p !== undefined) return p;
    }
    return undefined;
  };
  return {
    async start(ids, signal) {
      const synced = pages(ids, o.idsPerConnection ?? IDS_PER_CONNECTION).map(
        (chunk) =>
          new Promise<void>((resolve) => {
            const c = new PresenceClient({ url: o.url, token: o.token, WebSocket: Ws, transport: 'ws' });
            clients.push(c);
            // In sync once a snapshot has answered for every id of the chunk (the one sent on
            // connecting, before the subscribe, names none of them).
            const answered = new Set<string>();
            c.onMessage((m) => {
              if (m.type !== 'snapshot') return;
              for (const id of Object.keys(m.presence)) answered.add(id);
              for (const id of m.unknown) answered.add(id);
            });
            const off = c.onSync(() => {
              if (answered.size < chunk.length) return;
              off();
              resolve();
            });
            signal?.addEventListener('abort', () => resolve(), { once: true });
            c.onChange((_id, current, previous) => {
              // The first snapshot fills the map (no previous) and an unsubscribe empties it: neither
              // is a change of anyone's presence.
              if (current === undefined || previous === undefined) return;
              const line = changeLine(current, previous, o.now());
              for (const l of listeners) l(line);
            });
            // Connected first, then subscribed: the ids go in a message, not in the URL.
            c.connect();
            c.subscribe(chunk);
          }),
      );
      await Promise.all(synced);
    },
    onChange(listener) {
      listeners.push(listener);
    },
    // Read from memory: nothing to wait for.
    rows: (ids) =>
      Promise.resolve(
        ids.flatMap((id) => {
          const p = find(id);
          return p === undefined ? [] : [{ presence: p, availability: toAvailability(p) }];
        }),
      ),
    availability: (ids) =>
      Promise.resolve(
        ids.flatMap((id) => {
          const p = find(id);
          return p === undefined ? [] : [toAvailability(p)];
        }),
      ),
    close() {
      for (const c of clients.splice(0)) c.close();
    },
  };
}
