-- semaphore_renew.lua: extend a live lease (keepalive).
--
-- KEYS[1] leases  ZSET   lease id -> expiry (microseconds, Redis TIME)
-- KEYS[2] holders HASH   lease id -> "<n>:<token>"; field "used" -> sum of n
-- KEYS[3] waiters ZSET   "<id>:<n>" -> arrival (only read: is anyone queued?)
-- ARGV[1] lease id (32 lowercase hex digits)
-- ARGV[2] lease TTL (microseconds)
-- ARGV[3] wake-up channel, published to when expired leases were reclaimed
--         and someone is queued
-- Reply (integers):
--   {1, expiry}  renewed: the lease now expires at expiry (microseconds)
--   {0}          lost: no live lease has this id (it expired, was reclaimed,
--                released, or the keys were deleted); nothing is written
-- A lease whose expiry has passed is never renewed, even if not reclaimed
-- yet: its slots may already be promised to a waiter by then.
local leases, holders, waiters = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]
local ttl = tonumber(ARGV[2])
local channel = ARGV[3]

local SLACK_MS = 1000
local BATCH = 64

local now = time_us()

if redis.call('EXISTS', leases) ~= redis.call('EXISTS', holders) then
  redis.call('DEL', leases, holders)
end

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
  if redis.call('EXISTS', leases) == 0 then
    redis.call('DEL', holders)
  elseif freed > 0 then
    redis.call('HINCRBY', holders, 'used', -freed)
  end
  if redis.call('EXISTS', waiters) == 1 then
    redis.call('PUBLISH', channel, 'r')
  end
end

if not redis.call('ZSCORE', leases, id) or redis.call('HEXISTS', holders, id) == 0 then
  return {0}
end

local exp = now + ttl
redis.call('ZADD', leases, 'XX', int(exp), id)
local top = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
local ms = math.ceil((tonumber(top[2]) - now) / 1000) + SLACK_MS
redis.call('PEXPIRE', leases, ms)
redis.call('PEXPIRE', holders, ms)
return {1, exp}
