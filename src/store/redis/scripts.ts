/**
 * @module store/redis/scripts
 * The Lua scripts of the hot state. Each is one atomic step and one round trip (ioredis sends it
 * by EVALSHA and falls back to EVAL after a Redis restart has emptied the script cache).
 *
 * Keys (all under the store's prefix P): `P gen` the generation (marker and change-log epoch),
 * `P exp` the expiry sorted set (member = JSON [user, source], score = expiry ms), `P obs:<user>`
 * the observations hash (field = source), `P agg:<user>` the aggregate hash (`v` version,
 * `a` aggregate), `P log` the change-log stream (entry ids `<offset>-0`), `P log:offset` the
 * offset counter, `P log:trimmed` the newest id trimmed off it.
 * The sweep reaches `P obs:<user>` keys it derives itself, so these scripts run on one Redis
 * (or one cluster slot), not across a cluster.
 */

export interface ScriptDef {
  readonly numberOfKeys: number;
  readonly lua: string;
}

/** Stream ids compared as (ms, seq) pairs; `a < b`. */
const ID_LESS = `
local function idparts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function idless(a, b)
  local am, as = idparts(a)
  local bm, bs = idparts(b)
  return am < bm or (am == bm and as < bs)
end
`;

/** KEYS: gen. ARGV: a new generation, used if there is none. Returns {created 0|1, generation}. */
export const ENSURE_GENERATION: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local created = redis.call('SET', KEYS[1], ARGV[1], 'NX')
return {created and 1 or 0, redis.call('GET', KEYS[1])}
`,
};

/** KEYS: obs hash, exp zset. ARGV: source, observation, expiresAt, member. */
export const UPSERT_OBSERVATION: ScriptDef = {
  numberOfKeys: 2,
  lua: `
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
`,
};

/** KEYS: obs hash, exp zset. ARGV: source, member. Returns 1 if there was one. */
export const REMOVE_OBSERVATION: ScriptDef = {
  numberOfKeys: 2,
  lua: `
redis.call('ZREM', KEYS[2], ARGV[2])
return redis.call('HDEL', KEYS[1], ARGV[1])
`,
};

/**
 * KEYS: exp zset. ARGV: obs key prefix, then (user, source, observation, expiresAt, member) per
 * observation. Writes many observations and their expiries in one step (a node's batch of
 * committed observations), each as `UPSERT_OBSERVATION` does.
 */
export const UPSERT_OBSERVATIONS: ScriptDef = {
  numberOfKeys: 1,
  lua: `
for i = 2, #ARGV, 5 do
  redis.call('HSET', ARGV[1] .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
  redis.call('ZADD', KEYS[1], ARGV[i + 3], ARGV[i + 4])
end
return 1
`,
};

/**
 * KEYS: exp zset. ARGV: obs key prefix, then (user, source, observation, expiresAt, member) per
 * observation. Adds only those Redis does not hold (a rebuild after Redis lost its state, or a
 * node's start): an expiry Redis already has, moved by some node's refreshes, is never replaced
 * by one from a node's memory. Returns how many were added.
 */
export const SEED_OBSERVATIONS: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local added = 0
for i = 2, #ARGV, 5 do
  if redis.call('ZADD', KEYS[1], 'NX', ARGV[i + 3], ARGV[i + 4]) == 1 then
    redis.call('HSET', ARGV[1] .. ARGV[i], ARGV[i + 1], ARGV[i + 2])
    added = added + 1
  end
end
return added
`,
};

/**
 * KEYS: exp zset. ARGV: member, expiresAt, member, expiresAt, ... Moves each existing member's
 * expiry later (never earlier: a late batch does not undo a newer upsert); returns the members
 * that are gone (swept or removed), which a refresh does not bring back.
 */
export const REFRESH_EXPIRIES: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local missing = {}
for i = 1, #ARGV, 2 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'GT', ARGV[i + 1], ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
return missing
`,
};

/**
 * KEYS: exp zset. ARGV: now, limit, the obs key prefix. Takes up to `limit` members due by `now`;
 * each is removed, with its hash field, only if its score is still due (the script is atomic, so
 * a concurrent sweeper never takes the same one). Returns {member, observation|nil, ...}.
 */
export const SWEEP: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for _, m in ipairs(due) do
  local score = redis.call('ZSCORE', KEYS[1], m)
  if score and tonumber(score) <= now then
    redis.call('ZREM', KEYS[1], m)
    local us = cjson.decode(m)
    local key = ARGV[3] .. us[1]
    local v = redis.call('HGET', key, us[2])
    redis.call('HDEL', key, us[2])
    out[#out + 1] = m
    out[#out + 1] = v
  end
end
return out
`,
};

/**
 * Appends one change to the log, as the last step of a script that already holds its keys.
 * KEYS[2] log stream, KEYS[3] gen, KEYS[4] log:trimmed, KEYS[5] log:offset. ARGV[1] user,
 * ARGV[2] version, ARGV[4] change, ARGV[5] new generation, ARGV[6] minAgeMs, ARGV[7] minCount.
 *
 * An entry's id is `<offset>-0`: the offset counter rises by one per change appended (INCR in
 * this same script, so two nodes never take one offset), which makes the stream id the stream
 * position's offset itself. An entry that is not a presence change (`numbered` false: a user's
 * deletion) takes no offset: its id is `<the last offset>-<n>`, after that change's and before
 * the next. Its time is the field `t` (Redis's clock, ms), read by the trim.
 *
 * Retention, whichever keeps more: the last minCount entries and every entry younger than
 * minAgeMs. Each append trims at most 100 of the oldest, so the work per append is bounded and a
 * backlog drains over the next appends. Returns {offset, generation}.
 */
