/**
 * @module store/redis/coordination-scripts
 * The Lua scripts of the Redis coordination (locks, rate budgets, delivery memory, polling
 * shares). Each is one atomic step and one round trip. Times are the caller's clock (ms, whole
 * numbers), passed in ARGV; Redis's own expiry (PEXPIRE, PX) only collects keys left behind,
 * set well past the end the caller's clock gives them (`gc` below), so it never ends anything
 * early.
 *
 * Keys (under the prefix P): `P lock:<key>` a hash (`o` owner token, `e` end); `P note:<key>`
 * a string (the last holder's note);
 * `P bucket:<key>` a sorted set of the calls in the window (score = time); `P seen:<scope>:<id>`
 * a string (its end); `P share:<group>` a hash (field = target, value = `node|end`) and
 * `P share-nodes:<group>` a sorted set of the live nodes (score = end of their last renewal).
 */

import type { ScriptDef } from './scripts';

/** KEYS: lock. ARGV: token, now, end, gc. Returns 1 when taken (free, or the last lease ended). */
export const LOCK_ACQUIRE: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local e = redis.call('HGET', KEYS[1], 'e')
if e and tonumber(e) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'e', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`,
};

/**
 * KEYS: lock. ARGV: token, end, gc. Extends the lease only while the token owns it (even past its
 * end, if nobody took it since: nobody else can have acted on it). Returns 1 if extended.
 */
export const LOCK_RENEW: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'e', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`,
};

/** KEYS: lock. ARGV: token. Compare-and-delete: deletes only while the token owns it. */
export const LOCK_RELEASE: ScriptDef = {
  numberOfKeys: 1,
  lua: `
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
`,
};

/** KEYS: lock, note. ARGV: token, note, keep. Writes the note only while the token owns the lock (as LOCK_RENEW). Returns 1 if written. */
export const LOCK_NOTE: ScriptDef = {
  numberOfKeys: 2,
  lua: `
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`,
};

/**
 * KEYS: bucket. ARGV: now, limit, window, member, gc, now - window. A sliding window: the calls of the last
 * `window` ms (a call at exactly now - window has left it). Under the limit, adds the call and
 * returns 0; else adds nothing and returns the ms until the oldest call that must leave has left.
 */
export const BUCKET_TAKE: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[6])
local n = redis.call('ZCARD', KEYS[1])
if n >= limit then
  local leaving = redis.call('ZRANGE', KEYS[1], n - limit, n - limit, 'WITHSCORES')
  return math.max(1, math.ceil(tonumber(leaving[2]) + window - now))
end
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 0
`,
};

/** KEYS: seen. ARGV: now, end, gc. Returns 1 the first time (or once the last mark ended), else 0. */
export const SEEN_FIRST: ScriptDef = {
  numberOfKeys: 1,
  lua: `
local e = redis.call('GET', KEYS[1])
if e and tonumber(e) > tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
`,
};

/**
 * KEYS: shares hash, nodes zset. ARGV: node, now, end, gc, target... (distinct). The node renews
 * its entry among the live nodes (those whose last renewal has not ended) and its fair part is
 * ceil(targets / live nodes). It keeps its shares (renewed to `end`), gives up those over its
 * part (a node joined) and those no longer targets, and takes free ones (never held, or their
 * lease ended) up to its part. Returns the targets it holds now.
 */
export const SHARES_RENEW: ScriptDef = {
  numberOfKeys: 2,
  lua: `
local node = ARGV[1]
local now = tonumber(ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], node)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local live = redis.call('ZCARD', KEYS[2])
local wanted = {}
for i = 5, #ARGV do wanted[ARGV[i]] = true end
local fair = math.ceil((#ARGV - 4) / live)
local mine, free, known = {}, {}, {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local t = all[i]
  local owner, e = string.match(all[i + 1], '^(.*)|(%d+)$')
  local ended = tonumber(e) <= now
  if not wanted[t] then
    if owner == node or ended then redis.call('HDEL', KEYS[1], t) end
  else
    known[t] = true
    if owner == node then mine[#mine + 1] = t
    elseif ended then free[#free + 1] = t end
  end
end
for i = 5, #ARGV do
  if not known[ARGV[i]] then free[#free + 1] = ARGV[i] end
end
while #mine > fair do
  redis.call('HDEL', KEYS[1], table.remove(mine))
end
local i = 1
while #mine < fair and i <= #free do
  mine[#mine + 1] = free[i]
  i = i + 1
end
local v = node .. '|' .. ARGV[3]
for _, t in ipairs(mine) do redis.call('HSET', KEYS[1], t, v) end
redis.call('PEXPIRE', KEYS[1], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return mine
`,
};

/** KEYS: shares hash, nodes zset. ARGV: node. Frees the node's shares and leaves the live nodes. Returns how many it freed. */
export const SHARES_RELEASE: ScriptDef = {
  numberOfKeys: 2,
  lua: `
local node = ARGV[1]
local n = 0
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local owner = string.match(all[i + 1], '^(.*)|%d+$')
  if owner == node then
    redis.call('HDEL', KEYS[1], all[i])
    n = n + 1
  end
end
redis.call('ZREM', KEYS[2], node)
return n
`,
};

export const COORDINATION_SCRIPTS = {
  coLockAcquire: LOCK_ACQUIRE,
  coLockRenew: LOCK_RENEW,
  coLockRelease: LOCK_RELEASE,
  coLockNote: LOCK_NOTE,
  coBucketTake: BUCKET_TAKE,
  coSeenFirst: SEEN_FIRST,
  coSharesRenew: SHARES_RENEW,
  coSharesRelease: SHARES_RELEASE,
} as const;

export type CoordinationScript = keyof typeof COORDINATION_SCRIPTS;
