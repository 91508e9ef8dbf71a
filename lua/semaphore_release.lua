-- semaphore_release.lua: give back a lease's slots and/or withdraw a queued
-- waiter, then wake the waiters.
--
-- KEYS[1] leases  ZSET   lease id -> expiry (microseconds, Redis TIME)
-- KEYS[2] holders HASH   lease id -> "<n>:<token>"; field "used" -> sum of n
-- KEYS[3] waiters ZSET   "<id>:<n>" -> arrival (microseconds)
-- KEYS[4] waitexp ZSET   "<id>:<n>" -> waiter expiry (microseconds)
-- ARGV[1] lease id (32 lowercase hex digits)
-- ARGV[2] waiter entry "<id>:<n>" to withdraw
-- ARGV[3] wake-up channel
-- Reply (integers): {released, withdrawn}
--   released  1 when the lease was live and its slots were given back,
--             0 when no live lease has this id (expired, reclaimed, released
--             before, or never granted); nothing else changes then
--   withdrawn 1 when a waiter entry was removed, else 0
-- Expired leases are reclaimed on the way. Waiters are woken (PUBLISH) when
-- slots were freed or the queue changed and someone is still queued.
local leases, holders, waiters, waitexp = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id, member, channel = ARGV[1], ARGV[2], ARGV[3]

local BATCH = 64

local now = time_us()

if redis.call('EXISTS', leases) ~= redis.call('EXISTS', holders) then
  redis.call('DEL', leases, holders)
end

local changed = false
local expired = redis.call('ZRANGEBYSCORE', leases, '-inf', int(now), 'LIMIT', 0, BATCH)
local freed = 0
for _, lid in ipairs(expired) do
  local h = redis.call('HGET', holders, lid)
  if h then
    freed = freed + tonumber(string.match(h, '^(%d+):'))
    redis.call('HDEL', holders, lid)
  end
  redis.call('ZREM', leases, lid)
  changed = true
end

local released = 0
if redis.call('ZSCORE', leases, id) then
  local h = redis.call('HGET', holders, id)
  if h then
    freed = freed + tonumber(string.match(h, '^(%d+):'))
    redis.call('HDEL', holders, id)
    released = 1
  end
  redis.call('ZREM', leases, id)
  changed = true
end

if redis.call('EXISTS', leases) == 0 then
  redis.call('DEL', holders)
elseif freed > 0 then
  redis.call('HINCRBY', holders, 'used', -freed)
end

local withdrawn = redis.call('ZREM', waiters, member)
redis.call('ZREM', waitexp, member)
if withdrawn == 1 then changed = true end

if changed and redis.call('EXISTS', waiters) == 1 then
  redis.call('PUBLISH', channel, 'r')
end
return {released, withdrawn}
