/**
 * @module demo/cli
 * `presence demo`: the whole engine on simulated platforms and an embedded SQLite file, with a
 * live table on a terminal, or plain log lines when the output is not one.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Simulation } from '../connectors/simulated';
import { connectorContext } from '../src/aggregator/connector-host';
import { PresenceEngine, type PresenceChange } from '../src/aggregator/engine';
import { ScaledClock, systemClock } from '../src/core/clock';
import { silentLog } from '../src/core/log';
import { Ladder } from '../src/core/presence';
import { migrate, openDb } from '../src/store/db';
import { SqlitePresenceStore } from '../src/store/presence-store';
import { renderChange, renderTable, type ChangeLine, type Style } from './table';

export interface DemoOptions {
  readonly users: number;
  readonly durationMs: number;
  readonly speed: number;
  readonly seed: number;
  /** Draw the live table in place (a terminal) or print plain lines. */
  readonly tty: boolean;
  readonly write: (text: string) => void;
  /** Stops early when aborted (Ctrl-C). */
  readonly signal?: AbortSignal;
  /** Real milliseconds between frames. */
  readonly frameMs?: number;
}

export interface DemoSummary {
  readonly changes: number;
  readonly events: number;
  readonly platforms: readonly string[];
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-demo-'));
  const db = openDb(join(dir, 'presence.db'));
  migrate(db);
  const clock = new ScaledClock(o.speed, systemClock);
  const engine = new PresenceEngine({ clock, store: new SqlitePresenceStore(db), ladder: new Ladder() });
  engine.start();
  const sim = new Simulation({ seed: o.seed, users: o.users, start: clock.now(), pollMs: 60_000 }, clock);
  const people = sim.world.people;
  for (const p of people) {
    engine.putUser(p.userId, { displayName: p.displayName });
    for (const a of p.accounts) engine.linkAccount(p.userId, a);
  }
  const identityOnly = new Set(
    people.filter((p) => p.accounts.some((a) => a.platform === 'linkedin')).map((p) => p.userId),
  );
  for (const c of Object.values(sim.connectors))
    await c.start(connectorContext(engine, c.descriptor, silentLog));

  const style: Style = { color: o.tty };
  const recent: string[] = [];
  let changes = 0;
  let events = 0;
  const seen = new Set<string>();
  engine.onChange((batch: readonly PresenceChange[]) => {
    for (const c of batch) {
      changes += 1;
      const line: ChangeLine = {
        at: c.at,
        userId: c.userId,
        version: c.version,
        from: c.previous.status,
        to: c.current.status,
        activity: c.current.activity,
        explain: c.explain,
      };
      const text = renderChange(line, style);
      if (o.tty) {
        recent.push(text);
        if (recent.length > 12) recent.shift();
      } else {
        o.write(`${text}\n`);
      }
    }
  });

  if (o.tty)
    o.write('\u001b[2J\u001b[?25l'); // clear once, hide the cursor while drawing
  else
    o.write(
      `presence demo: ${o.users} simulated people on slack, teams, discord, zoom, whatsapp, linkedin and devices; speed ×${o.speed}\n`,
    );
  const started = systemClock.now();
  const frameMs = o.frameMs ?? 250;
  try {
    while (!o.signal?.aborted && systemClock.now() - started < o.durationMs) {
      const sightings = await sim.step(async (hb) => {
        await engine.heartbeat(hb.userId, hb.deviceId, hb.status, hb.activity, hb.ttlMs);
        seen.add('device');
      });
      for (const s of sightings) seen.add(s.platform);
      events += sightings.length;
      await engine.sweep();
      if (o.tty) {
        const rows = people.map((p) => engine.get(p.userId)).filter((v) => v !== undefined);
        const simTime = new Date(clock.now()).toISOString().slice(11, 19);
        const frame = [
          `presence demo — ${o.users} people, simulated time ${simTime} UTC (×${o.speed}), ${changes} changes, Ctrl-C to stop`,
          '',
          ...renderTable(rows, clock.now(), style, identityOnly),
          '',
          'recent changes:',
          ...recent,
        ];
        o.write(`\u001b[H${frame.map((l) => `${l}\u001b[K`).join('\n')}\n\u001b[J`);
      }
      await sleep(frameMs, o.signal);
    }
    if (!o.tty) {
      const rows = people.map((p) => engine.get(p.userId)).filter((v) => v !== undefined);
      o.write(`${renderTable(rows, clock.now(), style, identityOnly).join('\n')}\n`);
    }
  } finally {
    if (o.tty) o.write('\u001b[?25h');
    for (const c of Object.values(sim.connectors)) await c.stop();
    await engine.stop();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
  o.write(
    `demo ended: ${changes} presence changes from ${events} platform reports; platforms seen: ${[...seen].sort().join(', ')}\n`,
  );
  return { changes, events, platforms: [...seen].sort() };
}
