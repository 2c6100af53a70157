/**
 * @module config/env
 * Configuration from environment variables (README, Configuration), validated once at start. A bad value
 * stops the start with a message naming each bad variable; a secret's value is never echoed.
 */

import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

import { z } from 'zod';

import { Ladder, type DecayStep } from '../core/presence';
import type { PrivacySettings, Visibility } from '../privacy/project';

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/**
 * "2m,10m,60m": an inferred signal is online for 2 minutes, idle until 10, away until 60, then
 * expires (docs/api.md, Defaults of the write routes).
 */
export function parseDecay(text: string): DecayStep[] {
  const parts = text.split(',').map((p) => p.trim());
  if (parts.length !== 3) throw new Error('three rising durations, e.g. 2m,10m,60m (online, idle, away)');
  const ms = parts.map((p) => {
    const m = DURATION.exec(p);
    if (m === null) throw new Error(`"${p}" is not a duration such as 90s, 2m or 1h`);
    return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  });
  if (!(ms[0]! > 0 && ms[0]! < ms[1]! && ms[1]! < ms[2]!))
    throw new Error('the three durations must rise, e.g. 2m,10m,60m');
  return [
    { status: 'online', untilMs: ms[0]! },
    { status: 'idle', untilMs: ms[1]! },
    { status: 'away', untilMs: ms[2]! },
  ];
}

/** A poll interval such as "30s" or "2m": at least one second, at most a day. */
function parseInterval(text: string): number {
  const m = DURATION.exec(text.trim());
  if (m === null) throw new Error(`"${text}" is not a duration such as 30s, 2m or 1h`);
  const ms = Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
  if (ms < 1000 || ms > 24 * 3_600_000) throw new Error('must be between 1s and 24h');
  return ms;
}

const interval = z
  .string()
  .transform((v, ctx) => {
    try {
      return parseInterval(v);
    } catch (e) {
      ctx.addIssue({ code: 'custom', message: (e as Error).message });
      return z.NEVER;
    }
  })
  .optional();

export const PORT_MESSAGE = 'PORT must be a port number (1–65535)';

/** 0 is accepted too: the system picks a free port (tests, and `serve` behind a supervisor that reads the log). */
const port = z
  .string()
  .default('8080')
  .transform((v, ctx) => {
    const n = Number(v);
    if (!/^\d{1,5}$/.test(v.trim()) || n > 65535) {
      ctx.addIssue({ code: 'custom', message: PORT_MESSAGE });
      return z.NEVER;
    }
    return n;
  });

/** RFC 1123 host name syntax: dot-separated labels of letters, digits and inner hyphens. */
const HOST_NAME =
  /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export const HOST_MESSAGE =
  'HOST must be an IP address or a host name to listen on (e.g. 127.0.0.1, 0.0.0.0, ::)';

const host = z
  .string()
  .default('127.0.0.1')
  .refine((v) => isIP(v.replace(/^\[(.*)\]$/, '$1')) !== 0 || HOST_NAME.test(v), { message: HOST_MESSAGE })
  .transform((v) => v.replace(/^\[(.*)\]$/, '$1'));

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const url = z.url({ protocol: /^https?$/ });

/**
 * A PostgreSQL connection URL (postgres:// or postgresql://). The value is never echoed, nor
 * the URL library's own words about it (they would quote it, password included).
 */
const databaseUrl = z.string().transform((v, ctx) => {
  let u: URL | null = null;
  try {
    u = new URL(v);
  } catch {
    u = null;
  }
  if (u === null || (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') || u.hostname === '') {
    ctx.addIssue({
      code: 'custom',
      message: 'must be a PostgreSQL URL such as postgres://user:password@host:5432/database',
    });
    return z.NEVER;
  }
  return v;
});

/** A Redis URL (redis:// or rediss://). Never echoed: it may carry a password. */
const redisUrl = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== '';
    } catch {
      return false;
    }
  },
  { message: 'must be a Redis URL such as redis://[:password@]host:6379[/db]' },
);

const secretKey = z
  .string()
  .refine((v) => Buffer.from(v, 'base64').length === 32 && /^[A-Za-z0-9+/]+={0,2}$/.test(v), {
    message: 'must be 32 bytes, base64-encoded (e.g. `openssl rand -base64 32`)',
  });

const VISIBILITY = /^(everyone|contacts|nobody)$/;

