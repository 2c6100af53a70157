/**
 * @module client
 * `presence-aggregator/client`: the real-time stream client, for browsers and Node.
 *
 * - Connects over a WebSocket (`GET /v1/ws`) and falls back to Server-Sent Events
 *   (`GET /v1/stream`, read with `fetch`) when no WebSocket can be opened.
 * - Keeps a local presence map in sync: a snapshot fills it, each `presence` message moves it on
 *   (a message not newer than what the map holds is ignored), and a message of a user whose
 *   snapshot has not arrived yet is held back and applied after it.
 * - Reconnects by itself with back-off and resumes from the last position it saw: the service
 *   replays what was missed, or sends a fresh snapshot (`recovered: false`), and the map is right
 *   again either way; `onSync` says so each time.
 * - Can be a device (`identify`, WebSocket only), identified again after every reconnect.
 * - Over SSE, whose ids can only go in the URL, a long id list is split over several streams,
 *   each URL short enough for servers and proxies; they resume together and `onSync` fires once
 *   all of them are in sync.
 *
 * It imports nothing from the server: only types.
 */

import type { ChangeListener, ClientOptions, StreamMessage, WebSocketConstructor } from './protocol';
import { earliest, idsParam, splitIds, SSE_URL_IDS_MAX_CHARS, type ChunkReader, type SsePart } from './sse';
import type { Activity, Presence, Status } from '../types';

export type * from '../types';
export type * from './protocol';
export { splitIds, SSE_URL_IDS_MAX_CHARS } from './sse';

/** True: the stream client is here. */
export const CLIENT_AVAILABLE = true;

type State = 'idle' | 'connecting' | 'open' | 'closed';

interface Connection {
  readonly kind: 'ws' | 'sse';
  send(message: unknown): boolean;
  close(): void;
}

const WS_OPEN = 1;
/** Ids longer than this in all (joined with commas) go in a WebSocket's first message, not its URL. */
const URL_IDS_MAX_CHARS = 4096;
export class PresenceClient {
  /** The local presence map: every watched id the service knows. */
  readonly presence = new Map<string, Presence>();
  private readonly watching = new Set<string>();
  /** Ids whose snapshot is awaited, with the messages that came before it. */
  private readonly pending = new Map<string, Extract<StreamMessage, { type: 'presence' }>[]>();
  private position: string | null = null;
  private state: State = 'idle';
  private conn: Connection | null = null;
  private attempt = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private device: { userId: string; deviceId: string; status?: Status; activity?: Activity | null } | null =
    null;
  private readonly syncListeners: ((recovered: boolean) => void)[] = [];
  private readonly changeListeners: ChangeListener[] = [];
  private readonly messageListeners: ((m: StreamMessage) => void)[] = [];
  private readonly base: string;

  constructor(private readonly options: ClientOptions) {
    this.base = options.url.replace(/\/+$/, '');
    for (const id of options.userIds ?? []) this.watching.add(id);
  }

  /** The transport in use now, or null between connections. */
  get transport(): 'ws' | 'sse' | null {
    return this.state === 'open' ? (this.conn?.kind ?? null) : null;
  }

  /** The last position seen (what a reconnect resumes from). */
  get lastPosition(): string | null {
    return this.position;
  }

  /** After each snapshot or resume: the map is in step with the service. `recovered` false: a fresh snapshot. */
  onSync(listener: (recovered: boolean) => void): () => void {
    return add(this.syncListeners, listener);
  }

  /** Each change of a watched user's presence in the local map. */
  onChange(listener: ChangeListener): () => void {
    return add(this.changeListeners, listener);
  }

  /** Every message, as it arrives (errors included). */
  onMessage(listener: (m: StreamMessage) => void): () => void {
    return add(this.messageListeners, listener);
  }

  /** Connects (and keeps reconnecting until `close`). */
  connect(): void {
    if (this.state === 'connecting' || this.state === 'open') return;
    this.state = 'connecting';
    this.open();
  }

  /** Closes for good: no reconnect. */
  close(): void {
    this.state = 'closed';
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.conn?.close();
    this.conn = null;
  }

