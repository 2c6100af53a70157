/**
 * @module demo/cli
 * `presence demo`: the whole system on an embedded SQLite file. The real service (engine, HTTP
 * API) runs on a loopback port; six simulated platforms feed it through the real connector
 * interface and mappers; simulated laptops and phones send heartbeats over the HTTP API; the
 * table is read back over the API. A live table on a terminal, plain lines otherwise.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Simulation } from '../connectors/simulated';
import { parseEnv } from '../src/config/env';
import { ScaledClock, systemClock } from '../src/core/clock';
import { createService } from '../src/main';
import type { PresenceView } from '../src/normalizer/view';
import { verifyWebhook } from '../src/webhooks';
import { fit, renderChange, renderTable, type ChangeLine, type Style } from './table';

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
  /** Terminal width; lines are cut to it. */
  readonly columns?: () => number;
}

/** What the orchestrator reads of a `presence.changed` webhook. */
interface ChangeEvent {
  readonly type: string;
  readonly timestamp: string;
  readonly data: {
    readonly user_id: string;
    readonly version: number;
    readonly previous: { readonly status: PresenceView['status'] };
    readonly current: PresenceView;
  };
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

/** A small client of the service's own API, as a downstream program would use it. */
function client(base: string, key: string) {
  return async (method: string, path: string, body?: unknown): Promise<unknown> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} → ${res.status} ${text}`);
    return text === '' ? null : (JSON.parse(text) as unknown);
  };
}

export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const dir = mkdtempSync(join(tmpdir(), 'presence-demo-'));
  const clock = new ScaledClock(o.speed, systemClock);
  const sim = new Simulation({ seed: o.seed, users: o.users, start: clock.now(), pollMs: 60_000 }, clock);
  const env = parseEnv({
    PRESENCE_DB: join(dir, 'presence.db'),
    PRESENCE_RATE_LIMIT: '1000000',
    LOG_LEVEL: 'silent',
    // The demo's orchestrator listens on loopback.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true',
  });
  const svc = await createService(env, {
    clock,
    logger: false,
    connectors: Object.values(sim.connectors).map((connector) => ({ connector, simulated: true })),
  });
  await svc.app.listen({ host: '127.0.0.1', port: o.port ?? 0 });
  const address = svc.app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`;
  const key = svc.keys.create(['read', 'write', 'admin'], 'demo').key;
  const api = client(base, key);

  const people = sim.world.people;
  for (const p of people) {
    await api('PUT', `/v1/users/${p.userId}`, { display_name: p.displayName });
    for (const a of p.accounts) {
      await api('POST', `/v1/users/${p.userId}/accounts`, {
        platform: a.platform,
        external_id: a.externalId,
        ...(a.workspaceId === '' ? {} : { workspace_id: a.workspaceId }),
      });
    }
  }
  const ids = people.map((p) => p.userId).join(',');
  const readAll = async (): Promise<PresenceView[]> => {
    const body = (await api('GET', `/v1/presence?user_ids=${ids}`)) as {
      presence: Record<string, PresenceView>;
    };
    return people.map((p) => body.presence[p.userId]).filter((v) => v !== undefined);
  };

  const style: Style = { color: o.tty };
  const recent: string[] = [];
  let changes = 0;
  let events = 0;
  const seen = new Set<string>();
  let rejected = 0;
  // The "orchestrator": a downstream service that receives the change webhooks, verifies each
  // signature over the raw body, and acts on them (here: prints them).
  let secret = '';
  const orchestrator = createServer((req, res) => {
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
      changes += 1;
      const d = event.data;
      const line: ChangeLine = {
        at: Date.parse(event.timestamp),
        userId: d.user_id,
        version: d.version,
        from: d.previous.status,
        to: d.current.status,
        activity: d.current.activity,
        explain: d.current.explain,
      };
      const text = renderChange(line, style);
      if (o.tty) {
        recent.push(text);
        if (recent.length > 12) recent.shift();
      } else {
        o.write(`${text}\n`);
      }
    });
  });
  await new Promise<void>((resolve) => orchestrator.listen(0, '127.0.0.1', resolve));
  const hookUrl = `http://127.0.0.1:${(orchestrator.address() as { port: number }).port}/presence`;
  secret = ((await api('POST', '/v1/webhooks', { url: hookUrl })) as { secret: string }).secret;

  const intro = [
    `presence demo: ${o.users} simulated people on slack, teams, discord, zoom, whatsapp, linkedin and devices; speed ×${o.speed}`,
    `API ${base}  key ${key}  (try: curl -H 'Authorization: Bearer ${key}' ${base}/v1/availability?user_ids=alice,bob)`,
    `change webhooks → orchestrator ${hookUrl}, every signature verified`,
  ];
  if (o.tty)
    o.write('\u001b[2J\u001b[?25l'); // clear once, hide the cursor while drawing
  else o.write(`${intro.join('\n')}\n`);
  const started = systemClock.now();
  const frameMs = o.frameMs ?? 250;
  try {
    while (!o.signal?.aborted && systemClock.now() - started < o.durationMs) {
      const sightings = await sim.step(async (hb) => {
        await api('POST', '/v1/heartbeats', {
          user_id: hb.userId,
          device_id: hb.deviceId,
          status: hb.status,
          activity: hb.activity,
          ttl_seconds: Math.max(1, Math.round(hb.ttlMs / 1000)),
        });
        seen.add('device');
      });
      for (const s of sightings) seen.add(s.platform);
      events += sightings.length;
      await svc.engine.sweep();
      if (o.tty) {
        const simTime = new Date(clock.now()).toISOString().slice(11, 19);
        const frame = [
          ...intro,
          `simulated time ${simTime} UTC, ${changes} changes so far; Ctrl-C to stop`,
          '',
          ...renderTable(await readAll(), clock.now(), style),
          '',
          'recent changes:',
          ...recent,
        ];
        const width = o.columns?.() ?? 200;
        o.write(`\u001b[H${frame.map((l) => `${fit(l, width)}\u001b[K`).join('\n')}\n\u001b[J`);
      }
      await sleep(frameMs, o.signal);
    }
    if (!o.tty) o.write(`${renderTable(await readAll(), clock.now(), style).join('\n')}\n`);
  } finally {
    if (o.tty) o.write('\u001b[?25h');
    await svc.close();
    await new Promise<void>((resolve) => orchestrator.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  }
  o.write(
    `demo ended: ${changes} presence changes from ${events} platform reports; platforms seen: ${[...seen].sort().join(', ')}; webhooks verified ${changes}, rejected ${rejected}\n`,
  );
  return { changes, events, platforms: [...seen].sort() };
}
