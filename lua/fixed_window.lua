-- Fixed window; docs/algorithms.md, "Fixed window". Windows are
-- [w*P, (w+1)*P) µs since the Unix epoch.
--
-- KEYS[1]   state: 'w:cur' (window index, tokens admitted in it); absent = empty
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   n, tokens asked for
-- ARGV[4]   E, events per window
-- ARGV[5]   P, window length in µs
-- ARGV[6]   k (optional, default 1): k requests of n tokens each, decided
--           one after the other at the same instant, as k calls would be
--
-- Reply: {m, remaining, retry_after, reset_after}, durations in µs: m ≥ 1
-- when the first m of the k requests are admitted (remaining is what the
-- m leave), 0 when the first is denied.
--
-- Like token_bucket.lua, a bare script with no function (none would be
-- built on every call): arithmetic on numbers coerced from the argument
-- strings; a % b is exact once corrected (for 0 <= a < 2^53 the quotient's
-- floor is at most one too big, leaving a negative remainder).

local now = ARGV[1]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] * 1000000 + t[2]
else
  now = now + 0
end
local n = ARGV[3] + 0
local E = ARGV[4] + 0
local P = ARGV[5] + 0

local e = now % P
if e < 0 then e = e + P end
local wn = (now - e) / P
local cur = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local w, c = string.match(raw, '^(%d+):(%d+)$')
  if not w then return redis.error_reply('ERR bulwark: malformed fixed window state') end
  w = w + 0
  if w > wn then wn, e = w, 0 end -- the clock went back: stay in the stored window
  if w == wn then cur = c + 0 end
end

local left = P - e
if cur + n <= E then
  local m = 1
  local k = ARGV[6]
  if k then
    -- the first m requests fit: m = min(k, floor((E - cur) / n)) ≥ 1
    local x = E - cur
    local r = x % n
    if r < 0 then r = r + n end
    m = (x - r) / n
    k = k + 0
    if m > k then m = k end
  end
  cur = cur + m * n
  -- PEXPIRE max(ceil(left/1000), 1, min TTL) ms (left >= 1).
  local x = left + 999
  local r = x % 1000
  if r < 0 then r = r + 1000 end
  local ms = (x - r) / 1000
  local minttl = ARGV[2] + 0
  if ms < minttl then ms = minttl end
  redis.call('SET', KEYS[1], string.format('%d:%d', wn, cur), 'PX', ms)
  return {m, E - cur, 0, left}
end
-- cur > E when a replica with a larger E counted into this window (a limit
-- lowered mid rolling deploy): nothing remains, and the next window decides.
local rem = E - cur
if rem < 0 then rem = 0 end
return {0, rem, left, cur > 0 and left or 0}
