/**
 * @module bench/stream-reference
 * The fan-out's reference (issue 15): a plain WebSocket server with no presence logic, measured
 * in the same run as the product's stream so that its figures have something to be read
 * against. It is the `ws` package's WebSocketServer (permessage-deflate off) on a port of its
 * own in the bench process, a room map user → sockets, and nothing else: no engine, no commit,
 * no change log, no batching. Each change is serialized once, as a message of the same shape
 * and size as the product's `presence` message (made from one the product sent in this run),
 * and handed to `ws.send` once per subscriber of its user: one send per message per subscriber,
 * which is what "plain ws" means.
 *
 * It speaks just enough of the product's protocol for the bench's clients to connect to it
 * unchanged: the same upgrade URL (`/v1/ws?user_ids=…&access_token=…`; the token is not
 * checked), a `snapshot` message first (an empty one: the clients only wait for it), then
 * `presence` messages.
 */

import type { AddressInfo } from 'node:net';

import { WebSocketServer, type WebSocket } from 'ws';

/** A change the reference took: the moment it took it (ms since the epoch, fractional). */
export interface Taken {
  readonly key: string;
  readonly at: number;
  /** How many sockets it was sent to. */
  readonly sent: number;
}

export interface Reference {
  readonly url: string;
  /** Makes a change of `userId` and sends it to every subscriber of that user; returns how many. */
  change(userId: string): Taken;
  close(): Promise<void>;
}

/**
 * Builds the reference's `presence` messages from one the product sent: the same keys in the
 * same order, with the user, version, statuses, timestamps and position of each change put in
 * place of the sample's. `sample` is that message's JSON text.
 */
export function presenceShape(
  sample: string,
): (
  userId: string,
  version: number,
  status: string,
  previous: string,
  iso: string,
  position: string,
) => string {
  const shape = JSON.parse(sample) as Record<string, unknown>;
  const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;
  return (userId, version, status, previous, iso, position) => {
    const fill = (value: unknown, key: string, under: string): unknown => {
      if (key === 'user_id') return userId;
      if (key === 'version') return version;
      if (key === 'position') return position;
      if (key === 'status') return under === 'previous' ? previous : status;
      if (typeof value === 'string' && ISO.test(value)) return iso;
      if (Array.isArray(value)) return value.map((v: unknown) => fill(v, '', under));
      if (value !== null && typeof value === 'object') {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) out[k] = fill(v, k, under === '' ? key : under);
        return out;
      }
      return value;
    };
    return JSON.stringify(fill(shape, '', ''));
  };
}

/** Starts the reference on an ephemeral loopback port; `sample` is a real `presence` message. */
export async function startReference(sample: string): Promise<Reference> {
  const message = presenceShape(sample);
  const wss = new WebSocketServer({
    host: '127.0.0.1',
    port: 0,
    perMessageDeflate: false,
    clientTracking: false,
  });
  await new Promise<void>((resolve, reject) => {
    wss.once('listening', resolve);
    wss.once('error', reject);
  });
  const rooms = new Map<string, Set<WebSocket>>();
  const versions = new Map<string, number>();
  const sockets = new Set<WebSocket>();
  let offset = 0;
  const epoch = Date.now().toString(36);
  wss.on('connection', (ws, req) => {
    const ids = (new URL(req.url ?? '/', 'http://reference').searchParams.get('user_ids') ?? '')
      .split(',')
      .filter((id) => id !== '');
    sockets.add(ws);
    for (const id of ids) {
      let room = rooms.get(id);
      if (room === undefined) rooms.set(id, (room = new Set()));
      room.add(ws);
    }
    ws.on('close', () => {
      sockets.delete(ws);
      for (const id of ids) rooms.get(id)?.delete(ws);
    });
    ws.on('error', () => ws.terminate());
    ws.send(JSON.stringify({ type: 'snapshot', presence: {}, unknown: [], position: `${epoch}:${offset}` }));
  });
  return {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    change(userId) {
      const at = performance.timeOrigin + performance.now();
      const version = (versions.get(userId) ?? 0) + 1;
      versions.set(userId, version);
      const [status, previous] = version % 2 === 0 ? ['online', 'busy'] : ['busy', 'online'];
      offset += 1;
      const json = message(
        userId,
        version,
        status,
        previous,
        new Date(at).toISOString(),
        `${epoch}:${offset}`,
      );
      const room = rooms.get(userId);
      if (room !== undefined) for (const ws of room) ws.send(json);
      return { key: `${userId}:${version}`, at, sent: room?.size ?? 0 };
    },
    close: async () => {
      for (const ws of sockets) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
