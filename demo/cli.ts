/**
 * @module demo/cli
 * `presence demo`: the whole system on an embedded SQLite file. The real service (engine, HTTP
 * API) runs on a loopback port; six simulated platforms feed it through the real connector
 * interface and mappers; simulated laptops and phones send heartbeats over the HTTP API; the
 * table is a real client of the real-time stream (demo/stream-source.ts), its change lines the
 * stream's changes, and a signed-webhook receiver verifies every change. A live table sized to the terminal, plain
 * lines otherwise. What goes on screen is decided in demo/table.ts; this file only does the I/O.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CONNECTOR_MODULES } from '../connectors';
import { Simulation } from '../connectors/simulated';
import { parseEnv } from '../src/config/env';
import { ScaledClock, systemClock } from '../src/core/clock';
import { REAL_PLATFORMS, type RealPlatform } from '../src/core/presence';
import { clockTime } from '../src/core/time';
import { createService } from '../src/main';
import type { PresenceView } from '../src/normalizer/view';
import { verifyWebhook } from '../src/webhooks';
import { client, limiter, type RowSource } from './source';
import { streamSource } from './stream-source';
import {
  budget,
  composeFrame,
  composeHeader,
  fit,
  renderChange,
  renderTable,
  screenLines,
  summarize,
  type ChangeLine,
  type Style,
} from './table';

/** The terminal the live table is drawn on. */
export interface Screen {
  columns(): number;
  rows(): number;
  /** Calls `redraw` whenever the terminal is resized; returns the unsubscribe. */
  onResize(redraw: () => void): () => void;
}

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
  /** Loopback port for the API; 0 picks a free one. */
  readonly port?: number;
  /** The terminal's size; 100×30 when absent. */
  readonly screen?: Screen;
  /**
   * Platform variables (`ZOOM_ACCOUNT_ID`, `SLACK_BOT_TOKEN`, …): a platform whose credentials
   * are all here runs its real connector instead of the simulated one (e.g. against a fake server).
   */
  readonly platformEnv?: Readonly<Record<string, string>>;
  /** Where the table's rows come from; the real-time stream by default. */
  readonly source?: (api: ReturnType<typeof client>, stream: { url: string; token: string }) => RowSource;
}

/** What the orchestrator reads of a `presence.changed` webhook. */
interface ChangeEvent {
  readonly type: string;
  readonly timestamp: string;
  readonly data: {
    readonly user_id: string;
    readonly version: number;
    readonly previous: ChangeLine['previous'];
    readonly current: PresenceView;
  };
}

export interface DemoSummary {
  readonly changes: number;
  readonly events: number;
  readonly platforms: readonly string[];
}

/** A sleep that ends early on abort or when woken (a resize redraws at once). */
class Pause {
  private wake: (() => void) | null = null;

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        signal?.removeEventListener('abort', done);
        this.wake = null;
        resolve();
      };
      const t = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
      this.wake = done;
    });
  }

  interrupt(): void {
    this.wake?.();
  }
}

/** "1:05" */
const clockText = (ms: number): string => {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const mm = h > 0 ? `${h}:${String(m).padStart(2, '0')}` : String(m);
  return `${mm}:${String(s % 60).padStart(2, '0')}`;
};

/**
 * Up to this many people, each lives the compressed day (a state lasts ~20 s). With more, each
 * one's day slows down in proportion, so the demo's total load (heartbeats over HTTP, polls,
 * changes and webhooks per second) stays what 500 people make, and 10,000 stay drawable.
 */
const PEOPLE_AT_FULL_PACE = 500;
/** People registered per screen update while setting up. */
const REGISTER_CHUNK = 250;
/** Requests the demo's simulated clients keep in flight at once. */
const IN_FLIGHT = 16;
/** Past one page of reads, the counts over everyone are refreshed at most this often. */
const SUMMARY_EVERY_MS = 1000;
const FALLBACK_SCREEN = {
  columns: () => 100,
  rows: () => 30,
  onResize: () => () => undefined,
} satisfies Screen;

/** The platform variables of `env` (each module's polling and inbound ones), and nothing else. */
export function platformVariables(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of Object.values(CONNECTOR_MODULES))
    for (const name of [...m.env.polling, ...m.env.inbound]) {
      const v = env[name];
      if (v !== undefined && v !== '') out[name] = v;
    }
  return out;
}

