-- Lends stock from this bucket to another bucket of the same sharded product, when the other
-- bucket ran dry (see `buckets.rs`). Takes what the borrower needs, or half this bucket's
-- stock when that is more (so a busy bucket does not come back for every buy), and records
-- the loan as a pending transfer. The units are in neither bucket's stock until receive.lua
-- adds them to the borrower's; the lender deletes the record after that, and the sweeper
-- finishes loans whose lender died in between.
--
-- KEYS[1] stock  KEYS[2] window  KEYS[3] transfers (hash id -> "to,units,epoch,bornMs")
-- KEYS[4] transfer sequence (never reset, so ids are never reused)
-- ARGV[1] units needed  ARGV[2] the borrowing bucket's index  ARGV[3] this bucket's index
--
-- Returns {units lent, transfer id ("" if none), the sale state's epoch, transfers that were
-- already pending here (units on their way to another bucket)}.

local epoch = redis.call('HGET', KEYS[2], 'epoch') or ''
local pending = redis.call('HLEN', KEYS[3])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local give = math.max(tonumber(ARGV[1]), math.floor(stock / 2))
if give > stock then
  give = stock
end
-- A frozen bucket lends nothing: its stock may be stale (see buy.lua).
if give <= 0 or epoch == '' or redis.call('HEXISTS', KEYS[2], 'frozen') == 1 then
  return {0, '', epoch, pending}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local id = ARGV[3] .. '-' .. redis.call('INCR', KEYS[4])
redis.call('DECRBY', KEYS[1], give)
redis.call('HSET', KEYS[3], id, ARGV[2] .. ',' .. give .. ',' .. epoch .. ',' .. now)
return {give, id, epoch, pending}
