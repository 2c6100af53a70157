import { ConfigError, HOST_MESSAGE, parseEnv, resolveHost } from '../../src/config/env';

describe('parseEnv', () => {
  it('keeps 16 MB of batch bodies by default, none with 0', () => {
    expect(parseEnv({}).PRESENCE_BATCH_MEMO_MB).toBe(16);
    expect(parseEnv({ PRESENCE_BATCH_MEMO_MB: '0' }).PRESENCE_BATCH_MEMO_MB).toBe(0);
  });

  it('names a bad batch memo size', () => {
    for (const bad of ['-1', 'lots', '5000']) {
      expect(() => parseEnv({ PRESENCE_BATCH_MEMO_MB: bad })).toThrow(ConfigError);
      expect(() => parseEnv({ PRESENCE_BATCH_MEMO_MB: bad })).toThrow(/PRESENCE_BATCH_MEMO_MB/);
    }
  });
});

describe('access log settings', () => {
  it('defaults to failed and slow requests only, over 500 ms', () => {
    const env = parseEnv({});
    expect(env.PRESENCE_ACCESS_LOG).toBe('errors');
    expect(env.PRESENCE_SLOW_REQUEST_MS).toBe(500);
    expect(parseEnv({ PRESENCE_ACCESS_LOG: 'all' }).PRESENCE_ACCESS_LOG).toBe('all');
    expect(parseEnv({ PRESENCE_SLOW_REQUEST_MS: '50' }).PRESENCE_SLOW_REQUEST_MS).toBe(50);
  });

  it('names a bad value', () => {
    expect(() => parseEnv({ PRESENCE_ACCESS_LOG: 'some' })).toThrow(/PRESENCE_ACCESS_LOG/);
    for (const bad of ['0', 'soon', '1.5'])
      expect(() => parseEnv({ PRESENCE_SLOW_REQUEST_MS: bad })).toThrow(/PRESENCE_SLOW_REQUEST_MS/);
  });
});

describe('PORT and HOST', () => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      parseEnv(env);
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    return [];
  };

  it('says what PORT must be, in one plain sentence', () => {
    for (const bad of ['abc', '-1', '65536', '80.5', '1e3'])
      expect(problems({ PORT: bad })).toEqual(['PORT must be a port number (1–65535)']);
    expect(parseEnv({ PORT: '443' }).PORT).toBe(443);
    expect(parseEnv({}).PORT).toBe(8080);
    // 0: the system picks a free port (the log line names it).
    expect(parseEnv({ PORT: '0' }).PORT).toBe(0);
  });

  it('takes IP addresses and host names for HOST, and names anything else', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '::', '::1', '[::1]', 'localhost', 'presence.internal'])
      expect(() => parseEnv({ HOST: ok })).not.toThrow();
    expect(parseEnv({ HOST: '[::1]' }).HOST).toBe('::1');
    for (const bad of ['http://localhost', 'local host', 'host:8080', '-bad.example', 'a..b'])
      expect(problems({ HOST: bad })).toEqual([HOST_MESSAGE]);
  });

  it('names every bad variable at once', () => {
    const found = problems({ PORT: 'abc', HOST: 'not a host', LOG_LEVEL: 'loud' });
    expect(found).toHaveLength(3);
    for (const name of ['PORT', 'HOST', 'LOG_LEVEL'])
      expect(found.some((p) => p.startsWith(name))).toBe(true);
  });

  it('refuses a HOST that does not resolve, or not in time, naming it', async () => {
    const notFound = () => Promise.reject(Object.assign(new Error('nope'), { code: 'ENOTFOUND' }));
    await expect(resolveHost(parseEnv({ HOST: 'presence.internal' }), { lookup: notFound })).rejects.toThrow(
      'HOST: "presence.internal" does not resolve to an address (ENOTFOUND)',
    );
    const never = () => new Promise<never>(() => undefined);
    await expect(
      resolveHost(parseEnv({ HOST: 'presence.internal' }), { lookup: never, timeoutMs: 10 }),
    ).rejects.toThrow(/HOST: "presence.internal" did not resolve within/);
    const found = jest.fn(() => Promise.resolve({ address: '10.0.0.1', family: 4 }));
    await expect(
      resolveHost(parseEnv({ HOST: 'presence.internal' }), { lookup: found }),
    ).resolves.toBeUndefined();
    // An address is never looked up.
    await expect(resolveHost(parseEnv({ HOST: '::1' }), { lookup: notFound })).resolves.toBeUndefined();
  });
});

