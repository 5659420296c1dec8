-- Gives an order's stock back in Redis, exactly once: it acts only if it removes the order
-- from the deduction log, so a redelivered cancel finds nothing to do.
--
-- KEYS[1] stock  KEYS[2] buyers  KEYS[3] orders (deduction log)
-- ARGV[1] orderNo
--
-- Returns the quantity given back, or 0 if the order was not in the log.

local entry = redis.call('HGET', KEYS[3], ARGV[1])
if not entry then
  return 0
end
local user, qty = string.match(entry, '^(%d+),(%d+)$')
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('INCRBY', KEYS[1], qty)
redis.call('SREM', KEYS[2], user)
return tonumber(qty)
