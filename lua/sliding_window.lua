-- Sliding-window counter; docs/algorithms.md, "Sliding-window counter".
-- The count is the current fixed window's count plus the previous window's,
-- weighted by how much of it still overlaps the sliding window (now-P, now].
--
-- KEYS[1]   state: 'w:cur:prev'; absent = both windows empty
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
local cur, prev = 0, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local w, c, p = string.match(raw, '^(%d+):(%d+):(%d+)$')
  if not w then return redis.error_reply('ERR bulwark: malformed sliding window state') end
  w, c, p = tonumber(w), tonumber(c), tonumber(p)
  if w > wn then wn, e = w, 0 end -- the clock went back: stay in the stored window
  if w == wn then cur, prev = c, p
  elseif w == wn - 1 then prev = c end
end

local weighted = prev * (P - e) -- previous window's count, scaled by P
local allowed = weighted + (cur + n) * P <= E * P
if allowed then
  cur = cur + n
  redis.call('SET', KEYS[1], string.format('%d:%d:%d', wn, cur, prev), 'PX', ttl_ms(2 * P - e, minttl))
end

local remaining = math.max(0, E - ceildiv(weighted, P) - cur)
local reset = 0
if cur > 0 then reset = 2 * P - e elseif prev > 0 then reset = P - e end
if allowed then return {1, remaining, 0, reset} end

-- Denied: the earliest wait after which the same request, with no other
-- traffic, is admitted.
local retry
local x = E - cur - n
if x >= 0 and prev > 0 then
  local d1 = (P - e) - floordiv(x * P, prev)
  if d1 < P - e then retry = d1 end
end
if not retry then
  -- The next window decides: there prev' = cur and cur' = 0.
  local e2 = 0
  if cur > 0 then e2 = math.max(0, P - floordiv((E - n) * P, cur)) end
  retry = (P - e) + e2
end
return {0, remaining, retry, reset}