describe('poll intervals', () => {
  it('reads SLACK_, TEAMS_ and ZOOM_POLL_INTERVAL as durations, unset by default', () => {
    const env = parseEnv({ SLACK_POLL_INTERVAL: '30s', TEAMS_POLL_INTERVAL: '2m', ZOOM_POLL_INTERVAL: '1h' });
    expect([env.SLACK_POLL_INTERVAL, env.TEAMS_POLL_INTERVAL, env.ZOOM_POLL_INTERVAL]).toEqual([
      30_000, 120_000, 3_600_000,
    ]);
    expect(parseEnv({}).SLACK_POLL_INTERVAL).toBeUndefined();
  });

  it('names a bad interval', () => {
    for (const bad of ['fast', '500ms', '0s', '2d', '25h'])
      expect(() => parseEnv({ TEAMS_POLL_INTERVAL: bad })).toThrow(/TEAMS_POLL_INTERVAL/);
  });
});

describe('PRESENCE_DATABASE_URL', () => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      parseEnv(env);
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    return [];
  };

  it('is unset by default (SQLite) and takes postgres:// and postgresql:// URLs', () => {
    expect(parseEnv({}).PRESENCE_DATABASE_URL).toBeUndefined();
    for (const ok of [
      'postgres://postgres@127.0.0.1:5432/presence',
      'postgresql://app:s3cret@db.internal/presence?sslmode=require',
      'postgres://localhost/presence',
    ])
      expect(parseEnv({ PRESENCE_DATABASE_URL: ok }).PRESENCE_DATABASE_URL).toBe(ok);
  });

  it('names a bad one without printing it, password included', () => {
    for (const bad of [
      'mysql://app:hunter2pass@db/presence',
      'https://app:hunter2pass@db/presence',
      'app:hunter2pass@db/presence',
      'postgres://app:hunter2pass@/presence',
      'postgres://app:hunter2pass@db:99999/presence',
    ]) {
      const found = problems({ PRESENCE_DATABASE_URL: bad });
      expect(found).toEqual([
        'PRESENCE_DATABASE_URL: must be a PostgreSQL URL such as postgres://user:password@host:5432/database',
      ]);
      expect(found.join('\n')).not.toContain('hunter2pass');
    }
  });
});

describe('PRESENCE_REDIS_URL', () => {
  const problems = (env: Record<string, string>): string[] => {
    try {
      parseEnv(env);
    } catch (e) {
      if (e instanceof ConfigError) return [...e.problems];
      throw e;
    }
    return [];
  };
  const db = { PRESENCE_DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/presence' };

  it('is unset by default; with PostgreSQL it takes redis:// and rediss:// URLs, and a prefix', () => {
    expect(parseEnv({}).PRESENCE_REDIS_URL).toBeUndefined();
    expect(parseEnv({}).PRESENCE_REDIS_PREFIX).toBe('presence:');
    for (const ok of ['redis://127.0.0.1:6379', 'rediss://:s3cret@cache.internal:6380/2'])
      expect(parseEnv({ ...db, PRESENCE_REDIS_URL: ok }).PRESENCE_REDIS_URL).toBe(ok);
    expect(
      parseEnv({ ...db, PRESENCE_REDIS_URL: 'redis://r', PRESENCE_REDIS_PREFIX: 'eu-1:' })
        .PRESENCE_REDIS_PREFIX,
    ).toBe('eu-1:');
  });

  it('without PRESENCE_DATABASE_URL is a configuration error (several nodes need a shared database)', () => {
    expect(problems({ PRESENCE_REDIS_URL: 'redis://127.0.0.1:6379' })).toEqual([
      'PRESENCE_REDIS_URL: several nodes need a shared database too: set PRESENCE_DATABASE_URL (PostgreSQL)',
    ]);
  });

  it('names a bad one without printing it, password included', () => {
    for (const bad of ['http://:hunter2pass@r:6379', 'hunter2pass', 'redis://:hunter2pass@']) {
      const found = problems({ ...db, PRESENCE_REDIS_URL: bad });
      expect(found).toEqual([
        'PRESENCE_REDIS_URL: must be a Redis URL such as redis://[:password@]host:6379[/db]',
      ]);
      expect(found.join('\n')).not.toContain('hunter2pass');
    }
    expect(problems({ PRESENCE_REDIS_PREFIX: 'a b' })).toEqual([
      'PRESENCE_REDIS_PREFIX: letters, digits and : _ . - only, at most 64',
    ]);
  });
});
