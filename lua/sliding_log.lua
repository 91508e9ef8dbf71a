-- Sliding-window log (exact); docs/algorithms.md, "Sliding-window log".
-- One sorted-set member per admitted token, scored by its time t (µs); a
-- token counts while now - t < P. Members are 't:i' with i = 1, 2, ... among
-- the tokens logged at the same t, so they are unique and the set never
-- holds more than E members after an admission (older ones are dropped).
--
-- KEYS[1]   the log (ZSET); absent = empty
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   n, tokens asked for
-- ARGV[4]   E, events per window
-- ARGV[5]   P, window length in µs
--
-- Reply: {allowed 0|1, remaining, retry_after, reset_after}, durations in µs.
-- A denial writes nothing (stale members are dropped on the next admission).

local now = now_us(ARGV[1])
local minttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local E = tonumber(ARGV[4])
local P = tonumber(ARGV[5])
local key = KEYS[1]

local t = now
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] then t = math.max(now, tonumber(newest[2])) end
local lo = int(t - P) -- tokens logged at or before lo are out
local sum = redis.call('ZCOUNT', key, '(' .. lo, '+inf')

if sum + n <= E then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', lo)
  local ts = int(t)
  local c = redis.call('ZCOUNT', key, ts, ts) -- tokens already logged at t
  local args = {}
  for i = 1, n do
    args[#args + 1] = ts
    args[#args + 1] = ts .. ':' .. (c + i)
    if #args >= 1000 or i == n then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  redis.call('PEXPIRE', key, ttl_ms(P, minttl))
  return {1, E - sum - n, 0, P}
end

-- Denied: wait until the k-th oldest logged token leaves the window. sum > E
-- when a replica with a larger E logged into this key (a limit lowered mid
-- rolling deploy): nothing remains, and k <= sum still holds since n <= E.
local k = sum + n - E
local kth = redis.call('ZRANGEBYSCORE', key, '(' .. lo, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
return {0, math.max(E - sum, 0), tonumber(kth[2]) + P - t, tonumber(newest[2]) + P - t}
