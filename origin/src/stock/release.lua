-- Gives an order's stock back in Redis, exactly once: it acts only if it removes the order
-- from the deduction log, so a redelivered cancel finds nothing to do.
--
-- KEYS[1] stock  KEYS[2] buyers (hash userId -> orderNo)  KEYS[3] orders (deduction log)  KEYS[4] outbox
-- ARGV[1] orderNo
-- ARGV[2] outbox entry id, or "" (a cancel or a rejection: the order left the outbox long ago)
-- ARGV[3] with an entry id: the entry's age limit in ms (the sweeper owns older entries)
-- ARGV[4] "1" to keep the user a buyer (they hold another order of this product): their
--         record then names that other order, found in the deduction log
-- ARGV[5] "1" to drop the deduction without giving its units back: MySQL refused the order
--         because the units never existed there (Redis sold stock it should not have had)
--
-- With an entry id this is the relay giving back a buy whose batch the broker surely did not
-- store. It acts only if the entry is still in the outbox and younger than the age limit:
-- a missing entry was sent by someone (its order is coming), an old one may be in the
-- sweeper's hands. Returns -1 then, and changes nothing.
--
-- Returns the quantity given back (or dropped), 0 if the order was not in the deduction log,
-- or -1.

if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local born = tonumber(string.match(ARGV[2], '^(%d+)-'))
  if not born or now - born >= tonumber(ARGV[3]) then
    return -1
  end
  if redis.call('XDEL', KEYS[4], ARGV[2]) == 0 then
    return -1
  end
end

local entry = redis.call('HGET', KEYS[3], ARGV[1])
if not entry then
  return 0
end
local user, qty = string.match(entry, '^(%d+),(%d+)$')
redis.call('HDEL', KEYS[3], ARGV[1])
if ARGV[5] ~= '1' then
  redis.call('INCRBY', KEYS[1], qty)
end
if ARGV[4] ~= '1' then
  redis.call('HDEL', KEYS[2], user)
elseif redis.call('HGET', KEYS[2], user) == ARGV[1] then
  -- Rare (MySQL refused a duplicate a Redis loss let through): a scan is affordable here.
  local log = redis.call('HGETALL', KEYS[3])
  for i = 1, #log, 2 do
    if string.match(log[i + 1], '^(%d+),') == user then
      redis.call('HSET', KEYS[2], user, log[i])
      break
    end
  end
end
return tonumber(qty)
