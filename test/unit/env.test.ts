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
