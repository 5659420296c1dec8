-- Decides one or more buys of one product, atomically. For each buy either every rule passes
-- and stock, buyer, deduction log (and in "buy" mode the outbox) change together, or nothing
-- changes for it. Several buys in one call are decided in order, as if called one by one:
-- grouping them only saves round trips and script calls.
--
-- KEYS[1] stock   (string int)           KEYS[2] buyers (hash userId -> orderNo held)
-- KEYS[3] orders  (hash orderNo -> "userId,qty": the deduction log)
-- KEYS[4] window  (hash start, end (ms; 0 = open), limit, price; frozen while the sale is fenced)
-- KEYS[5] outbox  (stream: accepted orders the broker has not stored yet)
-- KEYS[6] revoked (set of userId whose place in the sale's waiting room the operator revoked)
-- ARGV[1] mode: "buy"   take stock and add an outbox entry per taken buy (batched mode)
--               "take"  take stock only (transaction mode: the broker holds the half message)
--               "check" decide without writing (transaction mode's cheap pre-check)
-- ARGV[2..] one triple per buy: userId, quantity, orderNo
--
-- Returns {price, nowMs, code1, n1, id1, code2, n2, id2, ...} where code/n is
--   "OK"/stock left | "SOLD_OUT"/stock left | "ALREADY_BOUGHT"/0 | "NOT_STARTED"/start ms
--   | "ENDED"/end ms | "OVER_LIMIT"/limit | "NO_SUCH_PRODUCT"/0 | "SALE_FROZEN"/0 | "REVOKED"/0
-- and id is the buy's outbox entry id ("" unless taken in "buy" mode); for ALREADY_BOUGHT it is
-- the order number the user holds, so a buyer whose first answer was lost learns it. An outbox entry holds
-- o = orderNo, u = userId, q = quantity, p = price, t = nowMs: everything the order message
-- needs, so a sweeper can send it if the origin that wrote it dies.

local mode = ARGV[1]
local n = (#ARGV - 1) / 3
local out = {}

local function all(code, value, price, now)
  local r = {price, now}
  for _ = 1, n do
    r[#r + 1] = code; r[#r + 1] = value; r[#r + 1] = ''
  end
  return r
end

-- Redis's clock, not the caller's: one clock for every origin instance.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local window = redis.call('HMGET', KEYS[4], 'start', 'end', 'limit', 'price', 'frozen')
-- Frozen: this Redis may have lost writes (a restart, a failover, a flush) or is being
-- reloaded; nothing is sold until a reconcile has set it to the true state again. Checked
-- first: after a flush the window holds nothing but this field.
if window[5] then
  return all('SALE_FROZEN', 0, window[4] or '', now)
end
if not window[3] then
  return all('NO_SUCH_PRODUCT', 0, '', now)
end
local price = window[4] or ''
local start_ms = tonumber(window[1]) or 0
local end_ms = tonumber(window[2]) or 0
if start_ms > 0 and now < start_ms then
  return all('NOT_STARTED', start_ms, price, now)
end
if end_ms > 0 and now >= end_ms then
  return all('ENDED', end_ms, price, now)
end

local limit = tonumber(window[3])
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local taken = 0
out[1] = price
out[2] = now
for i = 0, n - 1 do
  local user, qty_arg, order_no = ARGV[2 + i * 3], ARGV[3 + i * 3], ARGV[4 + i * 3]
  local qty = tonumber(qty_arg)
  local code, value, id = 'OK', 0, ''
  local held = qty <= limit and redis.call('HGET', KEYS[2], user)
  if redis.call('SISMEMBER', KEYS[6], user) == 1 then
    code = 'REVOKED'
  elseif qty > limit then
    code, value = 'OVER_LIMIT', limit
  elseif held then
    code, id = 'ALREADY_BOUGHT', held
  elseif stock < qty then
    code, value = 'SOLD_OUT', stock
  elseif mode == 'check' then
    value = stock
  else
    stock = stock - qty
    taken = taken + qty
    value = stock
    redis.call('HSET', KEYS[2], user, order_no)
    redis.call('HSET', KEYS[3], order_no, user .. ',' .. qty_arg)
    if mode == 'buy' then
      id = redis.call('XADD', KEYS[5], '*', 'o', order_no, 'u', user, 'q', qty_arg, 'p', price, 't', now)
    end
  end
  out[#out + 1] = code
  out[#out + 1] = value
  out[#out + 1] = id
end
if taken > 0 then
  redis.call('DECRBY', KEYS[1], taken)
end
return out
