/**
 * @module stream/message
 * What the stream sends, framed once and shared: a change is serialized once for every
 * subscriber that gets it (and once more per transport framing), not once per subscriber.
 */

import { presenceChangedEvent, type PresenceChange } from '../core/changes';

/**
 * One message of the protocol, ready for either transport. Its WebSocket frame is made once, the
 * first time a WebSocket sends it, and shared by every connection that gets it: a change sent to
 * a thousand subscribers is encoded once, not a thousand times. The frame then holds the text
 * (the JSON string is let go: a message kept in the change log is held once, not twice).
 */
export class Outgoing {
  private sseFrame: string | null = null;
  private text: string | null;
  private wire: Buffer | null = null;
  /** Bytes it takes in a queue: the JSON's length, which for the ASCII JSON sent is its size. */
  readonly bytes: number;

  constructor(
    /** The message's `type` (SSE's `event:`). */
    readonly type: string,
    /** The JSON text of the whole message (a WebSocket frame; SSE's `data:`). */
    json: string,
    /** For `presence` messages: whose change it is (compaction keeps the latest per user). */
    readonly userId: string | null = null,
    /** For `presence` messages: their position (SSE's `id:`). */
    readonly position: string | null = null,
  ) {
    this.text = json;
    this.bytes = json.length;
  }

  /** The JSON text of the whole message. */
  get json(): string {
    return this.text ?? this.wire!.toString('utf8', frameHeaderLength(this.wire!));
  }

  /** The message as one WebSocket text frame, server to client (unmasked, final). */
  get frame(): Buffer {
    if (this.wire === null) {
      this.wire = textFrame(this.text!);
      this.text = null;
    }
    return this.wire;
  }

  get sse(): string {
    this.sseFrame ??=
      this.position === null
        ? `event: ${this.type}\ndata: ${this.json}\n\n`
        : `event: ${this.type}\nid: ${this.position}\ndata: ${this.json}\n\n`;
    return this.sseFrame;
  }

  static of(type: string, body: Readonly<Record<string, unknown>>): Outgoing {
    return new Outgoing(type, JSON.stringify({ type, ...body }));
  }
}

/** A WebSocket text frame (RFC 6455 §5.2) of `text`: FIN and opcode 1, no mask, 7/16/64-bit length. */
export function textFrame(text: string): Buffer {
  const length = Buffer.byteLength(text);
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(header + length);
  frame[0] = 0x81;
  if (header === 2) frame[1] = length;
  else if (header === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(length, 6);
  }
  frame.write(text, header, 'utf8');
  return frame;
}

function frameHeaderLength(frame: Buffer): number {
  const n = frame[1]!;
  return n < 126 ? 2 : n === 126 ? 4 : 10;
}

/** The `data` of a `presence.changed` event: what a `presence` message carries besides its position. */
export interface ChangeData {
  readonly user_id: string;
  readonly version: number;
  readonly previous: Readonly<Record<string, unknown>>;
  readonly current: Readonly<Record<string, unknown>>;
  readonly changed: readonly string[];
}

/**
 * A committed change as a `presence` message: the `data` of the `presence.changed` webhook
 * (built by the one function the outbox uses too), with `type` and `position`. The JSON is made
 * the first time something needs it (many changes have no subscriber and are never replayed),
 * and the change itself is let go once it is.
 */
export class ChangeMessage {
  private change: PresenceChange | null;
  private made: Outgoing | null = null;

  constructor(
    change: PresenceChange | null,
    readonly position: string,
  ) {
    this.change = change;
    this.userId = change?.userId ?? '';
    this.version = change?.version ?? 0;
  }

  /** A message made from data directly: a change as a viewer sees it (privacy/stream.ts). */
  static fromData(data: ChangeData, position: string): ChangeMessage {
    const m = new ChangeMessage(null, position);
    const json = JSON.stringify({ type: 'presence', ...data, position });
    Object.assign(m, { userId: data.user_id, version: data.version });
    m.made = new Outgoing('presence', json, data.user_id, position);
    return m;
  }

  /** A message whose JSON was made elsewhere (relayed from the main process to a stream worker). */
  static ready(json: string, userId: string, version: number, position: string): ChangeMessage {
    const m = new ChangeMessage(null, position);
    Object.assign(m, { userId, version });
    m.made = new Outgoing('presence', json, userId, position);
    return m;
  }

  readonly userId: string;
  readonly version: number;

  get outgoing(): Outgoing {
    if (this.made === null) {
      // The `data` of the `presence.changed` event, from the one builder the outbox uses too.
      const { data } = presenceChangedEvent(this.change!);
      const json = JSON.stringify({ type: 'presence', ...data, position: this.position });
      this.made = new Outgoing('presence', json, this.userId, this.position);
      this.change = null;
    }
    return this.made;
  }

  /** The change's data as an object (coalescing merges two of them). */
  data(): ChangeData {
    const {
      type: _type,
      position: _position,
      ...data
    } = JSON.parse(this.outgoing.json) as ChangeData & {
      type: string;
      position: string;
    };
    return data;
  }
}