  subscribe(ids: readonly string[]): void {
    const fresh = ids.filter((id) => !this.watching.has(id));
    if (fresh.length === 0) return;
    for (const id of fresh) {
      this.watching.add(id);
      this.pending.set(id, []);
    }
    // SSE cannot subscribe on an open stream: it reconnects with the new list (and resumes).
    if (this.conn?.kind === 'ws') this.conn.send({ type: 'subscribe', user_ids: fresh });
    else if (this.conn !== null) this.reopen();
  }

  unsubscribe(ids: readonly string[]): void {
    const gone = ids.filter((id) => this.watching.delete(id));
    if (gone.length === 0) return;
    for (const id of gone) {
      this.pending.delete(id);
      const previous = this.presence.get(id);
      if (this.presence.delete(id)) this.emitChange(id, undefined, previous);
    }
    if (this.conn?.kind === 'ws') this.conn.send({ type: 'unsubscribe', user_ids: gone });
    else if (this.conn !== null) this.reopen();
  }

  /** This connection is the device (WebSocket only; needs the write scope). Sent again after each reconnect. */
  identify(userId: string, deviceId: string, status?: Status, activity?: Activity | null): void {
    this.device = { userId, deviceId, status, activity };
    this.conn?.send(this.identifyMessage());
  }

  /** The device's status (after `identify`). */
  setStatus(status: Status, activity: Activity | null = null): void {
    if (this.device === null) throw new Error('identify before setStatus');
    this.device = { ...this.device, status, activity };
    this.conn?.send({ type: 'status', status, activity });
  }

  private identifyMessage(): Record<string, unknown> {
    const d = this.device!;
    return {
      type: 'identify',
      user_id: d.userId,
      device_id: d.deviceId,
      ...(d.status === undefined ? {} : { status: d.status }),
      ...(d.activity === undefined ? {} : { activity: d.activity }),
    };
  }

  // ------------------------------------------------------------------ connections

  /** The WebSocket's query (SSE streams build theirs in readSse). */
  private wsQuery(): string {
    const q = new URLSearchParams();
    const ids = [...this.watching];
    if (this.options.coalesceMs !== undefined) q.set('coalesce_ms', String(this.options.coalesceMs));
    // Ids still waiting for their first snapshot cannot be resumed (the client has nothing to
    // resume from for them): such a connection starts from a fresh snapshot instead.
    const since = this.position !== null && this.pending.size === 0 ? this.position : null;
    // A long id list would not fit in the URL (servers cap a request's head: Node at 16 KB), so
    // a WebSocket sends it in its first message instead (SSE, which has only the URL, splits it
    // over several streams).
    this.firstMessage = null;
    if (ids.join(',').length > URL_IDS_MAX_CHARS) {
      this.firstMessage =
        since === null ? { type: 'subscribe', user_ids: ids } : { type: 'resume', since, user_ids: ids };
    } else {
      if (ids.length > 0) q.set('user_ids', ids.join(','));
      if (since !== null) q.set('since', since);
    }
    this.askedFor = new Set(this.watching);
    // Browsers cannot set headers on a WebSocket: the key goes in the query (the service never logs it).
    q.set('access_token', this.options.token);
    const s = q.toString();
    return s === '' ? '' : `?${s}`;
  }

  private open(): void {
    const wanted = this.options.transport ?? 'auto';
    const Ws = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (wanted === 'sse' || Ws === undefined) {
      if (wanted === 'ws') throw new Error('no WebSocket class: pass options.WebSocket');
      this.openSse();
      return;
    }
    this.openWs(Ws, wanted === 'auto');
  }