/** Platforms whose credentials (one full set) are in `env`: they run for real. */
export function realPlatforms(env: Readonly<Record<string, string>>): RealPlatform[] {
  return REAL_PLATFORMS.filter((p) =>
    CONNECTOR_MODULES[p].credentials.some((set) => set.every((name) => env[name] !== undefined)),
  );
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-demo-'));
  const clock = new ScaledClock(o.speed, systemClock);
  const sim = new Simulation(
    { seed: o.seed, users: o.users, start: clock.now(), pace: Math.max(1, o.users / PEOPLE_AT_FULL_PACE) },
    clock,
  );
  const env = parseEnv({
    PRESENCE_DB: join(dir, 'presence.db'),
    PRESENCE_RATE_LIMIT: '1000000',
    LOG_LEVEL: 'silent',
    // The demo's orchestrator listens on loopback.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
    // A key of its own for this run's throw-away database: it seals the webhook signing secret.
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    ...o.platformEnv,
  });
  const real = realPlatforms(o.platformEnv ?? {});
  const svc = await createService(env, {
    clock,
    logger: false,
    connectors: Object.values(sim.connectors)
      .filter((connector) => !real.includes(connector.platform))
      .map((connector) => ({ connector, simulated: true })),
  });
  const screen = o.screen ?? FALLBACK_SCREEN;
  const style: Style = { color: o.tty };
  const sizeNow = (): { width: number; height: number } => ({
    width: Math.max(1, screen.columns()),
    height: Math.max(1, screen.rows()),
  });
  const pause = new Pause();
  let dirty = true; // the next frame clears the screen first
  const unsubscribe = o.tty
    ? screen.onResize(() => {
        dirty = true;
        pause.interrupt();
      })
    : () => undefined;
  let orchestrator: ReturnType<typeof createServer> | null = null;
  const recent: string[] = [];
  let changes = 0;
  let verified = 0;
  let events = 0;
  let rejected = 0;
  const seen = new Set<string>();
  let source: RowSource | null = null;
  try {
    await svc.app.listen({ host: '127.0.0.1', port: o.port ?? 0 });
    const address = svc.app.server.address();
    const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
    const key = (await svc.keys.create(['read', 'write', 'admin'], 'demo')).key;
    const api = client(base, key);
    const rowSource = (o.source ?? ((_api, s) => streamSource({ ...s, now: () => clock.now() })))(api, {
      url: base,
      token: key,
    });
    source = rowSource;
    const show = (line: ChangeLine): void => {
      changes += 1;
      const text = renderChange(line, style);
      if (o.tty) {
        recent.push(text);
        if (recent.length > 200) recent.splice(0, recent.length - 200);
      } else {
        o.write(`${text}\n`);
      }
    };
    const inFlight = limiter(IN_FLIGHT);

    // The "orchestrator": a downstream service that receives the change webhooks, verifies each
    // signature over the raw body, and acts on them (here: prints them).
    let secret = '';
    const hooks = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        let event: ChangeEvent;
        try {
          // The demo's clock runs fast, so webhook-timestamp is checked against it.
          event = verifyWebhook<ChangeEvent>(secret, raw, req.headers, { clock });
        } catch {
          rejected += 1;
          res.writeHead(401).end();
          return;
        }
        res.writeHead(204).end();
        if (event.type !== 'presence.changed') return;
        verified += 1;
        // A source without changes of its own (polled reads): the change lines are the webhooks'.
        if (rowSource.onChange !== undefined) return;
        const d = event.data;
        show({
          at: Date.parse(event.timestamp),
          userId: d.user_id,
          version: d.version,
          previous: d.previous,
          current: d.current,
          explain: d.current.explain,
        });
      });
    });
    orchestrator = hooks;
    await new Promise<void>((resolve) => hooks.listen(0, '127.0.0.1', resolve));
    const hookUrl = `http://127.0.0.1:${(hooks.address() as { port: number }).port}/presence`;
    secret = ((await api('POST', '/v1/webhooks', { url: hookUrl })) as { secret: string }).secret;

    const people = sim.world.people;
    const ids = people.map((p) => p.userId);
    const intro = [
      `presence demo: ${o.users.toLocaleString('en-US')} simulated people on slack, teams, discord, zoom, whatsapp, linkedin and devices`,
      `API ${base}  key ${key}`,
      `try: curl -H 'Authorization: Bearer ${key}' '${base}/v1/availability?user_ids=${ids.slice(0, 2).join(',')}'`,
      `change webhooks → orchestrator ${hookUrl}, every signature verified`,
      `dashboard ${base}/dashboard (sign in with the key above)`,
      ...real.map((p) => `${p}: the real connector (its variables are set), not simulated`),
    ];
    /** Draws one screen: the intro whole (the terminal wraps it), then everything else cut to fit. */
    const draw = (
      size: { width: number; height: number },
      status: string,
      parts?: Omit<Parameters<typeof composeFrame>[0], 'header'>,
    ): void => {
      const { width, height } = size;
      // Resized while this frame was being read: drawing it would wrap and scroll. The next one,
      // at once (the screen is still marked for clearing), has the new size.
      const current = sizeNow();
      if (current.width !== width || current.height !== height) return;
      const header = [...intro, fit(status, width)];
      const lines =
        parts === undefined
          ? composeHeader(header, width, height).lines
          : composeFrame({ header, ...parts }, width, height);
      const clear = dirty ? '\u001b[2J' : '';
      dirty = false;
      // Each line clears its row first, and the last one is not followed by a newline, so a frame
      // that fills the screen never scrolls it.
      o.write(`${clear}\u001b[H${lines.map((l) => `\u001b[2K${l}`).join('\r\n')}\u001b[J`);
    };
    if (o.tty)
      o.write('\u001b[?25l'); // hide the cursor while drawing
    else o.write(`${intro.join('\n')}\n`);

    // Every person and account is registered over the API, as an operator's script would.
    const registering = systemClock.now();
    const many = people.length > 4 * REGISTER_CHUNK;
    if (!o.tty && many)
      o.write(`registering ${people.length.toLocaleString('en-US')} people over the API…\n`);
    for (let i = 0; i < people.length && !o.signal?.aborted; i += REGISTER_CHUNK) {
      if (o.tty) {
        // Thousands of people take a while (several HTTP requests each): say how long is left.
        const spent = systemClock.now() - registering;
        const eta = i === 0 ? '' : ` (about ${clockText((spent / i) * (people.length - i))} left)`;
        draw(
          sizeNow(),
          `registering people over the API: ${i.toLocaleString('en-US')} of ${people.length.toLocaleString('en-US')}${eta}`,
        );
      }
      await Promise.all(
        people.slice(i, i + REGISTER_CHUNK).map((p) =>
          inFlight(async () => {
            await api('PUT', `/v1/users/${p.userId}`, { display_name: p.displayName });
            for (const a of p.accounts) {
              await api('POST', `/v1/users/${p.userId}/accounts`, {
                platform: a.platform,
                external_id: a.externalId,
                ...(a.workspaceId === '' ? {} : { workspace_id: a.workspaceId }),
              });
            }
          }),
        ),
      );
    }

    // Everyone is registered: the table watches them all (a stream client subscribes, in chunks,
    // and has its snapshot before the first frame).
    rowSource.onChange?.(show);
    await rowSource.start?.(ids, o.signal);

    // The day begins once everyone is registered, however long that took.
    sim.world.restartAt(clock.now());
    const started = systemClock.now();
    const frameMs = o.frameMs ?? 250;
    const manyPages = ids.length > 1000;
    let summary = '';
    let summaryAt = Number.NEGATIVE_INFINITY;
    while (!o.signal?.aborted && systemClock.now() - started < o.durationMs) {
      const sightings = await sim.step((hb) =>
        inFlight(async () => {
          await api('POST', '/v1/heartbeats', {
            user_id: hb.userId,
            device_id: hb.deviceId,
            status: hb.status,
            activity: hb.activity,
            ttl_seconds: Math.max(1, Math.round(hb.ttlMs / 1000)),
          });
          seen.add('device');
        }),
      );
      for (const s of sightings) seen.add(s.platform);
      events += sightings.length;
      await svc.engine.sweep();
      if (o.tty) {
        const realNow = systemClock.now();
        if (!manyPages || realNow - summaryAt >= SUMMARY_EVERY_MS) {
          summary = summarize(await rowSource.availability(ids));
          summaryAt = realNow;
        }
        const left = o.durationMs - (realNow - started);
        const simTime = clockTime(clock.now());
        const status = `${clockText(left)} left of ${clockText(o.durationMs)} · ${simTime} UTC ×${o.speed} · ${changes} changes · ${summary} · Ctrl-C stops`;
        // One size for the whole frame, read once: a resize meanwhile just redraws again at once.
        const size = sizeNow();
        const headerLines = intro.reduce((n, l) => n + screenLines(l, size.width), 1);
        const b = budget(size.height, headerLines, ids.length);
        const rows = await rowSource.rows(ids.slice(0, b.rows));
        draw(size, status, {
          table: renderTable(rows, clock.now(), style, size.width),
          budget: b,
          changes: recent,
          style,
        });
      }
      if (!(o.tty && dirty)) await pause.sleep(frameMs, o.signal);
    }
    if (!o.tty) {
      const table = renderTable(await rowSource.rows(ids), clock.now(), style);
      o.write(`${[...table.lines, table.legend].join('\n')}\n`);
    }
  } finally {
    unsubscribe();
    // Closed for good before the service stops, so no client tries to reconnect to it.
    source?.close?.();
    if (o.tty) o.write('\u001b[?25h\r\n');
    await svc.close();
    if (orchestrator !== null) {
      const o2 = orchestrator;
      await new Promise<void>((resolve) => o2.close(() => resolve()));
    }
    rmSync(dir, { recursive: true, force: true });
  }
  o.write(
    `demo ended: ${changes} presence changes from ${events} platform reports; platforms seen: ${[...seen].sort().join(', ')}; webhooks verified ${verified}, rejected ${rejected}\n`,
  );
  return { changes, events, platforms: [...seen].sort() };
}

/** `presence demo` on this process's stdout: a live table on a terminal, plain lines on a pipe. */
export async function runDemoCommand(opts: {
  users: number;
  duration: number;
  speed: number;
  seed: number;
}): Promise<DemoSummary> {
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  const out = process.stdout;
  const tty = out.isTTY === true;
  return runDemo({
    users: opts.users,
    durationMs: opts.duration,
    speed: opts.speed,
    seed: opts.seed,
    tty,
    write: (t) => out.write(t),
    signal: abort.signal,
    platformEnv: platformVariables(process.env),
    screen: {
      columns: () => out.columns ?? 100,
      rows: () => out.rows ?? 30,
      onResize: (redraw) => {
        out.on('resize', redraw);
        return () => out.off('resize', redraw);
      },
    },
  });
}
