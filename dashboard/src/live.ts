/**
 * @module dashboard/live
 * Everyone the service tracks, kept live over the real-time stream by the project's own client
 * library (`presence-aggregator/client`): the ids come from `GET /v1/users` (checked again every
 * 10 s for new people), watched 10,000 to a connection; each client keeps its map in step
 * (snapshot, then every change, resumed after a reconnect) and the page re-renders at most once
 * per animation frame.
 */

import { PresenceClient, type Presence } from '../../src/client';
import { call } from './api';
import { chunks } from './logic';

/** The most ids one stream connection watches (the service's per-connection limit). */
const IDS_PER_CONNECTION = 10_000;
const NEW_PEOPLE_EVERY_MS = 10_000;

export class LivePeople {
  private readonly clients: PresenceClient[] = [];
  private readonly known = new Set<string>();
  private readonly listeners = new Set<() => void>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private frame: number | null = null;
  private closed = false;
  /** Connections whose first snapshot has arrived. */
  private synced = new Set<PresenceClient>();
  /** Ids the service tracks (some may not have a presence yet). */
  total = 0;
  lastSyncAt: number | null = null;
  lastError: string | null = null;

  constructor(private readonly key: string) {}

  start(): void {
    void this.loadIds();
    this.timer = setInterval(() => void this.loadIds(), NEW_PEOPLE_EVERY_MS);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    if (this.frame !== null) cancelAnimationFrame(this.frame);
    for (const c of this.clients) c.close();
    this.clients.length = 0;
  }

  /** Calls `run` after changes (at most once a frame); returns the unsubscribe. */
  onUpdate(run: () => void): () => void {
    this.listeners.add(run);
    return () => this.listeners.delete(run);
  }

  get(userId: string): Presence | undefined {
    for (const c of this.clients) {
      const p = c.presence.get(userId);
      if (p !== undefined) return p;
    }
    return undefined;
  }

  all(): Presence[] {
    return this.clients.flatMap((c) => [...c.presence.values()]);
  }

  /** True once every connection has had its snapshot. */
  get ready(): boolean {
    return this.clients.length > 0 && this.synced.size === this.clients.length;
  }

  /** 'ws', 'sse', or null while (re)connecting. */
  get transport(): string | null {
    const kinds = new Set(this.clients.map((c) => c.transport));
    if (kinds.has(null)) return null;
    return [...kinds].join('+') || null;
  }

  private notify(): void {
    if (this.frame !== null || this.closed) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      for (const run of this.listeners) run();
    });
  }

  private async loadIds(): Promise<void> {
    try {
      const ids: string[] = [];
      let after: string | null = null;
      for (;;) {
        const q: string = after === null ? '' : `&after=${encodeURIComponent(after)}`;
        const page: { user_ids: string[]; next: string | null; total: number } = await call(
          this.key,
          'GET',
          `/v1/users?limit=1000${q}`,
        );
        ids.push(...page.user_ids);
        this.total = page.total;
        if (page.next === null) break;
        after = page.next;
      }
      if (this.closed) return;
      this.watch(ids.filter((id) => !this.known.has(id)));
      this.lastError = null;
    } catch (error) {
      this.lastError = (error as Error).message;
    }
    this.notify();
  }

  private watch(fresh: string[]): void {
    if (fresh.length === 0) return;
    for (const id of fresh) this.known.add(id);
    // Fill the last connection first, then open more.
    const last = this.clients[this.clients.length - 1];
    let rest = fresh;
    if (last !== undefined) {
      const room = IDS_PER_CONNECTION - this.watchedBy.get(last)!;
      if (room > 0) {
        const take = rest.slice(0, room);
        rest = rest.slice(room);
        last.subscribe(take);
        this.watchedBy.set(last, this.watchedBy.get(last)! + take.length);
      }
    }
    for (const ids of chunks(rest, IDS_PER_CONNECTION)) this.open(ids);
  }

  private readonly watchedBy = new Map<PresenceClient, number>();

  private open(ids: string[]): void {
    const client = new PresenceClient({ url: location.origin, token: this.key, userIds: ids });
    this.clients.push(client);
    this.watchedBy.set(client, ids.length);
    client.onSync(() => {
      this.synced.add(client);
      this.lastSyncAt = Date.now();
      this.notify();
    });
    client.onChange(() => this.notify());
    client.onMessage((m) => {
      if (m.type === 'error') {
        this.lastError = m.error.message;
        this.notify();
      }
    });
    client.connect();
  }
}
