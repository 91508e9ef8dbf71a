-- Live configuration write (package control): sets the live value of one
-- named policy, bumps the version counter, records the change in the
-- policy's history and announces it, all in one atomic step. Replicas read
-- what it wrote (HGETALL of the live hash, GET of the counter); nothing else
-- writes these keys.
--
-- KEYS[1]   version counter: integer, one more for every change of any policy
-- KEYS[2]   live values: HASH, field = policy name, value = "<version> <layer JSON>"
-- KEYS[3]   this policy's history: LIST of "<version> <record JSON>", newest first
-- ARGV[1]   policy name
-- ARGV[2]   the version of the live value the caller read ('0': none):
--           compare-and-set, so two operators cannot overwrite each other
-- ARGV[3]   the new layer as JSON ('{}': no override, the defaults apply)
-- ARGV[4]   the history record as JSON (the version is prepended here)
-- ARGV[5]   how many history records to keep (>= 1)
-- ARGV[6]   pub/sub channel; the message is "config <name> <version>"
--
-- Reply: {1, new version} when written, {0, current version of the policy}
-- when ARGV[2] is stale and nothing was written.
--
-- These keys have no TTL on purpose: they are an operator's decision and
-- the source of truth for every replica, so they must not expire. The
-- history is bounded by ARGV[5] instead.

local name = ARGV[1]
local cur = 0
local raw = redis.call('HGET', KEYS[2], name)
if raw then
  cur = tonumber(string.match(raw, '^(%d+) '))
  if not cur then return redis.error_reply('ERR bulwark: malformed live config of ' .. name) end
end
if cur ~= tonumber(ARGV[2]) then
  return {0, cur}
end

local v = redis.call('INCR', KEYS[1])
local tag = string.format('%d', v)
redis.call('HSET', KEYS[2], name, tag .. ' ' .. ARGV[3])
redis.call('LPUSH', KEYS[3], tag .. ' ' .. ARGV[4])
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('PUBLISH', ARGV[6], 'config ' .. name .. ' ' .. tag)
return {1, v}