  private openWs(Ws: WebSocketConstructor, fallBack: boolean): void {
    const ws = new Ws(`${this.base.replace(/^http/, 'ws')}/v1/ws${this.wsQuery()}`);
    let opened = false;
    const conn: Connection = {
      kind: 'ws',
      send: (m) => {
        if (ws.readyState !== WS_OPEN) return false;
        ws.send(JSON.stringify(m));
        return true;
      },
      close: () => ws.close(1000),
    };
    this.conn = conn;
    ws.onopen = () => {
      opened = true;
      this.opened();
      if (this.firstMessage !== null) conn.send(this.firstMessage);
      // Ids subscribed while the connection was being opened.
      const late = [...this.watching].filter((id) => !this.askedFor.has(id));
      if (late.length > 0) conn.send({ type: 'subscribe', user_ids: late });
      if (this.device !== null) conn.send(this.identifyMessage());
    };
    ws.onmessage = (ev) => {
      const text = typeof ev.data === 'string' ? ev.data : String(ev.data);
      this.handle(JSON.parse(text) as StreamMessage);
    };
    ws.onerror = () => undefined; // onclose follows
    ws.onclose = () => {
      if (this.conn !== conn) return;
      this.conn = null;
      // A WebSocket that never opened (blocked by a proxy, refused): the next try is SSE.
      if (!opened && fallBack && this.device === null) this.sseFallback = true;
      this.lost();
    };
  }

  /** The ids the current connection asked for (in its query or its first message). */
  private askedFor = new Set<string>();

  /** The subscribe or resume a WebSocket sends first when its ids did not fit in the URL. */
  private firstMessage: Record<string, unknown> | null = null;

  /** Set when a WebSocket could not be opened: later connections use SSE. */
  private sseFallback = false;

  /** The SSE streams of the current connection (several when the id list is long), or null. */
  private parts: SsePart[] | null = null;

  private openSse(): void {
    // Ids still waiting for their first snapshot cannot be resumed: a fresh snapshot then.
    const since = this.position !== null && this.pending.size === 0 ? this.position : null;
    this.askedFor = new Set(this.watching);
    const parts: SsePart[] = splitIds([...this.watching], SSE_URL_IDS_MAX_CHARS).map((ids) => ({
      ids,
      position: since,
      synced: false,
      recovered: true,
    }));
    const controller = new AbortController();
    const conn: Connection = {
      kind: 'sse',
      send: () => false,
      close: () => controller.abort(),
    };
    this.conn = conn;
    this.parts = parts;
    let answered = 0;
    let ended = false;
    // One stream ending ends them all: the connection is lost, and reconnects (resuming) whole.
    const end = (): void => {
      if (ended) return;
      ended = true;
      controller.abort();
      if (this.conn !== conn) return;
      this.conn = null;
      this.parts = null;
      this.lost();
    };
    for (const part of parts)
      void this.readSse(part, since, conn, controller.signal, () => {
        if (++answered === parts.length) this.opened();
      }).finally(end);
  }