const APPEND = `
local function append(numbered)
  redis.call('SET', KEYS[3], ARGV[5], 'NX')
  local gen = redis.call('GET', KEYS[3])
  local offset
  local id
  if numbered then
    offset = redis.call('INCR', KEYS[5])
    id = offset .. '-0'
  else
    offset = tonumber(redis.call('GET', KEYS[5]) or '0')
    id = offset .. '-*'
  end
  local t = redis.call('TIME')
  local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  id = redis.call('XADD', KEYS[2], id, 'u', ARGV[1], 'v', ARGV[2], 'c', ARGV[4], 't', nowms)
  local minCount = tonumber(ARGV[7])
  local len = redis.call('XLEN', KEYS[2])
  local excess = len - minCount
  if excess > 0 then
    if excess > 100 then excess = 100 end
    local cutoff = nowms - tonumber(ARGV[6])
    local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', excess)
    local n = 0
    local last
    for _, e in ipairs(oldest) do
      local at = 0
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 't' then at = tonumber(f[i + 1]) end
      end
      if at > cutoff then break end
      n = n + 1
      last = e[1]
    end
    if n > 0 then
      redis.call('XTRIM', KEYS[2], 'MAXLEN', len - n)
      redis.call('SET', KEYS[4], last)
    end
  end
  return {offset, gen, id}
end
`;

/**
 * KEYS: agg hash, log stream, gen, log:trimmed, log:offset. ARGV: user, version n, aggregate,
 * change, new generation, minAgeMs, minCount. Writes version n only over n - 1 and appends the
 * change to the log in the same step; else returns {0, stored version}. On success returns
 * {1, offset, generation}.
 */
export const BUMP_AGGREGATE: ScriptDef = {
  numberOfKeys: 5,
  lua:
    APPEND +
    `
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
local v = tonumber(ARGV[2])
if stored ~= v - 1 then return {0, stored} end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'a', ARGV[3])
local r = append(true)
return {1, r[1], r[2]}
`,
};

/**
 * KEYS and ARGV as BUMP_AGGREGATE's. The append of a change whose version another authority
 * (PostgreSQL's conditional write) already decided, so it is never refused: the aggregate is
 * kept if it is newer than the stored one, and the change is appended. The one exception is a
 * repeat of the version stored (an append retried after a failure that had landed): nothing is
 * written and {0, stored} returned. Else {1, offset, generation}. Version 0 is a deletion of the
 * user: its aggregate goes (a user made again later starts at version 1), and the entry takes
 * no offset (see APPEND).
 */
export const APPEND_CHANGE: ScriptDef = {
  numberOfKeys: 5,
  lua:
    APPEND +
    `
local v = tonumber(ARGV[2])
if v == 0 then
  redis.call('DEL', KEYS[1])
  local r = append(false)
  return {1, r[1], r[2]}
end
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if stored == v then return {0, stored} end
if v > stored then redis.call('HSET', KEYS[1], 'v', ARGV[2], 'a', ARGV[3]) end
local r = append(true)
return {1, r[1], r[2]}
`,
};

/**
 * KEYS: agg hash. ARGV: version, aggregate. Sets the aggregate only over an older version or none
 * (rebuilding from PostgreSQL after Redis came back empty); appends nothing. Returns 1 if set.
 */
export const SEED_AGGREGATE: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local stored = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if stored >= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'a', ARGV[2])
return 1
`,
};

/**
 * KEYS: log stream, gen, log:trimmed. ARGV: epoch, after id, count. Returns {0, generation|nil}
 * when the log since that position is not whole (another epoch, or entries after it trimmed),
 * else {1, generation, entries after the id}.
 */
export const READ_LOG: ScriptDef = {
  numberOfKeys: 3,
  lua:
    ID_LESS +
    `
local gen = redis.call('GET', KEYS[2])
if (not gen) or gen ~= ARGV[1] then return {0, gen} end
local trimmed = redis.call('GET', KEYS[3])
if trimmed and idless(ARGV[2], trimmed) then return {0, gen} end
return {1, gen, redis.call('XRANGE', KEYS[1], '(' .. ARGV[2], '+', 'COUNT', tonumber(ARGV[3]))}
`,
};

/** KEYS: log stream, gen. ARGV: a new generation. Returns {generation, newest id or '0-0'}. */
export const LOG_HEAD: ScriptDef = {
  numberOfKeys: 2,
  lua: `
redis.call('SET', KEYS[2], ARGV[1], 'NX')
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local id = '0-0'
if #last > 0 then id = last[1][1] end
return {redis.call('GET', KEYS[2]), id}
`,
};

export const SCRIPTS = {
  hsEnsureGeneration: ENSURE_GENERATION,
  hsUpsertObservation: UPSERT_OBSERVATION,
  hsRemoveObservation: REMOVE_OBSERVATION,
  hsRefreshExpiries: REFRESH_EXPIRIES,
  hsSweep: SWEEP,
  hsUpsertObservations: UPSERT_OBSERVATIONS,
  hsSeedObservations: SEED_OBSERVATIONS,
  hsBumpAggregate: BUMP_AGGREGATE,
  hsAppendChange: APPEND_CHANGE,
  hsSeedAggregate: SEED_AGGREGATE,
  hsReadLog: READ_LOG,
  hsLogHead: LOG_HEAD,
} as const;

export type ScriptName = keyof typeof SCRIPTS;
