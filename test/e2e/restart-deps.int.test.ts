/**
 * Redis restarted empty, then PostgreSQL restarted, under load: three `presence serve` processes
 * of the shipped bin on a PostgreSQL and a Redis of this test's own (test/helpers/pg-server.ts,
 * test/helpers/redis-server.ts: the machine's shared servers are never touched), heartbeats
 * changing status and refreshing through every node, WebSocket devices held on every node, and a
 * webhook receiver verifying with `standardwebhooks`.
 *
 * Each outage: writes are answered 503 `unavailable` (bounded: no request hangs), `/readyz` names
 * the cause on every node, reads keep answering from memory; once the server is back every node
 * takes writes again by itself. Over the whole run: every acknowledged change is in PostgreSQL's
 * transitions at consecutive versions and is delivered to the receiver, every delivered version is
 * one PostgreSQL holds, and nobody goes offline (every device is alive, TTLs of 10 minutes), so
 * neither Redis forgetting every expiry nor PostgreSQL refusing writes sends a false offline.
 *
 * Waits are for conditions with generous bounds (two busy cores); durations are printed.
 */

import { randomBytes } from 'node:crypto';

import pg from 'pg';

import { PgServer } from '../helpers/pg-server';
import { RedisServer } from '../helpers/redis-server';
import { openWs, type WsClient } from '../helpers/stream-clients';
import { sleep } from '../helpers/wait';
import { cleanEnv, runBin, startServe, until, webhookReceiver, type ServeProcess } from './serve-process';

const TTL_S = 600;
const STATUSES = ['online', 'busy', 'away'] as const;
/** Users whose one device changes status at every heartbeat, each through the next node. */
const CHURN = Array.from({ length: 9 }, (_, i) => `churn${i}`);
/** Users whose device keeps heartbeating the same status (refreshes) through every node. */
const ALIVE = Array.from({ length: 4 }, (_, i) => `alive${i}`);
/** Users whose device heartbeat once, at the start: alive only through their 10-minute TTL. */
const QUIET = Array.from({ length: 4 }, (_, i) => `quiet${i}`);
/**
 * Users whose device keeps heartbeating the same status every second with a TTL of SHORT_TTL_S,
 * shorter than each outage: alive throughout, though their expiries are what Redis forgets and
 * what PostgreSQL cannot commit while down.
 */
const SHORT = Array.from({ length: 3 }, (_, i) => `short${i}`);
const SHORT_TTL_S = 4;
/** How long each outage lasts at least: past SHORT_TTL_S and the device grace (5 s). */
const OUTAGE_MS = 10_000;
/** One WebSocket device per node. */
const WS = ['ws0', 'ws1', 'ws2'];
/** What bounds one request: a write refused while a server is down must come back well before. */
const REQUEST_LIMIT_MS = 60_000;
/** What bounds a refusal (PostgreSQL's pool connects within 1.5 s; Redis's refusal needs no I/O). */
const REFUSED_WITHIN_MS = 15_000;
/** What bounds the recovery after a server is back (the nodes notice within a second or two). */
const RECOVERY_LIMIT_MS = 120_000;

/** Where the test is when a request starts: `-stopping` and `-starting` are the servers' own steps. */
type Phase =
  | 'steady'
  | 'redis-stopping'
  | 'redis-down'
  | 'redis-starting'
  | 'redis-back'
  | 'pg-stopping'
  | 'pg-down'
  | 'pg-starting'
  | 'pg-back';

interface Outcome {
  readonly user: string;
  readonly node: number;
  readonly status: string;
  /** Whether the status differs from the user's last acknowledged one (else it is a refresh). */
  readonly change: boolean;
  /** The HTTP status, or -1 when the request failed or hit REQUEST_LIMIT_MS. */
  readonly code: number;
  readonly error?: string;
  readonly reason?: string;
  readonly ms: number;
  readonly phase: Phase;
}

let pgServer: PgServer;
let redis: RedisServer;
const nodes: ServeProcess[] = [];
const sockets: WsClient[] = [];

