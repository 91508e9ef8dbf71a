-- A minimal integer GCRA, the yardstick for the Redis CPU of a token-bucket
-- decision (bench/evalsha/run.sh). Not used by the library: no fake clock,
-- no exact scaled units, no remaining or reset in the reply.
--
-- KEYS[1]  tat, the theoretical arrival time in µs (an integer)
-- ARGV[1]  emission interval in µs
-- ARGV[2]  tolerance in µs: (burst - 1) × emission interval
--
-- Reply: {allowed 0|1, retry_after µs}
local t = redis.call('TIME')
local now = t[1] * 1000000 + t[2]
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new = tat + ARGV[1]
local wait = new - ARGV[2] - now
if wait > 0 then return {0, wait} end
redis.call('SET', KEYS[1], string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
return {1, 0}
