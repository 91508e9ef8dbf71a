-- singleflight_claim.lua: one caller's turn at a key of a cluster-wide
-- singleflight group: take the stored result, or become the leader that
-- runs the function, or learn how long the current leader's lease lasts.
--
-- KEYS[1] lease  STRING "<id>:<token>" of the leader, PX lease TTL
-- KEYS[2] result STRING the record of the last run, PX result TTL (see
--                        singleflight_complete.lua for its format)
-- KEYS[3] fence  STRING last fencing token issued for this key
-- ARGV[1] id of the caller (32 lowercase hex digits)
-- ARGV[2] lease TTL (milliseconds)
-- ARGV[3] fence key TTL (milliseconds)
-- Reply:
--   {2, record}  a result is stored: take it
--   {1, token}   the caller leads now (also when ARGV[1] already holds the
--                lease, so a retried call returns the same lease)
--   {0, pttl}    another caller leads; its lease lasts pttl more
--                milliseconds unless renewed
local lease, result, fence = KEYS[1], KEYS[2], KEYS[3]
local id = ARGV[1]

local rec = redis.call('GET', result)
if rec then
  return {2, rec}
end

local cur = redis.call('GET', lease)
if cur then
  local holder, token = string.match(cur, '^(%x+):(%d+)$')
  if holder == id then
    return {1, tonumber(token)}
  end
  local pttl = redis.call('PTTL', lease)
  if pttl < 0 then pttl = 0 end
  return {0, pttl}
end

-- Fencing token: one more than the last one, and never below the Redis time
-- in microseconds, so tokens keep growing after the fence key expired.
local now = time_us()
local token = tonumber(redis.call('GET', fence) or '0') + 1
if token < now then token = now end
redis.call('SET', fence, int(token), 'PX', ARGV[3])
redis.call('SET', lease, id .. ':' .. int(token), 'PX', ARGV[2])
return {1, token}
