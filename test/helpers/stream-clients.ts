/**
 * Raw stream clients for tests: a WebSocket (the `ws` package) and a Server-Sent Events reader
 * over node:http, each recording every message and waiting on conditions, never on time.
 */

import { request, type IncomingMessage } from 'node:http';

import WebSocket from 'ws';

import { waitUntil } from './wait';

export interface Recorded {
  readonly messages: any[];
  /** Resolves with the first message (from `from` on) that matches. */
  next(match: (m: any) => boolean, what?: string, from?: number): Promise<any>;
}

function recorder(messages: any[]): Recorded['next'] {
  return async (match, what = 'a message', from = 0) => {
    let found: any;
    await waitUntil(() => {
      found = messages.slice(from).find(match);
      return found !== undefined;
    }, what);
    return found;
  };
}

export interface WsClient extends Recorded {
  readonly ws: WebSocket;
  send(message: unknown): void;
  /** Resolves with the close code once the server closed. */
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
}

/** Opens a WebSocket; rejects with the HTTP status and body when the upgrade is refused. */
export function openWs(url: string, headers: Record<string, string> = {}): Promise<WsClient> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false });
  const messages: any[] = [];
  ws.on('message', (data: Buffer) => messages.push(JSON.parse(data.toString('utf8'))));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += String(c)));
      res.on('end', () =>
        reject(
          Object.assign(new Error(`refused ${res.statusCode}`), {
            status: res.statusCode,
            body: JSON.parse(body),
          }),
        ),
      );
    });
    ws.on('error', reject);
    ws.on('open', () =>
      resolve({
        ws,
        messages,
        next: recorder(messages),
        send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)),
        closed,
        close: async () => {
          ws.close();
          await closed;
        },
      }),
    );
  });
}

export interface SseEvent {
  readonly event: string;
  readonly id: string | undefined;
  readonly data: any;
}

export interface SseClient {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
  readonly events: SseEvent[];
  /** `: ping` comments seen. */
  readonly comments: string[];
  next(match: (e: SseEvent) => boolean, what?: string): Promise<SseEvent>;
  readonly ended: Promise<void>;
  close(): void;
}

/** Opens an SSE stream; resolves once the response headers are in (for any status). */
export function openSse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      const events: SseEvent[] = [];
      const comments: string[] = [];
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          let event = 'message';
          let id: string | undefined;
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line);
            else if (line.startsWith('event: ')) event = line.slice(7);
            else if (line.startsWith('id: ')) id = line.slice(4);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length > 0) events.push({ event, id, data: JSON.parse(data.join('\n')) });
        }
      });
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        events,
        comments,
        next: async (match, what = 'an event') => {
          let found: SseEvent | undefined;
          await waitUntil(() => (found = events.find(match)) !== undefined, what);
          return found!;
        },
        ended,
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
    req.end();
  });
}
