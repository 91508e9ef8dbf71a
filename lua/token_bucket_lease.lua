-- Token bucket lease: takes up to k tokens at once from the bucket of
-- token_bucket.lua (same key, same state), for a replica to spend locally,
-- and gives back tokens a replica leased and did not spend.
-- docs/algorithms.md, "Leased token bucket".
--
-- KEYS[1]   state, as in token_bucket.lua (tat as "T" or "T:r")
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   k, the most tokens to take (0: only give back)
-- ARGV[4]   n, the fewest tokens worth taking (1 <= n <= k when k > 0)
-- ARGV[5]   E, P: the limit in the units of token_bucket.lua
-- ARGV[6]
-- ARGV[7]   tau, the tolerance: capacity × P units
-- ARGV[8]   back, tokens given back first (leased earlier, not spent)
--
-- Reply: {granted, debt}: granted tokens (0 when fewer than n were free:
-- nothing taken), and the debt after the call in units (tat − now, 0 when
-- the bucket is full). Giving back never takes the debt below 0: tokens
-- given back after the bucket refilled are lost, never added.

local now = now_us(ARGV[1])
local minttl = tonumber(ARGV[2])
local k = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local E = tonumber(ARGV[5])
local P = tonumber(ARGV[6])
local tau = tonumber(ARGV[7])
local back = tonumber(ARGV[8])

local d = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local T, r = tonumber(raw), 0
  if not T then
    T, r = string.match(raw, '^(%d+):(%d+)$')
    T, r = tonumber(T), tonumber(r)
    if not T then return redis.error_reply('ERR bulwark: malformed token bucket state') end
  end
  if T > now then d = (T - now) * E + r elseif T == now then d = r end
end

local before = d
d = math.max(d - back * P, 0)
local granted = 0
if k > 0 and tau > d then
  granted = math.min(k, floordiv(tau - d, P))
  if granted < n then granted = 0 end
end
d = d + granted * P
if d == before then return {granted, d} end

if d == 0 then
  redis.call('DEL', KEYS[1])
  return {granted, 0}
end
local q = floordiv(d, E)
local m = d - q * E
local v = int(now + q)
if m > 0 then v = v .. ':' .. int(m) end
redis.call('SET', KEYS[1], v, 'PX', ttl_ms(ceildiv(d, E), minttl))
return {granted, d}
