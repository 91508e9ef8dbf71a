-- Fleet-wide circuit breaker: the whole state machine of one breaker, shared
-- by every replica. Every state change happens here, atomically; replicas
-- only cache what the replies and the published messages tell them.
--
-- KEYS[1]  state hash: state (0 closed, 1 open, 2 half-open), gen, opened
--          (µs, when it last opened), until (µs, when an open breaker may go
--          half-open), consec (fleet-wide run of failures), granted (trials
--          handed out in this half-open period), ok (trials that succeeded),
--          w and of (the window and open duration of the last writer, for
--          read-only inspection)
-- KEYS[2]  counts hash. Closed: fields c<i>, f<i>, s<i> hold the calls,
--          failures and slow calls of bucket i (bucket = floor(now / (W/10))).
--          Half-open: fields t<k> hold the grant time (µs) of trial k until
--          it reports. Deleted at every transition.
-- ARGV[1]  now in µs, or '' to read Redis TIME
-- ARGV[2]  minimum TTL in ms (0: none)
-- ARGV[3]  operation: get, peek, report, acquire, trial, force
-- ARGV[4]  pub/sub channel for transitions ('' : publish nothing)
-- ARGV[5]  topic: the breaker's encoded name, first word of each message
-- ARGV[6..12]  config: W window µs, M minimum calls, FR failure rate,
--          CF consecutive failures (0: off), SR slow call rate (0: off),
--          OF open duration µs, H half-open calls
-- ARGV[13..]   operation arguments:
--          report:  gen, calls, failures, slow, lead, maxrun, tail
--                   (lead: failures before the batch's first success;
--                   maxrun: longest run of failures in the batch; tail:
--                   failures after its last success)
--          trial:   gen, trial index, 1 success | 0 failure or slow
--          force:   1 open | 0 closed
--
-- get and peek read (get also applies the transitions time alone causes:
-- open -> half-open after OF, half-open -> open when a trial has not
-- reported within OF); report adds a batch of outcomes of generation gen to
-- the current bucket and trips the breaker when a rule says so; acquire
-- hands out one half-open trial call, fleet-wide at most H per half-open
-- period; trial records a trial's outcome; force resets (closed) or opens
-- the breaker. Every operation but peek creates an absent state as closed,
-- with generation = now, so generations grow across expiries and restarts.
-- A change of state, generation or open deadline is published on ARGV[4]
-- as "topic state gen opened until now".
--
-- Reply: {state, gen, opened, until, now, calls, failures, slow, consec,
-- granted, ok, result}: the state after the operation, the window's counts
-- (closed) and result: report/trial 1 when applied (0: stale generation or
-- wrong state), acquire the trial index granted (0: none), force 1, get and
-- peek 0. peek of an absent breaker returns gen 0. Times in µs.

local now = now_us(ARGV[1])
local minttl = tonumber(ARGV[2])
local op = ARGV[3]
local channel, topic = ARGV[4], ARGV[5]
local W, M, FR = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local CF, SR, OF, H = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local NB = 10
local B = floordiv(W, NB) -- bucket width, µs (W >= 1000)
local S, C = KEYS[1], KEYS[2]
local ro = op == 'peek'

local raw = redis.call('HMGET', S, 'state', 'gen', 'opened', 'until', 'consec', 'granted', 'ok', 'w', 'of')
local st = {
  state = tonumber(raw[1]) or 0, gen = tonumber(raw[2]) or 0,
  opened = tonumber(raw[3]) or 0, untl = tonumber(raw[4]) or 0,
  consec = tonumber(raw[5]) or 0, granted = tonumber(raw[6]) or 0, ok = tonumber(raw[7]) or 0,
}
if ro then
  -- inspection uses the shape of the last writer when it knows it
  W = tonumber(raw[8]) or W
  OF = tonumber(raw[9]) or OF
  B = floordiv(W, NB)
end
local dirty, moved = false, false
local result = 0

if raw[2] == false and not ro then
  st.gen = now
  dirty, moved = true, true
end

local function transition(to)
  st.state = to
  st.gen = math.max(st.gen + 1, now)
  st.consec, st.granted, st.ok = 0, 0, 0
  if to == 1 then
    st.opened, st.untl = now, now + OF
  elseif to == 0 then
    st.opened, st.untl = 0, 0
  end
  if not ro then redis.call('DEL', C) end
  dirty, moved = true, true
end

