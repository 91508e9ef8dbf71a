-- Cluster membership heartbeat (package cluster): the replicas of one group
-- each renew their member in a sorted set scored by expiry; members that
-- stopped renewing drop out.
--
-- KEYS[1]   members: ZSET, member = replica id, score = expiry in ms
-- ARGV[1]   now in ms since the Unix epoch, or '' to read Redis TIME
-- ARGV[2]   TTL of a heartbeat in ms (>= 1)
-- ARGV[3]   member id
-- ARGV[4]   '1' to join or renew, '0' to leave
--
-- Reply: the number of live members after the call (an integer).
--
-- The set is pruned of expired members on every call and expires itself one
-- TTL after the last heartbeat, so a group nobody renews disappears.

local now = tonumber(ARGV[1]) or floordiv(time_us(), 1000) -- ms
local ttl = tonumber(ARGV[2])

redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[4] == '1' then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ttl)
else
  redis.call('ZREM', KEYS[1], ARGV[3])
end
return redis.call('ZCARD', KEYS[1])
