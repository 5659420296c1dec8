-- Adds a loan from another bucket of the same product (lend.lua) to this bucket's stock,
-- exactly once: the received set remembers every transfer id taken in.
--
-- KEYS[1] stock  KEYS[2] window  KEYS[3] received (set of transfer ids)
-- ARGV[1] transfer id  ARGV[2] units  ARGV[3] the epoch the loan was made in
--
-- A preload or reconcile gives every bucket a new epoch and recomputes its stock from MySQL,
-- which already counts units that were on their way. A loan from another epoch than this
-- bucket's is therefore not added (-1): the lender's record stays until its own bucket is
-- reloaded (then the loan is dropped) or this one is (then it is taken in).
--
-- Returns the units added, 0 if the transfer was received before, or -1.

if (redis.call('HGET', KEYS[2], 'epoch') or '') ~= ARGV[3] then
  return -1
end
if redis.call('SADD', KEYS[3], ARGV[1]) == 0 then
  return 0
end
redis.call('INCRBY', KEYS[1], ARGV[2])
return tonumber(ARGV[2])
