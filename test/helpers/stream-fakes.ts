/**
 * Fakes for the stream core's unit tests: timers driven by a FakeClock, a transport that records
 * what it was given and flushes only when told, presence changes and a presence reader.
 */

import type { PresenceChange } from '../../src/core/changes';
import type { FakeClock } from '../../src/core/clock';
import type { Status } from '../../src/core/presence';
import type { PresenceReader } from '../../src/stream/hub';
import type { Outgoing } from '../../src/stream/message';
import type { Transport } from '../../src/stream/subscriber';
import type { Timer, Timers } from '../../src/stream/timers';

export class ManualTimers implements Timers {
  private pending: { at: number; every: number | null; run: () => void; cancelled: boolean }[] = [];
  constructor(private readonly clock: FakeClock) {}

  after(ms: number, run: () => void): Timer {
    const t = { at: this.clock.now() + ms, every: null, run, cancelled: false };
    this.pending.push(t);
    return { cancel: () => void (t.cancelled = true) };
  }

  every(ms: number, run: () => void): Timer {
    const t = { at: this.clock.now() + ms, every: ms, run, cancelled: false };
    this.pending.push(t);
    return { cancel: () => void (t.cancelled = true) };
  }

  /** Moves the clock and runs every timer that came due, in time order. */
  advance(ms: number): void {
    const end = this.clock.now() + ms;
    for (;;) {
      const due = this.pending.filter((t) => !t.cancelled && t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) break;
      this.clock.set(Math.max(this.clock.now(), due.at));
      if (due.every === null) due.cancelled = true;
      else due.at += due.every;
      due.run();
    }
    this.clock.set(end);
    this.pending = this.pending.filter((t) => !t.cancelled);
  }

  get armed(): number {
    return this.pending.filter((t) => !t.cancelled).length;
  }
}

export class FakeTransport implements Transport {
  readonly written: Outgoing[][] = [];
  readonly unflushed: (() => void)[] = [];
  pings = 0;
  ended: 'resync' | 'drain' | 'dead' | null = null;
  /** When false, writes stay unflushed until `flushAll`. */
  autoFlush = true;

  constructor(readonly kind: 'ws' | 'sse' = 'ws') {}

  write(messages: readonly Outgoing[], flushed: () => void): void {
    this.written.push([...messages]);
    if (this.autoFlush) flushed();
    else this.unflushed.push(flushed);
  }

  flushAll(): void {
    for (const f of this.unflushed.splice(0)) f();
  }

  ping(): void {
    this.pings += 1;
  }
  resync(): void {
    this.ended = 'resync';
  }
  drain(): void {
    this.ended = 'drain';
  }
  dead(): void {
    this.ended = 'dead';
  }

  /** Every message written so far, parsed. */
  messages(): any[] {
    return this.written.flat().map((m) => JSON.parse(m.json));
  }
}

/** A presence change as the engine commits it, with a small presence object. */
export function change(userId: string, version: number, from: Status, to: Status, at = 0): PresenceChange {
  return {
    userId,
    version,
    at,
    previous: { status: from, activity: null, customStatus: null },
    current: { status: to, activity: null, customStatus: null, source: 'app' } as PresenceChange['current'],
    changed: ['status'],
    cause: 'teams',
    explain: `teams said ${to}`,
    presence: {
      user_id: userId,
      status: to,
      activity: null,
      custom_status: null,
      version,
    } as unknown as PresenceChange['presence'],
  };
}

/** A reader over a plain map of versions and statuses. */
export function fakeReader(state: Map<string, { version: number; status: Status }>): PresenceReader {
  return {
    getManyJson(ids) {
      const presence: Record<string, unknown> = {};
      const unknown: string[] = [];
      for (const id of ids) {
        const s = state.get(id);
        if (s === undefined) unknown.push(id);
        else presence[id] = { user_id: id, ...s };
      }
      return Buffer.from(JSON.stringify({ presence, unknown }));
    },
    state: (id) => state.get(id),
  };
}