beforeAll(async () => {
  [pgServer, redis] = await Promise.all([PgServer.start(), RedisServer.start()]);
  const env = {
    PRESENCE_DATABASE_URL: pgServer.url,
    PRESENCE_REDIS_URL: redis.url,
    PRESENCE_REDIS_PREFIX: 'restart-deps:',
    PRESENCE_SECRET_KEY: randomBytes(32).toString('base64'),
    WEBHOOK_ALLOW_PRIVATE_TARGETS: 'true', // the receiver is on loopback
  };
  expect((await runBin(['migrate'], cleanEnv(env))).code).toBe(0);
  for (let i = 0; i < 3; i++) nodes.push(await startServe({ env }));
}, 240_000);

afterAll(async () => {
  for (const s of sockets.splice(0)) await s.close().catch(() => undefined);
  // Both servers up again first, so a test that failed mid-outage still stops its nodes cleanly.
  await Promise.all([redis?.start(), pgServer?.start()]).catch(() => undefined);
  for (const n of nodes.splice(0)) await n.stop();
  await redis?.kill();
  await pgServer?.destroy();
}, 120_000);

/** Each user's last acknowledged status. */
const lastAcked = new Map<string, string>();

async function heartbeat(
  node: number,
  user: string,
  status: string,
  phase: () => Phase,
  ttlS = TTL_S,
): Promise<Outcome> {
  const at = phase();
  const change = lastAcked.get(user) !== status;
  const outcome = await send(node, user, status, ttlS);
  if (outcome.code === 204) lastAcked.set(user, status);
  return { user, node, status, change, ...outcome, phase: at };
}

