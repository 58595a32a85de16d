--[[
count_raise.lua: raises a campaign's count to the size of its user set when
it is below it (a user added to the set by hand or by a partial restore).
Only ever raises: a higher count can never let more coupons out.

KEYS[1] coupon:{c}:count  KEYS[2] coupon:{c}:users
Returns {count before, count after}.
]]
local count = tonumber(redis.call('GET', KEYS[1])) or 0
local scard = redis.call('SCARD', KEYS[2])
if scard > count then
  redis.call('SET', KEYS[1], scard)
  return {count, scard}
end
return {count, count}
