/**
 * @module stream/transports
 * The two transports under one `Transport`: a WebSocket (`ws`, a JSON text frame per message)
 * and Server-Sent Events over the raw HTTP response. Both batch: everything a subscriber flushes
 * at once is one write to the socket, not one syscall per message.
 *
 * The WebSocket's data frames are written straight to the upgraded socket, each message's frame
 * made once and shared by every connection (Outgoing.frame), rather than through `ws.send`, which
 * would frame and copy the text again for every connection. `ws` writes its own frames (pings,
 * the close) to the same socket, synchronously since permessage-deflate is off, so the frames
 * never interleave.
 */

import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

import type { WebSocket } from 'ws';

import type { Outgoing } from './message';
import type { Transport } from './subscriber';

/** WebSocket close codes the stream uses. */
export const CLOSE_RESYNC = 4008;
/** 1012 Service Restart: reconnect (and resume). */
export const CLOSE_RESTART = 1012;

export class WsTransport implements Transport {
  readonly kind = 'ws' as const;

  constructor(
    private readonly ws: WebSocket,
    /** The upgraded socket under `ws`, corked around a batch. */
    private readonly socket: Duplex,
  ) {}

  write(messages: readonly Outgoing[], flushed: () => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.socket.write(messages.length === 1 ? messages[0]!.frame : frames(messages), flushed);
  }

  ping(): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  resync(): void {
    this.ws.close(CLOSE_RESYNC, 'resync');
  }

  drain(): void {
    this.ws.close(CLOSE_RESTART, 'restarting: reconnect and resume');
  }

  dead(): void {
    this.ws.terminate();
  }
}

/** The messages' shared frames copied into one buffer (one write), without an array of them first. */
function frames(messages: readonly Outgoing[]): Buffer {
  let length = 0;
  for (const m of messages) length += m.frame.length;
  const out = Buffer.allocUnsafe(length);
  let at = 0;
  for (const m of messages) at += m.frame.copy(out, at);
  return out;
}

const SSE_END_TIMEOUT_MS = 5000;

export class SseTransport implements Transport {
  readonly kind = 'sse' as const;

  constructor(private readonly res: ServerResponse) {}

  write(messages: readonly Outgoing[], flushed: () => void): void {
    if (this.res.destroyed) return;
    let text = '';
    for (const m of messages) text += m.sse;
    this.res.write(text, flushed);
  }

  ping(): void {
    if (!this.res.destroyed) this.res.write(': ping\n\n');
  }

  resync(): void {
    this.end('resync');
  }

  drain(): void {
    this.end('reconnect');
  }

  dead(): void {
    this.res.destroy();
  }

  private end(event: string): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    this.res.end(`event: ${event}\ndata: {"type":"${event}"}\n\n`);
    // A client that stopped reading never takes the end: it is cut off after a while.
    setTimeout(() => this.res.destroy(), SSE_END_TIMEOUT_MS).unref();
  }
}
