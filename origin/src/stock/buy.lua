-- The buy path's only writer of Redis stock. Atomic: either every check passes and stock,
-- buyers and the deduction log change together, or nothing changes.
--
-- KEYS[1] stock   (string int)     KEYS[2] buyers (set of userId)
-- KEYS[3] orders  (hash orderNo -> "userId,qty", the deduction log)
-- KEYS[4] window  (hash start, end (ms; 0 = open), limit)
-- ARGV[1] userId  ARGV[2] quantity  ARGV[3] orderNo  ARGV[4] "check" to decide without writing
--
-- Returns {code, n, price}: {"OK", stock left} | {"SOLD_OUT", stock left} | {"ALREADY_BOUGHT", 0}
--   | {"NOT_STARTED", start ms} | {"ENDED", end ms} | {"OVER_LIMIT", limit} | {"NO_SUCH_PRODUCT", 0}
-- "check" mode lets the origin turn most requests away with one read, before it involves the
-- broker; only buy mode is authoritative.

local window = redis.call('HMGET', KEYS[4], 'start', 'end', 'limit', 'price')
if not window[3] then
  return {'NO_SUCH_PRODUCT', 0, ''}
end
local price = window[4] or ''

-- Redis's clock, not the caller's: one clock for every origin instance.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local start_ms = tonumber(window[1]) or 0
local end_ms = tonumber(window[2]) or 0
if start_ms > 0 and now < start_ms then
  return {'NOT_STARTED', start_ms, price}
end
if end_ms > 0 and now >= end_ms then
  return {'ENDED', end_ms, price}
end

local qty = tonumber(ARGV[2])
local limit = tonumber(window[3])
if qty > limit then
  return {'OVER_LIMIT', limit, price}
end
if redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then
  return {'ALREADY_BOUGHT', 0, price}
end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if stock < qty then
  return {'SOLD_OUT', stock, price}
end

if ARGV[4] == 'check' then
  return {'OK', stock, price}
end

redis.call('DECRBY', KEYS[1], qty)
redis.call('SADD', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[1] .. ',' .. ARGV[2])
return {'OK', stock - qty, price}