/**
 * `everyone` (the default), `contacts` or `nobody` for all three rules of a user who set none, or
 * three words for presence, last_seen and details, e.g. `everyone,contacts,contacts`.
 */
export function parseDefaultVisibility(text: string): PrivacySettings {
  const parts = text.split(',').map((p) => p.trim());
  if ((parts.length !== 1 && parts.length !== 3) || !parts.every((p) => VISIBILITY.test(p)))
    throw new Error(
      'everyone, contacts or nobody, or three of them for presence, last_seen and details (e.g. everyone,contacts,contacts)',
    );
  const [presence, lastSeen, details] = parts as [Visibility, Visibility?, Visibility?];
  return { presence, lastSeen: lastSeen ?? presence, details: details ?? presence, reciprocal: false };
}

const EnvSchema = z.object({
  PORT: port,
  HOST: host,
  PRESENCE_DB: z.string().min(1).default('./data/presence.db'),
  PRESENCE_DB_SYNC: z.enum(['normal', 'full']).default('normal'),
  /** PostgreSQL instead of the SQLite file of PRESENCE_DB, when set. */
  PRESENCE_DATABASE_URL: databaseUrl.optional(),
  /** Several nodes: the shared change log (and, later, the hot state) in this Redis. */
  PRESENCE_REDIS_URL: redisUrl.optional(),
  /** The prefix of every key this deployment keeps in Redis, so deployments can share one. */
  PRESENCE_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.-]{1,64}$/, 'letters, digits and : _ . - only, at most 64')
    .default('presence:'),
  PRESENCE_SECRET_KEY: secretKey.optional(),
  /** Keys being rotated away from, comma-separated: they still open tokens, never seal new ones. */
  PRESENCE_SECRET_KEY_PREVIOUS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((k) => k.trim())
        .filter((k) => k !== ''),
    )
    .pipe(z.array(secretKey))
    .default([]),
  PUBLIC_URL: url.optional(),
  PRESENCE_LADDER: z
    .string()
    .default('online,idle,busy,away,offline')
    .superRefine((v, ctx) => {
      try {
        Ladder.parse(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
      }
    }),
  PRESENCE_VIEW_CACHE: z.coerce.number().int().min(1).default(100_000),
  PRESENCE_BATCH_MEMO_MB: z.coerce.number().min(0).max(4096).default(16),
  PRESENCE_INFERRED_DECAY: z
    .string()
    .default('2m,10m,60m')
    .transform((v, ctx) => {
      try {
        return parseDecay(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    }),
  PRESENCE_DEFAULT_VISIBILITY: z
    .string()
    .default('everyone')
    .transform((v, ctx) => {
      try {
        return parseDefaultVisibility(v);
      } catch (e) {
        ctx.addIssue({ code: 'custom', message: (e as Error).message });
        return z.NEVER;
      }
    }),
  PRESENCE_RATE_LIMIT: z.coerce.number().int().min(1).default(6000),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** `errors`: log only failed (4xx, 5xx) and slow requests; `all`: a line for every request. */
  PRESENCE_ACCESS_LOG: z.enum(['errors', 'all']).default('errors'),
  PRESENCE_SLOW_REQUEST_MS: z.coerce.number().int().min(1).default(500),
  WEBHOOK_ALLOW_PRIVATE_TARGETS: bool.default(false),
  /** How long a device whose stream connection closed stays as it was before it goes offline. */
  PRESENCE_DEVICE_GRACE_MS: z.coerce.number().int().min(0).max(3_600_000).default(5000),
  /** Stream connections (SSE and WebSocket) one API key may hold open at once. */
  PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY: z.coerce.number().int().min(1).default(5000),
  /** Worker processes that hold API keys' WebSocket connections, spreading their writes over cores. */
  PRESENCE_STREAM_WORKERS: z.coerce.number().int().min(0).max(64).default(0),

  SLACK_CLIENT_ID: z.string().min(1).optional(),
  SLACK_CLIENT_SECRET: z.string().min(1).optional(),
  SLACK_SIGNING_SECRET: z.string().min(1).optional(),
  SLACK_BOT_TOKEN: z.string().min(1).optional(),
  SLACK_API_URL: url.optional(),
  /** How often each linked Slack user's presence is polled (default 60s, within the Tier 3 budget). */
  SLACK_POLL_INTERVAL: interval,
  MS_TENANT_ID: z.string().min(1).optional(),
  MS_CLIENT_ID: z.string().min(1).optional(),
  MS_CLIENT_SECRET: z.string().min(1).optional(),
  GRAPH_API_URL: url.optional(),
  MS_LOGIN_URL: url.optional(),
  /** How often linked Teams users are polled (default 60s). */
  TEAMS_POLL_INTERVAL: interval,
  DISCORD_BOT_TOKEN: z.string().min(1).optional(),
  DISCORD_CLIENT_ID: z.string().min(1).optional(),
  DISCORD_CLIENT_SECRET: z.string().min(1).optional(),
  DISCORD_API_URL: url.optional(),
  ZOOM_ACCOUNT_ID: z.string().min(1).optional(),
  ZOOM_CLIENT_ID: z.string().min(1).optional(),
  ZOOM_CLIENT_SECRET: z.string().min(1).optional(),
  ZOOM_WEBHOOK_SECRET_TOKEN: z.string().min(1).optional(),
  ZOOM_API_URL: url.optional(),
  ZOOM_OAUTH_URL: url.optional(),
  /** How often linked Zoom users are polled (default 5m; webhooks push changes in between). */
  ZOOM_POLL_INTERVAL: interval,
  WHATSAPP_APP_SECRET: z.string().min(1).optional(),
  WHATSAPP_VERIFY_TOKEN: z.string().min(1).optional(),
  WHATSAPP_ACCESS_TOKEN: z.string().min(1).optional(),
  WHATSAPP_API_URL: url.optional(),
  LINKEDIN_CLIENT_ID: z.string().min(1).optional(),
  LINKEDIN_CLIENT_SECRET: z.string().min(1).optional(),
  LINKEDIN_API_URL: url.optional(),
  LINKEDIN_OAUTH_URL: url.optional(),
});

export type Env = z.infer<typeof EnvSchema>;

/** Every variable the service reads, for the README's list (a test checks it names them all). */
export const ENV_VARIABLES: readonly (keyof Env)[] = Object.keys(EnvSchema.shape) as (keyof Env)[];

/** One line each for `presence serve --help`; a variable without one is still listed, by name. */
const ENV_HELP: Partial<Record<keyof Env, string>> = {
  PORT: 'port to listen on (8080; 0 picks a free one)',
  HOST: 'address or host name to listen on (127.0.0.1)',
  PRESENCE_DB: 'the SQLite file (./data/presence.db)',
  PRESENCE_DB_SYNC: 'normal | full (normal)',
  PRESENCE_DATABASE_URL: 'postgres://… : PostgreSQL instead of the SQLite file',
  PRESENCE_REDIS_URL: 'redis://… : several nodes share changes through it (needs PRESENCE_DATABASE_URL)',
  PRESENCE_REDIS_PREFIX: 'prefix of every Redis key (presence:)',
  PRESENCE_SECRET_KEY: '32 bytes, base64: encrypts stored tokens (required)',
  PRESENCE_SECRET_KEY_PREVIOUS: 'keys being rotated away from, comma-separated',
  PUBLIC_URL: 'public base URL, for OAuth redirects and inbound URLs',
  PRESENCE_LADDER: 'status order, most present first (online,idle,busy,away,offline)',
  PRESENCE_VIEW_CACHE: 'users whose presence JSON is kept ready (100000)',
  PRESENCE_BATCH_MEMO_MB: 'memory for recent batch bodies (16; 0: off)',
  PRESENCE_INFERRED_DECAY: 'inferred online, idle, away durations (2m,10m,60m)',
  PRESENCE_DEFAULT_VISIBILITY: 'privacy of a user who set none: everyone | contacts | nobody (everyone)',
  PRESENCE_RATE_LIMIT: 'requests per minute per API key (6000)',
  LOG_LEVEL: 'fatal | error | warn | info | debug | trace | silent (info)',
  PRESENCE_ACCESS_LOG: 'errors | all (errors)',
  PRESENCE_SLOW_REQUEST_MS: 'a request this slow is logged at warn (500)',
  WEBHOOK_ALLOW_PRIVATE_TARGETS: 'let webhook endpoints use loopback/private addresses (false)',
  PRESENCE_DEVICE_GRACE_MS: 'a closed device connection goes offline this much later (5000)',
  PRESENCE_STREAM_MAX_CONNECTIONS_PER_KEY: 'open stream connections per API key (5000)',
  PRESENCE_STREAM_WORKERS: 'processes holding WebSocket connections besides this one (0)',
  SLACK_POLL_INTERVAL: 'how often a linked user is polled (60s)',
  TEAMS_POLL_INTERVAL: 'how often linked users are polled (60s)',
  ZOOM_POLL_INTERVAL: 'how often linked users are polled (5m)',
};

const PLATFORM_PREFIXES: readonly (readonly [string, RegExp])[] = [
  ['Slack', /^SLACK_/],
  ['Microsoft Teams', /^(MS_|GRAPH_|TEAMS_)/],
  ['Discord', /^DISCORD_/],
  ['Zoom', /^ZOOM_/],
  ['WhatsApp', /^WHATSAPP_/],
  ['LinkedIn', /^LINKEDIN_/],
];

/** The environment variables, for `presence serve --help`: every one the schema knows. */
export function envHelp(): string {
  const line = (name: string): string => {
    const help = ENV_HELP[name as keyof Env];
    return help === undefined ? `  ${name}` : `  ${name.padEnd(31)} ${help}`;
  };
  const platformOf = (name: string) => PLATFORM_PREFIXES.find(([, re]) => re.test(name));
  const out = [
    'Environment variables:',
    ...ENV_VARIABLES.filter((n) => platformOf(n) === undefined).map(line),
  ];
  for (const [platform, re] of PLATFORM_PREFIXES) {
    out.push('', `${platform} (credentials, API base URL overrides):`);
    out.push(...ENV_VARIABLES.filter((n) => re.test(n)).map(line));
  }
  return out.join('\n');
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Parses the environment. Empty strings count as unset, as shells and .env files often leave
 * them. Throws ConfigError listing every bad variable by name, never by value.
 */
export function parseEnv(env: NodeJS.ProcessEnv = process.env): Env {
  const present: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') present[key] = value;
  }
  const result = EnvSchema.safeParse(present);
  if (result.success) {
    // Several nodes need one durable store they all share; each its own SQLite file is not one.
    if (result.data.PRESENCE_REDIS_URL !== undefined && result.data.PRESENCE_DATABASE_URL === undefined)
      throw new ConfigError([
        'PRESENCE_REDIS_URL: several nodes need a shared database too: set PRESENCE_DATABASE_URL (PostgreSQL)',
      ]);
    return result.data;
  }
  const problems = result.error.issues.map((i) => {
    const name = i.path.join('.') || '(environment)';
    // Messages that already name their variable read as a sentence.
    return i.message.startsWith(`${name} `) ? i.message : `${name}: ${i.message}`;
  });
  throw new ConfigError(problems);
}

/** `serve` needs the token-encryption key; the demo and other commands do not. */
export function requireSecretKey(env: Env): string {
  if (env.PRESENCE_SECRET_KEY === undefined) {
    throw new ConfigError([
      'PRESENCE_SECRET_KEY: required by `presence serve` (32 bytes, base64; `openssl rand -base64 32`)',
    ]);
  }
  return env.PRESENCE_SECRET_KEY;
}

/** How a host name is looked up: `dns.promises.lookup` in production, a stub in tests. */
export type HostLookup = (host: string) => Promise<unknown>;

/**
 * Checks that HOST resolves to an address to listen on, within `timeoutMs`, so that a mistyped
 * name stops `serve` with a ConfigError naming HOST before anything is opened, rather than a
 * listen error after the database and connectors started.
 */
export async function resolveHost(
  env: Env,
  options: { lookup?: HostLookup; timeoutMs?: number } = {},
): Promise<void> {
  if (isIP(env.HOST) !== 0) return;
  const timeoutMs = options.timeoutMs ?? 3000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  let answer: 'ok' | 'timeout';
  try {
    answer = await Promise.race([(options.lookup ?? lookup)(env.HOST).then(() => 'ok' as const), timeout]);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'lookup failed';
    throw new ConfigError([`HOST: "${env.HOST}" does not resolve to an address (${code})`]);
  } finally {
    clearTimeout(timer);
  }
  if (answer === 'timeout')
    throw new ConfigError([`HOST: "${env.HOST}" did not resolve within ${timeoutMs / 1000} s`]);
}
