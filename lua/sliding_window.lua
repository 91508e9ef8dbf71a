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
--
-- A bare script with no function, like token_bucket.lua: arithmetic on
-- numbers coerced from the argument strings; floor(a/b) is (a - m)/b with
-- m = a % b, corrected when negative (for 0 <= a < 2^53 Lua's floor(a/b) is
-- at most one too big).

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
local cur, prev = 0, 0
local raw = redis.call('GET', KEYS[1])
if raw then
  local w, c, p = string.match(raw, '^(%d+):(%d+):(%d+)$')
  if not w then return redis.error_reply('ERR bulwark: malformed sliding window state') end
  w, c, p = w + 0, c + 0, p + 0
  if w > wn then wn, e = w, 0 end -- the clock went back: stay in the stored window
  if w == wn then cur, prev = c, p
  elseif w == wn - 1 then prev = c end
end

local weighted = prev * (P - e) -- previous window's count, scaled by P
local allowed = weighted + (cur + n) * P <= E * P
if allowed then
  cur = cur + n
  -- PEXPIRE max(ceil((2P - e)/1000), 1, min TTL) ms (2P - e >= 1).
  local x = 2 * P - e + 999
  local r = x % 1000
  if r < 0 then r = r + 1000 end
  local ms = (x - r) / 1000
  local minttl = ARGV[2] + 0
  if ms < minttl then ms = minttl end
  redis.call('SET', KEYS[1], string.format('%d:%d:%d', wn, cur, prev), 'PX', ms)
end

-- remaining = max(0, E - ceil(weighted/P) - cur)
local wm = weighted % P
if wm < 0 then wm = wm + P end
local wq = (weighted - wm) / P
if wm > 0 then wq = wq + 1 end
local remaining = E - wq - cur
if remaining < 0 then remaining = 0 end
local reset = 0
if cur > 0 then reset = 2 * P - e elseif prev > 0 then reset = P - e end
if allowed then return {1, remaining, 0, reset} end

-- Denied: the earliest wait after which the same request, with no other
-- traffic, is admitted.
local retry
local x = E - cur - n
if x >= 0 and prev > 0 then
  local a = x * P
  local m = a % prev
  if m < 0 then m = m + prev end
  local d1 = (P - e) - (a - m) / prev
  if d1 < P - e then retry = d1 end
end
if not retry then
  -- The next window decides: there prev' = cur and cur' = 0.
  local e2 = 0
  if cur > 0 then
    local a = (E - n) * P
    local m = a % cur
    if m < 0 then m = m + cur end
    e2 = P - (a - m) / cur
    if e2 < 0 then e2 = 0 end
  end
  retry = (P - e) + e2
end
return {0, remaining, retry, reset}
