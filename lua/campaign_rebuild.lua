--[[
campaign_rebuild.lua: the last step of couponctl rebuild, atomic. The user
set becomes the staged set (MySQL's users and open failed events) plus the
users still in the outbox; the count becomes its size; the campaign is
resumed.

KEYS[1] coupon:{c}:meta  KEYS[2] coupon:{c}:count  KEYS[3] coupon:{c}:users
KEYS[4] coupon:{c}:outbox  KEYS[5] the staged set
Returns {count before, count after, users before, users after}.
]]
local count_before = tonumber(redis.call('GET', KEYS[2])) or 0
local users_before = redis.call('SCARD', KEYS[3])
local last = '-'
while true do
  local entries = redis.call('XRANGE', KEYS[4], last, '+', 'COUNT', 1000)
  local got = 0
  for _, e in ipairs(entries) do
    if e[1] ~= last then
      got = got + 1
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'user_id' then
          redis.call('SADD', KEYS[5], f[i + 1])
        end
      end
    end
    last = e[1]
  end
  if got == 0 then
    break
  end
end
local n = redis.call('SCARD', KEYS[5])
if n > 0 then
  redis.call('RENAME', KEYS[5], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
redis.call('SET', KEYS[2], n)
redis.call('HDEL', KEYS[1], 'paused')
return {count_before, n, users_before, n}
