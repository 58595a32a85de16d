--[[
outbox_users.lua: adds the user id of every outbox entry to a set, for
couponctl reconcile and rebuild (the outbox holds accepted issuances that
Kafka does not have yet: they count as issued).

KEYS[1] coupon:{c}:outbox  KEYS[2] the destination set (same hash tag)
Returns the number of outbox entries read.
]]
local n = 0
local last = '-'
while true do
  local entries = redis.call('XRANGE', KEYS[1], last, '+', 'COUNT', 1000)
  local got = 0
  for _, e in ipairs(entries) do
    if e[1] ~= last then
      got = got + 1
      local f = e[2]
      for i = 1, #f, 2 do
        if f[i] == 'user_id' then
          redis.call('SADD', KEYS[2], f[i + 1])
        end
      end
    end
    last = e[1]
  end
  n = n + got
  if got == 0 then
    break
  end
end
return n
