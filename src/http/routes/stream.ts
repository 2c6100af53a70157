/**
 * @module http/routes/stream
 * The real-time stream's two doors: `GET /v1/stream` (Server-Sent Events) and `GET /v1/ws` (a
 * WebSocket upgrade, handled by `ws` on the server's `upgrade` event so that a refusal — no key,
 * the wrong scope, a bad query, too many connections — is a plain HTTP answer with the contract's
 * error body, decided before anything is upgraded). Both take the key as a bearer header or as
 * `?access_token=`; the access log prints routes, never URLs, so the token is never logged.
 */

import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';

import type { FastifyInstance } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { WebSocketServer } from 'ws';
import { z } from 'zod';

import { AppError } from '../../core/errors';
import type { ApiKeys } from '../../keys/api-keys';
import { MAX_FRAME_BYTES, parseStreamQuery, StreamQuery } from '../../stream/protocol';
import type { StreamCaller, StreamService } from '../../stream/service';
import { looksLikeViewerToken, type ViewerTokens } from '../../privacy/viewer-tokens';
import { keyFor, tokenOf } from '../auth';
import { errorBody } from '../errors';
import { COMMON_ERRORS } from '../schemas';

const SSE_DESCRIPTION = [
  'Server-Sent Events: `event: snapshot` (the watched ids), then `event: presence` with `id: <position>` for each',
  'change, `: ping` every 25 s. Resume with `Last-Event-ID` or `since`: the missed changes then `event: resumed`,',
  'or a fresh snapshot with `recovered: false`. `event: resync` (the client fell too far behind) and',
  '`event: reconnect` (the service is restarting) end the stream: reconnect and resume.',
].join(' ');

const WS_DESCRIPTION = [
  'A WebSocket (upgrade this request): JSON text frames, one message each. Server: `snapshot`, `presence`,',
  '`resumed`, `pong`, `identified`, `error` (the REST error body; the connection stays). Client: `subscribe`,',
  '`unsubscribe`, `resume`, `ping`, `identify` (write scope: the connection is that device), `status`.',
  'Close 4008 `resync`: resume. Close 1012: the service is restarting, reconnect and resume.',
].join(' ');

