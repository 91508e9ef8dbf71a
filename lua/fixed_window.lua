-- Fixed window; docs/algorithms.md, "Fixed window". Windows are
-- [w*P, (w+1)*P) µs since the Unix epoch.
--
-- KEYS[1]   state: 'w:cur' (window index, tokens admitted in it); absent = empty
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   n, tokens asked for
-- ARGV[4]   E, events per window
-- ARGV[5]   P, window length in µs
--
-- Reply: {allowed 0|1, remaining, retry_after, reset_after}, durations in µs.

local now = now_us(ARGV[1])
local minttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local E = tonumber(ARGV[4])
local P = tonumber(ARGV[5])

local wn = floordiv(now, P)
local e = now - wn * P
local cur = 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local w, c = string.match(raw, '^(%d+):(%d+)$')
  if not w then return redis.error_reply('ERR bulwark: malformed fixed window state') end
  w, c = tonumber(w), tonumber(c)
  if w > wn then wn, e = w, 0 end -- the clock went back: stay in the stored window
  if w == wn then cur = c end
end

local left = P - e
if cur + n <= E then
  cur = cur + n
  redis.call('SET', KEYS[1], string.format('%d:%d', wn, cur), 'PX', ttl_ms(left, minttl))
  return {1, E - cur, 0, left}
end
-- cur > E when a replica with a larger E counted into this window (a limit
-- lowered mid rolling deploy): nothing remains, and the next window decides.
return {0, math.max(E - cur, 0), left, cur > 0 and left or 0}
