-- Loads one product's sale into Redis from MySQL's view, atomically with respect to buys:
-- no buy can land between the check and the write.
--
-- KEYS[1] stock  KEYS[2] buyers (hash userId -> orderNo)  KEYS[3] orders (deduction log)  KEYS[4] window
-- (KEYS[5] outbox: passed, as to reconcile.lua, but not used)
-- KEYS[6] transfers  KEYS[7] received (a sharded sale's loans between buckets, lend.lua)
-- ARGV[1] MySQL stock  ARGV[2] start ms  ARGV[3] end ms  ARGV[4] limit  ARGV[5] price
-- ARGV[6] "1" = forced (load even while the sale is live)
-- ARGV[7] buckets the sale's stock is split into  ARGV[8] this load's epoch
-- ARGV[9] "1" = leave the sale frozen (window field frozen = this epoch), "0" = unfreeze it
-- ARGV[10..] pairs: orderNo, "userId,qty" of every active order MySQL holds (one snapshot,
--           read together with ARGV[1])
--
-- A sharded sale is loaded bucket by bucket: ARGV[1] is then this bucket's share of MySQL's
-- stock and the orders are those of the bucket's users (see buckets.rs). Loans between
-- buckets are dropped: their units are counted again in the shares.
--
-- Orders Redis has taken that MySQL does not hold yet are in flight (in the outbox, in the
-- broker, in the writer): they keep their deduction and buyer, and their units stay taken, so
-- stock = MySQL stock - units in flight. A deduction that MySQL writes between its snapshot
-- and this script is counted as in flight, and the snapshot's stock still holds its unit:
-- both views agree.
--
-- Returns {"OK", stock, units in flight, orders in flight}
--      or {"SALE_LIVE", start ms, end ms} when the loaded sale's window is open and not forced.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

if redis.call('EXISTS', KEYS[1]) == 1 and ARGV[6] ~= '1' then
  local w = redis.call('HMGET', KEYS[4], 'start', 'end')
  local s, e = tonumber(w[1]) or 0, tonumber(w[2]) or 0
  if (s == 0 or now >= s) and (e == 0 or now < e) then
    return {'SALE_LIVE', s, e}
  end
end

local active = {}
for i = 10, #ARGV, 2 do
  active[ARGV[i]] = ARGV[i + 1]
end

local log = redis.call('HGETALL', KEYS[3])
local in_flight = {}
local units = 0
for i = 1, #log, 2 do
  if active[log[i]] == nil then
    in_flight[#in_flight + 1] = log[i]
    in_flight[#in_flight + 1] = log[i + 1]
    units = units + (tonumber(string.match(log[i + 1], ',(%d+)$')) or 0)
  end
end

local stock = tonumber(ARGV[1]) - units
if stock < 0 then
  -- More in flight than MySQL has left: the two disagree beyond what loading can repair.
  return {'INCONSISTENT', stock, units, #in_flight / 2}
end

redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[6], KEYS[7])
redis.call('SET', KEYS[1], stock)
redis.call('HSET', KEYS[4], 'start', ARGV[2], 'end', ARGV[3], 'limit', ARGV[4], 'price', ARGV[5],
  'buckets', ARGV[7], 'epoch', ARGV[8])
if ARGV[9] == '1' then
  redis.call('HSET', KEYS[4], 'frozen', ARGV[8])
end
local function keep(order_no, entry)  -- an order whose deduction and buyer stay
  redis.call('HSET', KEYS[3], order_no, entry)
  redis.call('HSET', KEYS[2], string.match(entry, '^(%d+),'), order_no)
end
-- In flight first: a user with an active order and one in flight (a duplicate a Redis loss
-- let through, which MySQL will refuse) keeps the active one as their record.
for i = 1, #in_flight, 2 do
  keep(in_flight[i], in_flight[i + 1])
end
for i = 10, #ARGV, 2 do
  keep(ARGV[i], ARGV[i + 1])
end
return {'OK', stock, units, #in_flight / 2}
