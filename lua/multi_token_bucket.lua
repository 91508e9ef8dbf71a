-- Token bucket (GCRA) over several keys (lua.MultiTokenBucket); docs/algorithms.md, "Token bucket".
-- Deducts from every key only when every key admits n tokens.
--
-- KEYS[i]   state of limit i: struct.pack('dd', at, ahead) (16 bytes), or the
--           text "at ahead" on servers without the struct library (embedded
--           test servers); absent = full bucket
--           at: time (µs) of the last admitted request
--           ahead: how far tat was ahead of at, in scaled units of 1/E µs
-- ARGV[1]   now in µs, or '' to read Redis TIME
-- ARGV[2]   minimum TTL in ms (0: none)
-- ARGV[3]   n, tokens asked for
-- ARGV[3i+1], ARGV[3i+2], ARGV[3i+3]   limit i: E events, P period µs, C capacity
--
-- Reply: {allowed 0|1, remaining_1, retry_after_1, reset_after_1, ...}, one
-- triple per key, durations in µs. All values are integers below 2^53.

-- The state is two doubles packed in 16 bytes where the struct library exists
-- (Redis, Valkey); elsewhere it is written as text. rawget: reading a missing
-- global is an error in script sandboxes.
local struct = rawget(_G, 'struct')
local function encode(at, ahead)
  if struct then return struct.pack('dd', at, ahead) end
  return string.format('%.0f %.0f', at, ahead)
end
local function decode(raw)
  if struct and #raw == 16 then
    local at, ahead = struct.unpack('dd', raw)
    return at, ahead
  end
  local at, ahead = string.match(raw, '^(%d+) (%d+)$')
  return tonumber(at), tonumber(ahead)
end

local now = now_us(ARGV[1])
local minttl = tonumber(ARGV[2])
local n = tonumber(ARGV[3])

local ok = true
local st = {}
for i = 1, #KEYS do
  local E = tonumber(ARGV[3 * i + 1])
  local P = tonumber(ARGV[3 * i + 2])
  local tau = tonumber(ARGV[3 * i + 3]) * P -- tolerance: C tokens of P units
  local at, ahead = now, 0
  local raw = redis.call('GET', KEYS[i])
  if raw then
    at, ahead = decode(raw)
    if not at or not ahead then return redis.error_reply('ERR bulwark: malformed token bucket state') end
  end
  local t = now -- a clock that went back sees the debt not yet repaid at now
  local d = 0                 -- debt left at t
  local elapsed = t - at
  if elapsed < ceildiv(ahead, E) then d = ahead - elapsed * E end
  local need = d + n * P
  if need > tau then ok = false end
  st[i] = {t, d, need, E, P, tau}
end

local reply = {ok and 1 or 0}
for i = 1, #KEYS do
  local t, d, need, E, P, tau = unpack(st[i])
  if ok then
    local reset = ceildiv(need, E)
    redis.call('SET', KEYS[i], encode(t, need), 'PX', ttl_ms(reset, minttl))
    reply[#reply + 1] = floordiv(tau - need, P)
    reply[#reply + 1] = 0
    reply[#reply + 1] = reset
  else
    -- tau < d only when the limit shrank since the state was written
    reply[#reply + 1] = floordiv(math.max(tau - d, 0), P)
    reply[#reply + 1] = need > tau and ceildiv(need - tau, E) or 0
    reply[#reply + 1] = ceildiv(d, E)
  end
end
return reply
