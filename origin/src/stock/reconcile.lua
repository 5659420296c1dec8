-- Repairs one product's Redis state from MySQL's view plus what Redis still knows is in
-- flight, atomically with respect to buys; or, dry, only says what it would change.
--
-- KEYS[1] stock  KEYS[2] buyers (hash userId -> orderNo)  KEYS[3] orders (deduction log)  KEYS[4] window  KEYS[5] outbox
-- KEYS[6] transfers  KEYS[7] received (a sharded sale's loans between buckets, lend.lua)
-- ARGV[1] MySQL stock  ARGV[2] start ms  ARGV[3] end ms  ARGV[4] limit  ARGV[5] price
-- ARGV[6] "1" = dry run (change nothing)
-- ARGV[7] buckets the sale's stock is split into  ARGV[8] this run's epoch
-- ARGV[9] "1" = leave the sale frozen (window field frozen = this epoch), "0" = unfreeze it
-- ARGV[10..] pairs: orderNo, "userId,qty" of every active order MySQL holds (one snapshot,
--           read together with ARGV[1]); the same layout as preload.lua's
--
-- A sharded sale is repaired bucket by bucket, as preload.lua loads it: ARGV[1] is the
-- bucket's share, the orders those of its users; loans between buckets are dropped.
--
-- In flight = deductions MySQL does not hold, and outbox entries whose order is in neither
-- (the log lost them, the outbox did not). The true state:
--   deduction log = active orders + in flight
--   buyers        = the users of those orders, each with their active order (else the one in flight)
--   stock         = MySQL stock - units in flight
--   window        = MySQL's
-- Orders only the broker holds are invisible here: the caller makes sure the queue drained.
--
-- Returns {"OK", stock before (or ""), stock after, units in flight, orders in flight,
--          kind1, item1, before1, after1, ...} with "" for a value that is absent,
--      or {"INCONSISTENT", stock after, units in flight} (nothing changed).

local dry = ARGV[6] == '1'

local active = {}
for i = 10, #ARGV, 2 do
  active[ARGV[i]] = ARGV[i + 1]
end

-- The target deduction log: active orders, then what is in flight.
local target = {}
local units, orders = 0, 0
for order_no, entry in pairs(active) do
  target[order_no] = entry
end
local log = redis.call('HGETALL', KEYS[3])
local current = {}
for i = 1, #log, 2 do
  current[log[i]] = log[i + 1]
end
local function in_flight(order_no, entry)
  if target[order_no] == nil then
    target[order_no] = entry
    units = units + (tonumber(string.match(entry, ',(%d+)$')) or 0)
    orders = orders + 1
  end
end
for order_no, entry in pairs(current) do
  in_flight(order_no, entry)
end
local outbox = redis.call('XRANGE', KEYS[5], '-', '+')
for _, e in ipairs(outbox) do
  local f = {}
  for i = 1, #e[2], 2 do
    f[e[2][i]] = e[2][i + 1]
  end
  if f.o and f.u and f.q then
    in_flight(f.o, f.u .. ',' .. f.q)
  end
end

local stock = tonumber(ARGV[1]) - units
if stock < 0 then
  return {'INCONSISTENT', stock, units}
end

local out = {'OK', redis.call('GET', KEYS[1]) or '', stock, units, orders}
local function change(kind, item, before, after)
  if before ~= after then
    out[#out + 1] = kind; out[#out + 1] = item
    out[#out + 1] = before or ''; out[#out + 1] = after or ''
  end
end

change('stock', 'stock', redis.call('GET', KEYS[1]) or nil, tostring(stock))
local w = redis.call('HMGET', KEYS[4], 'start', 'end', 'limit', 'price', 'buckets')
local want = {ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]}
-- A sale loaded before sharding existed has no buckets field: it had one.
if w[5] == false and ARGV[7] == '1' then
  w[5] = '1'
end
for i, field in ipairs({'start', 'end', 'limit', 'price', 'buckets'}) do
  change('window', field, w[i] or nil, want[i])
end

local buyers = {}
for order_no, entry in pairs(active) do
  buyers[string.match(entry, '^(%d+),')] = order_no
end
for order_no, entry in pairs(target) do
  local user = string.match(entry, '^(%d+),')
  buyers[user] = buyers[user] or order_no
end
for order_no, entry in pairs(target) do
  change('deduction', order_no, current[order_no], entry)
end
for order_no, entry in pairs(current) do
  if target[order_no] == nil then
    change('deduction', order_no, entry, nil)
  end
end
-- A buyers set of an older version is read as empty and rebuilt.
local recorded = {}
if redis.call('TYPE', KEYS[2]).ok == 'hash' then
  local flat = redis.call('HGETALL', KEYS[2])
  for i = 1, #flat, 2 do
    recorded[flat[i]] = flat[i + 1]
  end
end
for user, order_no in pairs(recorded) do
  if not buyers[user] then
    change('buyer', user, order_no, nil)
  end
end
for user, order_no in pairs(buyers) do
  change('buyer', user, recorded[user], order_no)
end

if not dry then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[6], KEYS[7])
  redis.call('SET', KEYS[1], stock)
  redis.call('HSET', KEYS[4], 'start', ARGV[2], 'end', ARGV[3], 'limit', ARGV[4], 'price', ARGV[5],
    'buckets', ARGV[7], 'epoch', ARGV[8])
  if ARGV[9] == '1' then
    redis.call('HSET', KEYS[4], 'frozen', ARGV[8])
  else
    redis.call('HDEL', KEYS[4], 'frozen')
  end
  for order_no, entry in pairs(target) do
    redis.call('HSET', KEYS[3], order_no, entry)
  end
  for user, order_no in pairs(buyers) do
    redis.call('HSET', KEYS[2], user, order_no)
  end
end
return out
