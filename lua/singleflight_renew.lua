-- singleflight_renew.lua: keep a leader's lease alive.
--
-- KEYS[1] lease STRING "<id>:<token>" of the leader
-- ARGV[1] "<id>:<token>" of the caller
-- ARGV[2] lease TTL (milliseconds)
-- Reply: 1 when the caller still held the lease (its expiry is now + TTL),
-- 0 when it does not (it expired, or was taken over); a lost lease is not
-- revived.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
