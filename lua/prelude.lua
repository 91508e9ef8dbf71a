-- prelude.lua: helpers shared by the scripts of this package (all but
-- token_bucket.lua). lua.go puts this text in front of each such script's
-- own file, so the script the server runs (and hashes) is this prelude
-- followed by the script. It only defines local functions: no command runs
-- before the script itself calls one. Globals are neither read nor written.

-- floor(a/b) and ceil(a/b) for integers 0 <= a < 2^53, b >= 1: the double
-- quotient may be off by one ulp, so correct it with the exact remainder.
local function floordiv(a, b)
  local q = math.floor(a / b)
  local r = a - q * b
  if r < 0 then q = q - 1 elseif r >= b then q = q + 1 end
  return q
end
local function ceildiv(a, b)
  local q = floordiv(a, b)
  if q * b < a then q = q + 1 end
  return q
end

-- An integer as text. Formatted by hand: Lua's default number format would
-- print large values in exponent notation.
local function int(x) return string.format('%d', x) end

-- Redis TIME in µs since the Unix epoch (about 2^51 today, exact in a double).
local function time_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

-- The current time in µs: the caller's (ARGV[1] of the limiter and breaker
-- scripts, '' when it has none) or else Redis TIME.
local function now_us(arg)
  return tonumber(arg) or time_us()
end

-- The PEXPIRE of a key that must live us µs: max(ceil(us/1000), 1, minttl) ms,
-- minttl being the caller's minimum TTL in ms (ARGV[2]; 0: none).
local function ttl_ms(us, minttl)
  return math.max(ceildiv(us, 1000), 1, minttl)
end
