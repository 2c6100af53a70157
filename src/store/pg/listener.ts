/**
 * @module store/pg/listener
 * One connection of its own that LISTENs on a channel (the pool's clients are shared and
 * returned, so none of them can hold a LISTEN). PostgreSQL delivers a NOTIFY at its writer's
 * commit, in commit order, to every session listening then: so the only notifications a node
 * can miss are those committed while its connection was down. Hence `resumed` after every
 * reconnection (the caller re-reads everything once), and a probe on the connection every
 * `probeMs`, so a connection that died without a word (a half-open TCP) is found and replaced
 * instead of staying silent forever.
 */

import pg from 'pg';

import { Backoff } from '../../core/backoff';
import type { Log } from '../../core/log';
import { CONNECT_TIMEOUT_MS, PgUnavailableError, describeTarget } from './pool';

export interface ListenerEvents {
  /** A notification's payload. */
  notified(payload: string): void;
  /** Listening again after the connection was lost: notifications may have been missed. */
  resumed(): void;
}

export interface ListenerOptions {
  readonly connectionString: string;
  readonly channel: string;
  readonly log: Log;
  /** How often the connection is probed (default 5 s). */
  readonly probeMs?: number;
  /** Longest pause between reconnection attempts (default 2 s). */
  readonly retryMaxMs?: number;
}

const RETRY_FIRST_MS = 100;

/** The `application_name` of the listening session. */
export const LISTENER_APPLICATION = 'presence-follow';

export class PgListener {
  private client: pg.Client | null = null;
  private events: ListenerEvents | null = null;
  /** Payloads received before `start`. */
  private early: string[] = [];
  private missedEarly = false;
  private closed = false;
  private probe: NodeJS.Timeout | null = null;
  private reconnecting: Promise<void> | null = null;
  private probing = false;
  /** Ends the pause between reconnection attempts. */
  private wake: (() => void) | null = null;
  /** Connections lost, for tests and /metrics. */
  reconnects = 0;

  private constructor(private readonly o: ListenerOptions) {}

  /**
   * Listens before it returns (failing with `PgUnavailableError`): open it before loading what it
   * announces, so that nothing committed after the load is missed.
   */
  static async open(o: ListenerOptions): Promise<PgListener> {
    const l = new PgListener(o);
    try {
      await l.connect();
    } catch (error) {
      throw new PgUnavailableError(
        `cannot listen on PostgreSQL at ${describeTarget(o.connectionString)}: ${(error as Error).message}`,
      );
    }
    l.probe = setInterval(() => void l.check(), o.probeMs ?? 5_000);
    l.probe.unref();
    return l;
  }

  /** Hands what arrived since `open` to `events`, then each notification as it comes. */
  start(events: ListenerEvents): void {
    this.events = events;
    if (this.missedEarly) events.resumed();
    for (const p of this.early.splice(0)) events.notified(p);
  }

  /**
   * Stops listening. A reconnection under way is not waited for (PostgreSQL may be down, and a
   * stop is bounded): its pause ends at once, and a connection it opens after this is closed.
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.probe !== null) clearInterval(this.probe);
    this.probe = null;
    this.wake?.();
    const c = this.client;
    this.client = null;
    await c?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.o.connectionString,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
      // Named, so that an operator (or a test) can find this session among the pool's.
      application_name: LISTENER_APPLICATION,
    });
    client.on('notification', (m) => {
      if (client !== this.client || m.payload === undefined) return;
      if (this.events === null) this.early.push(m.payload);
      else this.events.notified(m.payload);
    });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(this.o.channel)}`);
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    this.client = client;
  }

  /** Probes the connection: one that errs, or does not answer within a probe period, is lost. */
  private async check(): Promise<void> {
    const c = this.client;
    if (c === null || this.reconnecting !== null || this.probing) return;
    this.probing = true;
    let timer: NodeJS.Timeout | undefined;
    const silent = new Promise<'silent'>((resolve) => {
      timer = setTimeout(() => resolve('silent'), this.o.probeMs ?? 5_000);
      timer.unref();
    });
    try {
      if ((await Promise.race([c.query('SELECT 1'), silent])) === 'silent') this.lost(c);
    } catch {
      this.lost(c);
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }

  private lost(client: pg.Client): void {
    if (client !== this.client || this.closed) return;
    this.client = null;
    this.reconnects += 1;
    client.end().catch(() => undefined);
    this.o.log.warn({}, 'the PostgreSQL notifications connection was lost; reconnecting');
    this.reconnecting = this.reconnect().finally(() => {
      this.reconnecting = null;
    });
  }

  private async reconnect(): Promise<void> {
    const backoff = new Backoff(RETRY_FIRST_MS, this.o.retryMaxMs ?? 2_000);
    while (!this.closed) {
      try {
        await this.connect();
      } catch {
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, backoff.next());
          t.unref();
          this.wake = () => {
            clearTimeout(t);
            resolve();
          };
        });
        this.wake = null;
        continue;
      }
      if (this.closed) {
        await this.client?.end().catch(() => undefined);
        this.client = null;
        return;
      }
      this.o.log.info({}, 'listening to PostgreSQL notifications again');
      if (this.events === null) this.missedEarly = true;
      else this.events.resumed();
      return;
    }
  }
}
