import { ConfigError, parseEnv } from '../../src/config/env';

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