  /** One SSE stream: its events go to the map until it ends (aborted, refused or cut). */
  private async readSse(
    part: SsePart,
    since: string | null,
    conn: Connection,
    signal: AbortSignal,
    answered: () => void,
  ): Promise<void> {
    const q = new URLSearchParams();
    if (this.options.coalesceMs !== undefined) q.set('coalesce_ms', String(this.options.coalesceMs));
    if (since !== null) q.set('since', since);
    // The ids with plain commas (URLSearchParams would make each one three characters).
    const query = [part.ids.length > 0 ? `user_ids=${idsParam(part.ids)}` : '', q.toString()]
      .filter((x) => x !== '')
      .join('&');
    try {
      const res = await fetch(`${this.base}/v1/stream${query === '' ? '' : `?${query}`}`, {
        headers: { accept: 'text/event-stream', authorization: `Bearer ${this.options.token}` },
        signal,
      });
      if (!res.ok || res.body === null) throw new Error(`stream answered ${res.status}`);
      answered();
      const reader = (res.body as unknown as { getReader(): ChunkReader }).getReader();
      const decoder = new TextDecoder();
      let buffer = '';
      for (;;) {
        const chunk = await reader.read();
        if (chunk.done || chunk.value === undefined || this.conn !== conn) break;
        buffer += decoder.decode(chunk.value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6));
          if (data.length > 0 && this.conn === conn)
            this.handle(JSON.parse(data.join('\n')) as StreamMessage, part);
        }
      }
    } catch {
      // aborted, refused or cut: the connection is lost (the caller reconnects)
    }
  }

  private opened(): void {
    if (this.state === 'closed') return;
    this.state = 'open';
    this.attempt = 0;
  }

  /** The connection ended without `close()`: reconnect after a back-off, resuming. */
  private lost(): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    const min = this.options.reconnect?.minMs ?? 500;
    const max = this.options.reconnect?.maxMs ?? 15_000;
    const wait = Math.min(max, min * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt += 1;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.state === 'closed') return;
      if (this.sseFallback) this.openSse();
      else this.open();
    }, wait);
  }

  /** SSE: a new connection with the new id list, resuming from the last position. */
  private reopen(): void {
    const old = this.conn;
    this.conn = null;
    old?.close();
    this.state = 'connecting';
    if (this.sseFallback || this.options.transport === 'sse') this.openSse();
    else this.open();
  }

  // ------------------------------------------------------------------ the local map

  /** The last position seen: of the stream, or the earliest of the SSE streams it is made of. */
  private moved(position: string, part: SsePart | undefined): void {
    if (part === undefined || this.parts === null) {
      this.position = position;
      return;
    }
    part.position = position;
    this.position = earliest(this.parts.map((p) => p.position));
  }

  /** A stream is in step (snapshot or resumed); over several SSE streams, once all of them are. */
  private synced(recovered: boolean, part: SsePart | undefined): void {
    if (part === undefined || this.parts === null) {
      this.emitSync(recovered);
      return;
    }
    part.synced = true;
    part.recovered = recovered;
    if (this.parts.every((p) => p.synced)) this.emitSync(this.parts.every((p) => p.recovered));
  }

  private handle(m: StreamMessage, part?: SsePart): void {
    for (const l of this.messageListeners) l(m);
    switch (m.type) {
      case 'snapshot': {
        this.moved(m.position, part);
        const full = m.recovered === false;
        for (const [id, p] of Object.entries(m.presence)) {
          if (!this.watching.has(id)) continue;
          const previous = this.presence.get(id);
          this.presence.set(id, p);
          if (previous === undefined || previous.version !== p.version) this.emitChange(id, p, previous);
          this.applyHeld(id);
        }
        for (const id of m.unknown) {
          const previous = this.presence.get(id);
          if (this.presence.delete(id)) this.emitChange(id, undefined, previous);
          this.applyHeld(id);
        }
        this.synced(!full, part);
        break;
      }
      case 'presence':
        this.moved(m.position, part);
        if (!this.watching.has(m.user_id)) break;
        if (this.pending.has(m.user_id)) this.pending.get(m.user_id)!.push(m);
        else this.apply(m);
        break;
      case 'resumed':
        this.moved(m.position, part);
        for (const id of part?.ids ?? [...this.pending.keys()]) this.applyHeld(id);
        this.synced(true, part);
        break;
      default:
        break;
    }
  }

  private apply(m: Extract<StreamMessage, { type: 'presence' }>): void {
    const previous = this.presence.get(m.user_id);
    if (previous !== undefined && m.version <= previous.version) return;
    this.presence.set(m.user_id, m.current);
    this.emitChange(m.user_id, m.current, previous);
  }

  /** The snapshot of `id` is in: the messages held back for it are applied (those newer than it). */
  private applyHeld(id: string): void {
    const held = this.pending.get(id);
    if (held === undefined) return;
    this.pending.delete(id);
    for (const m of held) this.apply(m);
  }

  private emitChange(id: string, p: Presence | undefined, previous: Presence | undefined): void {
    for (const l of this.changeListeners) l(id, p, previous);
  }

  private emitSync(recovered: boolean): void {
    for (const l of this.syncListeners) l(recovered);
  }
}

function add<T>(list: T[], item: T): () => void {
  list.push(item);
  return () => {
    const i = list.indexOf(item);
    if (i >= 0) list.splice(i, 1);
  };
}

export { reportActivity, type ActivityOptions } from './activity';
