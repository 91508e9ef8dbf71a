-- semaphore_inspect.lua: read-only view of a semaphore, for tools and tests.
--
-- KEYS[1] leases  ZSET   lease id -> expiry (microseconds, Redis TIME)
-- KEYS[2] holders HASH   lease id -> "<n>:<token>"; field "used" -> sum of n
-- KEYS[3] waitexp ZSET   "<id>:<n>" -> waiter expiry (microseconds)
-- ARGV[1] most leases to list
-- Reply (integers and strings):
--   {now, waiting, id1, n1, token1, expiry1, id2, ...}
--   now       Redis time (microseconds)
--   waiting   waiters whose entry has not expired
--   then one group of four per live lease (expiry > now), earliest expiry
--   first: id (string), weight, fencing token, expiry (microseconds).
--   Leases whose weight entry is missing are skipped.
-- Nothing is written: expired leases are left for the next acquire to reclaim.
local leases, holders, waitexp = KEYS[1], KEYS[2], KEYS[3]
local max = tonumber(ARGV[1])

local now = time_us()
local nows = int(now)

local out = {now, redis.call('ZCOUNT', waitexp, '(' .. nows, '+inf')}
local live = redis.call('ZRANGEBYSCORE', leases, '(' .. nows, '+inf', 'WITHSCORES', 'LIMIT', 0, max)
for i = 1, #live, 2 do
  local h = redis.call('HGET', holders, live[i])
  if h then
    local n, token = string.match(h, '^(%d+):(%d+)$')
    out[#out + 1] = live[i]
    out[#out + 1] = tonumber(n)
    out[#out + 1] = tonumber(token)
    out[#out + 1] = tonumber(live[i + 1])
  end
end
return out
