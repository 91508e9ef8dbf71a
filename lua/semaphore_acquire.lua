-- semaphore_acquire.lua: take n slots of a weighted semaphore for one lease,
-- or queue the caller as a waiter and say how long to wait.
--
-- KEYS[1] leases  ZSET   lease id -> expiry (microseconds, Redis TIME)
-- KEYS[2] holders HASH   lease id -> "<n>:<token>"; field "used" -> sum of n
-- KEYS[3] waiters ZSET   "<id>:<n>" -> arrival (microseconds)
-- KEYS[4] waitexp ZSET   "<id>:<n>" -> waiter expiry (microseconds)
-- KEYS[5] fence   STRING last fencing token issued
-- ARGV[1] lease id (32 lowercase hex digits, chosen by the caller)
-- ARGV[2] n, the weight (1 <= n <= capacity)
-- ARGV[3] capacity
-- ARGV[4] lease TTL (microseconds)
-- ARGV[5] waiter TTL (microseconds); 0 = do not queue on failure (a try)
-- ARGV[6] wake-up channel, published to when expired leases were reclaimed
-- ARGV[7] fence key TTL (milliseconds)
-- Reply (integers):
--   {1, token, expiry, free}  acquired; also when ARGV[1] already holds a live
--                             lease, which makes a retried call return the
--                             same lease; free = slots still free after it
--   {0, wait, free}           not acquired; wait = microseconds until the
--                             earliest lease expires (0: no lease to wait
--                             for); free = slots free now (owed to waiters
--                             ahead, or too few)
--
-- Fairness: a caller gets its slots only if, after taking them, the live
-- waiters queued before it (every queued waiter, for a caller not queued)
-- still fit in the capacity. So waiters are served in arrival order, and a
-- large waiter at the head of the queue is not starved by small newcomers.
local leases, holders, waiters, waitexp, fence = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local n = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local waitttl = tonumber(ARGV[5])
local channel = ARGV[6]
local fencettl = ARGV[7]

local SLACK_MS = 1000 -- keys outlive the last expiry they hold by this much
local BATCH = 64      -- at most this many expired entries are reclaimed per call

local now = time_us()

-- Give keys the TTL of the latest expiry in zset, or delete them when zset is empty.
local function expire_after(zset, keys)
  local top = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if top[2] == nil then
    for _, k in ipairs(keys) do redis.call('DEL', k) end
    return
  end
  local ms = math.ceil((tonumber(top[2]) - now) / 1000)
  if ms < 0 then ms = 0 end
  for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ms + SLACK_MS) end
end

-- Idempotency: a live lease with this id is returned as it is.
local score = redis.call('ZSCORE', leases, id)
if score and tonumber(score) > now then
  local h = redis.call('HGET', holders, id)
  if h then
    local used = tonumber(redis.call('HGET', holders, 'used') or '0')
    return {1, tonumber(string.match(h, ':(%d+)$')), tonumber(score), math.max(capacity - used, 0)}
  end
end

-- The lease set and its weights live and die together; if one is missing
-- (deleted or evicted behind our back) drop the other, so nothing is counted
-- that cannot be released. The affected holders find out at their next renewal.
if redis.call('EXISTS', leases) ~= redis.call('EXISTS', holders) then
  redis.call('DEL', leases, holders)
end

-- Reclaim expired leases.
local reclaimed = 0
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', int(now), 'LIMIT', 0, BATCH)
if #expired > 0 then
  local freed = 0
  for _, lid in ipairs(expired) do
    local h = redis.call('HGET', holders, lid)
    if h then
      freed = freed + tonumber(string.match(h, '^(%d+):'))
      redis.call('HDEL', holders, lid)
    end
    redis.call('ZREM', leases, lid)
  end
  reclaimed = #expired
  if redis.call('EXISTS', leases) == 0 then
    redis.call('DEL', holders)
  elseif freed > 0 then
    redis.call('HINCRBY', holders, 'used', -freed)
  end
end

-- Forget waiters that stopped refreshing their entry.
local gone = redis.call('ZRANGEBYSCORE', waitexp, '-inf', int(now), 'LIMIT', 0, BATCH)
for _, m in ipairs(gone) do
  redis.call('ZREM', waiters, m)
  redis.call('ZREM', waitexp, m)
end

local used = tonumber(redis.call('HGET', holders, 'used') or '0')
local free = capacity - used
local me = id .. ':' .. ARGV[2]
local granted = false
if n <= free then
  -- Capacity left for the waiters ahead once we take n. Each weighs at least
  -- 1, so no more than budget+1 live entries need to be looked at; a few
  -- more are read to step over stale ones.
  local budget = free - n
  local limit = budget + 1 + 16
  local rank = redis.call('ZRANK', waiters, me)
  if rank and rank < limit then limit = rank end
  local ahead = 0
  if limit > 0 then
    for _, m in ipairs(redis.call('ZRANGE', waiters, 0, limit - 1)) do
      local e = redis.call('ZSCORE', waitexp, m)
      if e and tonumber(e) > now then
        ahead = ahead + tonumber(string.match(m, ':(%d+)$'))
        if ahead > budget then break end
      else
        redis.call('ZREM', waiters, m)
        redis.call('ZREM', waitexp, m)
      end
    end
  end
  granted = ahead <= budget
end

if granted then
  redis.call('ZREM', waiters, me)
  redis.call('ZREM', waitexp, me)
  expire_after(waitexp, {waiters, waitexp})
  -- Fencing token: one more than the last one, and never below the current
  -- Redis time in microseconds, so tokens keep growing even after the fence
  -- key expired or Redis restarted without persistence.
  local token = tonumber(redis.call('GET', fence) or '0') + 1
  if token < now then token = now end
  redis.call('SET', fence, int(token), 'PX', fencettl)
  local exp = now + ttl
  redis.call('ZADD', leases, int(exp), id)
  redis.call('HSET', holders, id, ARGV[2] .. ':' .. int(token))
  redis.call('HINCRBY', holders, 'used', n)
  expire_after(leases, {leases, holders})
  if reclaimed > 0 and redis.call('EXISTS', waiters) == 1 then
    redis.call('PUBLISH', channel, 'r')
  end
  return {1, token, exp, free - n}
end

if waitttl > 0 then
  redis.call('ZADD', waiters, 'NX', int(now), me)
  redis.call('ZADD', waitexp, int(now + waitttl), me)
end
expire_after(waitexp, {waiters, waitexp})
if reclaimed > 0 and redis.call('EXISTS', waiters) == 1 then
  redis.call('PUBLISH', channel, 'r')
end
local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
local wait = 0
if first[2] then
  wait = tonumber(first[2]) - now
  if wait < 0 then wait = 0 end
end
return {0, wait, math.max(free, 0)}
