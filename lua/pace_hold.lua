-- Pacer hold: the time until which the clients of one server quota send
-- nothing, shared by a fleet of clients (bulwarkhttp.Pacer with a store).
--
-- KEYS[1]   the hold: Unix time in µs, as decimal text; absent = no hold
-- ARGV[1]   the new hold, Unix time in µs, or '' only to read the current one
-- ARGV[2]   the new hold's TTL in ms (at least 1): how long it matters
--
-- Reply: the hold in force after the call, Unix µs; 0 when there is none.
-- A hold only ever moves later: an earlier one leaves the stored one as is.

local raw = redis.call('GET', KEYS[1])
local cur = 0
if raw then
  cur = tonumber(raw)
  if not cur then return redis.error_reply('ERR bulwark: malformed pace hold') end
end
if ARGV[1] == '' then return cur end
local new = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
if not new or not ttl or ttl < 1 then return redis.error_reply('ERR bulwark: bad pace hold arguments') end
if new > cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
  return new
end
return cur