export function streamRoutes(
  app: FastifyInstance,
  deps: { stream: StreamService; keys: ApiKeys; viewers?: ViewerTokens | null },
): void {
  const { stream, keys } = deps;
  const viewers = deps.viewers ?? null;
  const r = app.withTypeProvider<ZodTypeProvider>();

  r.get(
    '/v1/stream',
    {
      config: { scope: 'read', queryToken: true, viewer: 'read' },
      schema: {
        summary: 'The real-time stream over Server-Sent Events',
        description: SSE_DESCRIPTION,
        tags: ['presence'],
        querystring: StreamQuery,
        headers: z.object({ 'last-event-id': z.string().optional() }).passthrough(),
        response: {
          200: z.string().describe('text/event-stream'),
          ...COMMON_ERRORS,
        },
      },
    },
    (req, reply) => {
      if (req.query.user_ids === undefined || req.query.user_ids.length === 0)
        throw new AppError(
          'invalid_request',
          'user_ids names the ids to watch (an SSE stream cannot subscribe later)',
        );
      // A viewer token's connections count against its user, an API key's against the key.
      const caller =
        req.viewer !== null
          ? { keyId: `viewer:${req.viewer.userId}`, canWrite: false, viewer: req.viewer }
          : { keyId: req.apiKey!.id, canWrite: req.apiKey!.scopes.includes('write') };
      stream.acquire(caller.keyId);
      void reply.hijack();
      const lastEventId = req.headers['last-event-id'];
      stream.openSse(reply.raw, caller, req.query, typeof lastEventId === 'string' ? lastEventId : undefined);
      // Fastify holds the request, and so its parsed query, until the response ends: the id list
      // (the hub keeps its own copy of each id) is let go now, not with the stream.
      req.query.user_ids = undefined;
    },
  );

  r.get(
    '/v1/ws',
    {
      config: { scope: 'read', queryToken: true, viewer: 'read' },
      schema: {
        summary: 'The real-time stream over a WebSocket (also a device connection)',
        description: WS_DESCRIPTION,
        tags: ['presence'],
        querystring: StreamQuery,
        response: { 101: z.null().describe('Switching Protocols'), ...COMMON_ERRORS },
      },
    },
    () => {
      throw new AppError('invalid_request', 'GET /v1/ws needs a WebSocket upgrade (Upgrade: websocket)');
    },
  );

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
  /** Who opens a WebSocket: an API key with the read scope, or a viewer token (its user). */
  const callerOf = async (token: string | null): Promise<StreamCaller> => {
    if (token === null || !looksLikeViewerToken(token)) {
      const key = await keyFor(keys, token, 'read');
      return { keyId: key.id, canWrite: key.scopes.includes('write') };
    }
    if (viewers === null) throw new AppError('forbidden', 'viewer tokens are off on this service');
    const viewer = await viewers.verify(token);
    if (viewer === null)
      throw new AppError('unauthorized', 'invalid, expired or revoked viewer token', [], {
        'www-authenticate': 'Bearer',
      });
    return { keyId: `viewer:${viewer.userId}`, canWrite: false, viewer };
  };

  const upgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> => {
    const requestId = randomUUID();
    socket.on('error', destroySocket);
    let caller: StreamCaller;
    let query: ReturnType<typeof parseStreamQuery>;
    try {
      const url = new URL(req.url ?? '/', 'http://stream.invalid');
      if (url.pathname !== '/v1/ws' && url.pathname !== '/v1/ws/')
        throw new AppError('not_found', `no WebSocket at ${url.pathname.slice(0, 200)}`);
      const params = Object.fromEntries(url.searchParams);
      caller = await callerOf(tokenOf(req.headers.authorization, params.access_token, true));
      query = parseStreamQuery(params);
      // The peer may have gone while a viewer token was checked: nothing to count then.
      if (socket.destroyed) return;
      stream.acquire(caller.keyId);
    } catch (error) {
      refuse(
        socket,
        error instanceof AppError ? error : new AppError('internal', 'upgrade failed'),
        requestId,
      );
      return;
    }
    // An API key's connection goes to a stream worker when there are any (a viewer's stays:
    // its privacy projection reads this process's rules).
    const workers = stream.workers;
    if (
      workers !== null &&
      caller.viewer == null &&
      socket instanceof Socket &&
      workers.handOff(req, socket, head, caller.keyId, caller.canWrite, query, requestId)
    )
      return;
    accept(req, socket, head, caller, query, requestId);
  };
  /**
   * Hands the socket to `ws`. What the closures here hold (the query and its id list) is let go
   * once the connection is open: the listener that gives the connection back is removed then.
   */
  const accept = (
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    caller: StreamCaller,
    query: ReturnType<typeof parseStreamQuery>,
    requestId: string,
  ): void => {
    // A handshake `ws` refuses (a bad Sec-WebSocket-Key, say) ends the socket without the
    // callback: the connection counted above is given back then.
    const giveBack = (): void => stream.release(caller.keyId);
    socket.once('close', giveBack);
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.removeListener('close', giveBack);
      socket.removeListener('error', destroySocket); // ws has its own now
      stream.openWs(ws, socket, caller, query, requestId);
    });
  };
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    void upgrade(req, socket, head);
  });

  // Shutdown (the `http` step): clients are told to reconnect before the server stops listening.
  app.addHook('preClose', (done) => {
    stream.drain();
    wss.close();
    // A client that does not answer the close handshake is not waited for.
    setTimeout(() => {
      for (const ws of wss.clients) ws.terminate();
    }, 1000).unref();
    done();
  });
}

function destroySocket(this: Duplex): void {
  this.destroy();
}

/** An HTTP answer on a socket that asked to upgrade: the contract's error body, then the end. */
function refuse(socket: Duplex, error: AppError, requestId: string): void {
  const body = JSON.stringify(errorBody(error.code, error.message, requestId, error.details));
  const headers = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': requestId,
    connection: 'close',
    ...error.headers,
  };
  const head = `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ''}\r\n${Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}`)
    .join('\r\n')}\r\n\r\n`;
  socket.end(head + body);
}
