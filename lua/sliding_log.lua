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

redis.replicate_commands()

local function ceildiv(a, b) -- exact ceil(a/b), 0 <= a < 2^53, b >= 1
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1 elseif r >= b then q = q + 1 end
  if q * b < a then q = q + 1 end
  return q
end

local now = tonumber(ARGV[1])
if not now then
  local tm = redis.call('TIME')
  now = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
end
local minttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local E = tonumber(ARGV[4])
local P = tonumber(ARGV[5])
local key = KEYS[1]

local t = now
local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
if newest[2] then t = math.max(now, tonumber(newest[2])) end
local lo = string.format('%d', t - P) -- tokens logged at or before lo are out
local sum = redis.call('ZCOUNT', key, '(' .. lo, '+inf')

if sum + n <= E then
  redis.call('ZREMRANGEBYSCORE', key, '-inf', lo)
  local ts = string.format('%d', t)
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
  local ms = math.max(ceildiv(P, 1000), 1, minttl)
  redis.call('PEXPIRE', key, ms)
  return {1, E - sum - n, 0, P}
end

-- Denied: wait until the k-th oldest logged token leaves the window.
local k = sum + n - E
local kth = redis.call('ZRANGEBYSCORE', key, '(' .. lo, '+inf', 'WITHSCORES', 'LIMIT', k - 1, 1)
return {0, E - sum, tonumber(kth[2]) + P - t, tonumber(newest[2]) + P - t}