-- the transitions time alone causes
local function refresh()
  if st.state == 1 then
    if now >= st.untl then transition(2) end
  elseif st.state == 2 and st.granted > 0 then
    local t = redis.call('HGETALL', C)
    for i = 1, #t, 2 do
      if string.sub(t[i], 1, 1) == 't' and now - tonumber(t[i + 1]) >= OF then
        transition(1)
        return
      end
    end
  end
end

-- the counts of the window (closed state), and the stale fields
local function window()
  local cur = floordiv(now, B)
  local calls, fails, slow = 0, 0, 0
  local stale = {}
  local t = redis.call('HGETALL', C)
  for i = 1, #t, 2 do
    local f = t[i]
    local kind, idx = string.sub(f, 1, 1), tonumber(string.sub(f, 2))
    if idx and idx > cur - NB then
      local v = tonumber(t[i + 1])
      if kind == 'c' then calls = calls + v
      elseif kind == 'f' then fails = fails + v
      elseif kind == 's' then slow = slow + v end
    else
      stale[#stale + 1] = f
    end
  end
  return calls, fails, slow, stale, cur
end

refresh()

if op == 'report' then
  local g = tonumber(ARGV[13])
  if st.state == 0 and g == st.gen then
    local n, nf, ns = tonumber(ARGV[14]), tonumber(ARGV[15]), tonumber(ARGV[16])
    local lead, maxrun, tail = tonumber(ARGV[17]), tonumber(ARGV[18]), tonumber(ARGV[19])
    local calls, fails, slow, stale, cur = window()
    for i = 1, #stale, 100 do
      redis.call('HDEL', C, unpack(stale, i, math.min(i + 99, #stale)))
    end
    if n > 0 then redis.call('HINCRBY', C, 'c' .. int(cur), n) end
    if nf > 0 then redis.call('HINCRBY', C, 'f' .. int(cur), nf) end
    if ns > 0 then redis.call('HINCRBY', C, 's' .. int(cur), ns) end
    redis.call('PEXPIRE', C, ttl_ms(W + B, minttl))
    calls, fails, slow = calls + n, fails + nf, slow + ns
    local trip = false
    if CF > 0 and (st.consec + lead >= CF or maxrun >= CF) then trip = true end
    if nf == n then st.consec = st.consec + nf else st.consec = tail end
    if calls >= M and (fails / calls >= FR or (SR > 0 and slow / calls >= SR)) then trip = true end
    if trip then transition(1) end
    dirty = true
    result = 1
  end
elseif op == 'acquire' then
  if st.state == 2 and st.granted < H then
    st.granted = st.granted + 1
    redis.call('HSET', C, 't' .. int(st.granted), int(now))
    redis.call('PEXPIRE', C, ttl_ms(3 * math.max(W, OF), minttl))
    dirty = true
    result = st.granted
  end
elseif op == 'trial' then
  local g, k, success = tonumber(ARGV[13]), tonumber(ARGV[14]), ARGV[15] == '1'
  if st.state == 2 and g == st.gen and redis.call('HDEL', C, 't' .. int(k)) == 1 then
    if success then
      st.ok = st.ok + 1
      if st.ok >= H then transition(0) end
    else
      transition(1)
    end
    dirty = true
    result = 1
  end
elseif op == 'force' then
  if ARGV[13] == '1' then
    if st.state == 1 then
      st.opened, st.untl = now, now + OF -- restart the open period
      dirty, moved = true, true
    else
      transition(1)
    end
  else
    transition(0)
  end
  result = 1
end

if dirty and not ro then
  redis.call('HSET', S, 'state', st.state, 'gen', int(st.gen), 'opened', int(st.opened), 'until', int(st.untl),
    'consec', st.consec, 'granted', st.granted, 'ok', st.ok, 'w', int(W), 'of', int(OF))
  redis.call('PEXPIRE', S, ttl_ms(3 * math.max(W, OF), minttl))
end
if moved and not ro and channel ~= '' then
  redis.call('PUBLISH', channel, topic .. ' ' .. st.state .. ' ' .. int(st.gen) .. ' ' .. int(st.opened) .. ' ' ..
    int(st.untl) .. ' ' .. int(now))
end

local calls, fails, slow = 0, 0, 0
if st.state == 0 then calls, fails, slow = window() end
return {st.state, st.gen, st.opened, st.untl, now, calls, fails, slow, st.consec, st.granted, st.ok, result}