async function send(
  node: number,
  user: string,
  status: string,
  ttlS: number,
): Promise<Pick<Outcome, 'code' | 'error' | 'reason' | 'ms'>> {
  const started = performance.now();
  const svc = nodes[node]!;
  try {
    const res = await fetch(`${svc.base}/v1/heartbeats`, {
      method: 'POST',
      headers: { authorization: `Bearer ${svc.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ user_id: user, device_id: 'dev', status, ttl_seconds: ttlS }),
      signal: AbortSignal.timeout(REQUEST_LIMIT_MS),
    });
    const text = await res.text();
    const body = text === '' ? null : JSON.parse(text);
    return {
      code: res.status,
      ...(res.status >= 300 && { error: body?.error?.code, reason: body?.error?.details?.[0]?.code }),
      ms: performance.now() - started,
    };
  } catch (e) {
    return { code: -1, error: String(e), ms: performance.now() - started };
  }
}

/** The load: each user's heartbeats one after another (so its acknowledged order is known). */
class Load {
  readonly outcomes: Outcome[] = [];
  phase: Phase = 'steady';
  /** The churning and alive users' loops run while this is set. */
  private changing = true;
  /**
   * The short-TTL users' loops run while this is set, past `stop()` until `end()`: those devices
   * must stay alive until the checks are done, or they go offline one TTL later, as they should.
   */
  private keeping = true;
  private readonly loops: Promise<void>[] = [];
  private readonly keepers: Promise<void>[] = [];

  start(): void {
    const changing = () => this.changing;
    CHURN.forEach((u, i) => this.loops.push(this.loop(u, i, (n) => STATUSES[n % 3]!, 150, changing)));
    ALIVE.forEach((u, i) => this.loops.push(this.loop(u, i, () => 'online', 400, changing)));
    SHORT.forEach((u, i) =>
      this.keepers.push(
        this.loop(
          u,
          i,
          () => 'online',
          1000,
          () => this.keeping,
          SHORT_TTL_S,
        ),
      ),
    );
  }

  private async loop(
    user: string,
    offset: number,
    status: (n: number) => string,
    pauseMs: number,
    running: () => boolean,
    ttlS = TTL_S,
  ) {
    for (let n = 0; running(); n++) {
      this.outcomes.push(await heartbeat((offset + n) % 3, user, status(n), () => this.phase, ttlS));
      await sleep(pauseMs);
    }
  }

  /** What each group of users got in each phase, for the log. */
  summary(): string {
    const rows = new Map<string, number>();
    for (const o of this.outcomes) {
      const kind = `${o.user.replace(/\d+$/, '')} ${o.change ? 'change' : 'refresh'}`;
      const k = `${o.phase} ${kind} ${o.code}${o.reason ? ` ${o.reason}` : ''}`;
      rows.set(k, (rows.get(k) ?? 0) + 1);
    }
    return [...rows].map(([k, n]) => `${k}: ${n}`).join('\n');
  }

  /** Stops the changes and the long-TTL refreshes; the short-TTL devices go on until `end()`. */
  async stop(): Promise<void> {
    this.changing = false;
    await Promise.all(this.loops);
  }

  async end(): Promise<void> {
    this.changing = false;
    this.keeping = false;
    await Promise.all([...this.loops, ...this.keepers]);
  }

  /** Outcomes of the churning users' changes (not their refreshes) started in `phase`. */
  churn(phase: Phase): Outcome[] {
    return this.outcomes.filter((o) => o.phase === phase && o.user.startsWith('churn') && o.change);
  }
}

async function readyz(node: ServeProcess): Promise<{ status: number; reason?: string }> {
  const res = await fetch(`${node.base}/readyz`);
  const body = (await res.json()) as { reason?: string };
  return { status: res.status, ...(body.reason !== undefined && { reason: body.reason }) };
}

async function presence(
  node: ServeProcess,
  user: string,
): Promise<{ status: string; version: number } | null> {
  const r = await node.api('GET', `/v1/presence/${user}`);
  return r.status === 200 ? { status: r.body.status, version: r.body.version } : null;
}

/** Every user's transitions in PostgreSQL, by version. */
async function transitions(): Promise<Map<string, { version: number; to: string }[]>> {
  const c = new pg.Client({ connectionString: pgServer.url });
  await c.connect();
  try {
    const { rows } = await c.query<{ user_id: string; version: string; to_status: string }>(
      'SELECT user_id, version, to_status FROM transitions ORDER BY user_id, version, id',
    );
    const byUser = new Map<string, { version: number; to: string }[]>();
    for (const r of rows) {
      const list = byUser.get(r.user_id) ?? [];
      list.push({ version: Number(r.version), to: r.to_status });
      byUser.set(r.user_id, list);
    }
    return byUser;
  } finally {
    await c.end();
  }
}

/** Waits until every node's /readyz says `reason` (or ready, for null); returns the answers. */
async function everyReadyz(reason: string | null, what: string, limitMs = RECOVERY_LIMIT_MS) {
  for (const [i, n] of nodes.entries()) {
    await until(
      async () => {
        const r = await readyz(n);
        return reason === null ? r.status === 200 : r.status === 503 && r.reason === reason;
      },
      `node ${i}'s /readyz: ${what}`,
      limitMs,
    );
  }
}

/** The checks of one outage, between the server's stop and its start. */
async function whileDown(load: Load, phase: 'redis-down' | 'pg-down', reason: string): Promise<void> {
  // Reads keep answering from memory, on every node.
  for (const n of nodes) {
    expect((await fetch(`${n.base}/healthz`)).status).toBe(200);
    for (const u of [ALIVE[0]!, QUIET[0]!, WS[0]!])
      expect(await presence(n, u)).toMatchObject({ status: 'online' });
    expect((await presence(n, CHURN[0]!))?.status).toMatch(/^(online|busy|away)$/);
  }
  // Stay down past the short TTL and the device grace, and until every node refused a few changes.
  await sleep(OUTAGE_MS);
  await until(
    () => [0, 1, 2].every((i) => load.churn(phase).filter((o) => o.node === i).length >= 3),
    `three refused writes per node (${phase})`,
    RECOVERY_LIMIT_MS,
  );
  const down = load.churn(phase);
  // Every change refused, with the cause named, and answered quickly (not held).
  expect(down.filter((o) => !(o.code === 503 && o.error === 'unavailable' && o.reason === reason))).toEqual(
    [],
  );
  const slowest = Math.max(...down.map((o) => o.ms));
  console.log(
    `${phase}: ${down.length} writes refused (503 ${reason}), the slowest in ${Math.round(slowest)} ms`,
  );
  expect(slowest).toBeLessThan(REFUSED_WITHIN_MS);
  if (phase === 'redis-down') {
    // A heartbeat that changes nothing needs no change log: it is taken (its expiry kept in
    // memory for the next batch to Redis), also when a change refused shares its group commit
    // (the commit then takes the users without changes apart). Stable users only: a churning
    // user's "same status" may be a change to a node that had not followed the last change
    // before Redis went away, and is refused as one.
    const refreshes = load.outcomes.filter((o) => o.phase === phase && /^(alive|short)/.test(o.user));
    console.log(`${phase}: ${refreshes.length} refreshes of stable users taken (204)`);
    expect(refreshes.length).toBeGreaterThan(0);
    expect(refreshes.filter((o) => o.code !== 204)).toEqual([]);
  }
}

/** Waits until every node acknowledged a change again after the restart; prints how long it took. */
async function recovered(load: Load, phase: 'redis-back' | 'pg-back', since: number): Promise<void> {
  await everyReadyz(null, `ready again (${phase})`);
  for (const i of [0, 1, 2])
    await until(
      () => load.churn(phase).some((o) => o.node === i && o.code === 204),
      `node ${i} acknowledging changes again (${phase})`,
      RECOVERY_LIMIT_MS,
    );
  console.log(
    `${phase}: every node ready and acknowledging changes ${Math.round(performance.now() - since)} ms after the start`,
  );
  // A few rounds of acknowledged changes per user before the next step.
  await until(
    () => CHURN.every((u) => load.churn(phase).filter((o) => o.user === u && o.code === 204).length >= 3),
    `three acknowledged changes per user (${phase})`,
    RECOVERY_LIMIT_MS,
  );
}

it('Redis restarted empty, then PostgreSQL restarted, under load: 503s while down, recovery, nothing acknowledged lost, no false offline', async () => {
  const started = performance.now();
  const hooks = await webhookReceiver(nodes[0]!);
  const load = new Load();
  try {
    for (const [i, n] of nodes.entries())
      await until(
        async () => (await n.api('GET', `/v1/webhooks/${hooks.endpointId}`)).status === 200,
        `the endpoint known on node ${i}`,
      );
    for (const [i, u] of QUIET.entries())
      expect((await heartbeat(i % 3, u, 'online', () => 'steady')).code).toBe(204);
    for (const [i, u] of WS.entries()) {
      const n = nodes[i]!;
      const ws = await openWs(
        `${n.base.replace('http', 'ws')}/v1/ws?access_token=${encodeURIComponent(n.key)}`,
      );
      sockets.push(ws);
      ws.send({ type: 'identify', user_id: u, device_id: 'tab' });
    }
    for (const u of WS)
      await until(async () => (await presence(nodes[0]!, u))?.status === 'online', `${u} online`);

    for (const [i, u] of SHORT.entries())
      expect((await heartbeat(i % 3, u, 'online', () => 'steady', SHORT_TTL_S)).code).toBe(204);
    load.start();
    await until(
      () =>
        CHURN.every((u) => load.churn('steady').filter((o) => o.user === u && o.code === 204).length >= 3),
      'three acknowledged changes per user before the outages',
      RECOVERY_LIMIT_MS,
    );

    // (a) Redis killed, and started again empty.
    load.phase = 'redis-stopping';
    await redis.kill();
    await everyReadyz('change_log_unavailable', 'Redis named');
    load.phase = 'redis-down';
    await whileDown(load, 'redis-down', 'change_log_unavailable');
    const redisStart = performance.now();
    load.phase = 'redis-starting';
    await redis.start();
    load.phase = 'redis-back';
    await recovered(load, 'redis-back', redisStart);

    // (b) PostgreSQL stopped as by a crash (its clients cut off at once), and started again
    // (recovering from its WAL).
    load.phase = 'pg-stopping';
    await pgServer.stop('immediate');
    await everyReadyz('database_unreachable', 'the database named');
    load.phase = 'pg-down';
    await whileDown(load, 'pg-down', 'database_unreachable');
    const pgStart = performance.now();
    load.phase = 'pg-starting';
    await pgServer.start();
    load.phase = 'pg-back';
    await recovered(load, 'pg-back', pgStart);
    await load.stop();

    // No request hung or failed otherwise: each was acknowledged or refused as unavailable.
    const odd = load.outcomes.filter((o) => o.code !== 204 && !(o.code === 503 && o.error === 'unavailable'));
    expect(odd).toEqual([]);

    // Every node ends at the version PostgreSQL holds, for every user.
    console.log(load.summary());
    const everyUser = [...CHURN, ...ALIVE, ...SHORT, ...QUIET, ...WS];
    let stored = await transitions();
    for (const u of everyUser) {
      await until(async () => {
        stored = await transitions();
        const last = stored.get(u)?.at(-1)?.version;
        const seen = await Promise.all(nodes.map((n) => presence(n, u)));
        return last !== undefined && seen.every((s) => s?.version === last);
      }, `${u} at its stored version on every node`);
    }

    for (const u of everyUser) {
      const list = stored.get(u)!;
      // Consecutive versions from 1, each once.
      expect({ u, versions: list.map((t) => t.version) }).toEqual({ u, versions: list.map((_, i) => i + 1) });
      // Nobody went offline: every device was alive throughout.
      expect({ u, offline: list.filter((t) => t.to === 'offline') }).toEqual({ u, offline: [] });
    }
    for (const u of [...ALIVE, ...SHORT, ...QUIET, ...WS])
      expect({ u, to: stored.get(u)!.map((t) => t.to) }).toEqual({ u, to: ['online'] });

    // Every acknowledged change is in the transitions, in the order it was acknowledged (a write
    // refused may still have been committed when the connection dropped under its COMMIT: extra
    // transitions are allowed, missing ones are not), and the last acknowledged status is the
    // user's last transition.
    for (const u of CHURN) {
      const acked = load.outcomes.filter((o) => o.user === u && o.code === 204).map((o) => o.status);
      const changes = acked.filter((s, i) => i === 0 || s !== acked[i - 1]);
      const to = stored.get(u)!.map((t) => t.to);
      let at = 0;
      for (const s of changes) {
        while (at < to.length && to[at] !== s) at++;
        // On a miss, the whole story of the user, to read what happened.
        const story = () =>
          load.outcomes
            .filter((o) => o.user === u)
            .map((o) => `${o.phase} n${o.node} ${o.status} ${o.code}${o.change ? '' : ' (refresh)'}`);
        expect({ u, missing: at < to.length ? null : { s, to, story: story() } }).toEqual({
          u,
          missing: null,
        });
        at++;
      }
      expect({ u, last: to.at(-1) }).toEqual({ u, last: acked.at(-1) });
    }

    // Every stored transition is delivered, with the status stored; nothing else is delivered.
    const key = (u: string, v: number) => `${u}@${v}`;
    const want = new Map<string, string>();
    for (const u of everyUser) for (const t of stored.get(u)!) want.set(key(u, t.version), t.to);
    const delivered = () =>
      new Map(
        hooks
          .events()
          .filter((e) => e.type === 'presence.changed')
          .map((e) => [key(e.data.user_id, e.data.current.version), e.data.current.status as string]),
      );
    await until(
      () => [...want.keys()].every((k) => delivered().has(k)),
      `all ${want.size} changes delivered`,
      RECOVERY_LIMIT_MS,
    );
    expect(delivered()).toEqual(want);
    const offline = hooks
      .events()
      .filter((e) => e.type === 'presence.changed' && e.data.current.status === 'offline');
    expect(offline).toEqual([]);

    const acks = load.outcomes.filter((o) => o.code === 204).length;
    console.log(
      `restart-deps: ${load.outcomes.length} heartbeats (${acks} acknowledged), ${want.size} changes stored and delivered, ${Math.round((performance.now() - started) / 1000)} s`,
    );
  } finally {
    await load.end();
    await hooks.close();
  }
}, 600_000);
