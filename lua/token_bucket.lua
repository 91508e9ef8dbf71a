-- Token bucket (GCRA) over one key; docs/algorithms.md, "Token bucket".
-- The hot path of every fleet, kept to the least work in Redis: one GET, one
-- SET when it admits, and no division on the common path; the caller derives
-- the Decision from the reply.
--
-- KEYS[1]   state: the theoretical arrival time tat, in scaled units of 1/E
--           µs, written as "T" when it is a whole number T of µs (always
--           when E is 1: Redis then stores it as an integer), else as "T:r",
--           tat = T×E + r with 0 < r < E; absent = full bucket. The state of
--           earlier versions, (at, ahead) as "at ahead" or
--           struct.pack('dd', at, ahead), is read as tat = at×E + ahead.
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   n, tokens asked for
-- ARGV[4]   E, P: the limit, Events per Period µs, divided by their greatest
-- ARGV[5]   common divisor (the same arithmetic, in coarser units: E is 1
--           whenever P/E is a whole number of µs); one token costs P units
-- ARGV[6]   tau, the tolerance: capacity × P units
-- ARGV[7]   k (optional, default 1): k requests of n tokens each, decided
--           one after the other at the same instant, as k calls would be
--           (the calls of several callers on one key, sent as one)
--
-- Reply: {m, need} when m ≥ 1 of the k requests are admitted (the first m),
-- need being the debt after the call (tat − now, in units), or {0, debt}
-- when the first is denied, the debt before it; both integers below 2^53.
-- A denial writes nothing.
--
-- Arithmetic is on numbers coerced from the argument strings, and integer
-- division uses a % b, corrected when negative (for 0 <= a < 2^53 Lua's
-- floor(a/b) is at most one too big), so the common path calls no function
-- but the Redis commands, tonumber and string.format.

local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
else
  now = now + 0
end
local E = ARGV[4] + 0

local d = 0 -- the debt: how far tat is ahead of now, in units (0: behind)
local raw = redis.call('GET', KEYS[1])
if raw then
  local T, r = tonumber(raw), 0
  if not T then
    T, r = string.match(raw, '^(%d+):(%d+)$')
    if not T then
      local at, ahead = string.match(raw, '^(%d+) (%d+)$')
      if not at and #raw == 16 and rawget(_G, 'struct') then at, ahead = struct.unpack('dd', raw) end
      at, ahead = tonumber(at), tonumber(ahead)
      if not at or not ahead then return redis.error_reply('ERR bulwark: malformed token bucket state') end
      r = ahead % E
      if r < 0 then r = r + E end
      T = at + (ahead - r) / E
    end
    T, r = tonumber(T), tonumber(r)
  end
  if T > now then d = (T - now) * E + r elseif T == now then d = r end
end

local step = ARGV[3] * ARGV[5] -- one request's cost in units
local need = d + step
local tau = ARGV[6] + 0
if need > tau then return {0, d} end
local m = 1
local k = ARGV[7]
if k then
  -- the first m requests fit: m = min(k, floor((tau - d) / step)) ≥ 1
  local x = tau - d
  local r = x % step
  if r < 0 then r = r + step end
  m = (x - r) / step
  k = k + 0
  if m > k then m = k end
  need = d + m * step
end

-- tat after the call: (now + q)×E + m; the bucket is full again ⌈need/E⌉ µs
-- from now, and the key lives that long (in whole ms, at least the minimum).
local v, reset
if E == 1 then
  v, reset = string.format('%d', now + need), need
else
  local m = need % E
  if m < 0 then m = m + E end
  local q = (need - m) / E
  v, reset = string.format('%d', now + q), q
  if m > 0 then v, reset = v .. string.format(':%d', m), q + 1 end
end
local x = reset + 999
local r = x % 1000
if r < 0 then r = r + 1000 end
local ms = (x - r) / 1000
local minttl = ARGV[2] + 0
if ms < minttl then ms = minttl end
redis.call('SET', KEYS[1], v, 'PX', ms)
return {m, need}
