-- singleflight_forget.lua: drop the stored outcome of a key, so that the
-- next caller runs the function again. A run in progress is not affected
-- (its outcome is stored when it ends).
--
-- KEYS[1] result STRING the record of the last run
-- ARGV[1] none: the script takes no arguments
-- Reply: 1 when a record was dropped, 0 when there was none.
return redis.call('DEL', KEYS[1])
