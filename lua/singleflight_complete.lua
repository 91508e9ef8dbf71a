-- singleflight_complete.lua: a leader hands its outcome over and gives up
-- its lease, then wakes the waiters of every replica.
--
-- KEYS[1] lease  STRING "<id>:<token>" of the leader
-- KEYS[2] result STRING the record of the run
-- ARGV[1] "<id>:<token>" of the caller
-- ARGV[2] the record: "v<token>:<payload>" (a value), "e<token>:<message>"
--         (the function failed), "p<token>:<message>" (it panicked),
--         "l<token>:<size>" (the value was too large to share); "" stores
--         nothing (the run was abandoned: waiters take over at once)
-- ARGV[3] record TTL (milliseconds, at least 1)
-- ARGV[4] wake-up channel
-- ARGV[5] wake-up message ("<topic> d", the cluster.Broadcast format)
-- Reply: 1 when the caller still held the lease (the record is stored, the
-- lease deleted and the waiters woken), 0 when it did not (nothing written:
-- a later leader owns the key).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return 1
