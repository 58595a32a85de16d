--[[
campaign_rebuild.lua: the last step of couponctl rebuild, atomic. The user
set becomes the staged set (MySQL's users, open failed events' users and,
copied by outbox_users.lua, the outbox's users: the campaign is paused, so
no entry can be added meanwhile); the count becomes its size; the campaign
is resumed. Only while the run still holds the campaign's operator lease:
a run that lost it may have staged less than the one that took over.

KEYS[1] coupon:{c}:meta  KEYS[2] coupon:{c}:count  KEYS[3] coupon:{c}:users
KEYS[4] the staged set   KEYS[5] coupon:{c}:ops (the lease)
ARGV[1] the lease token
Returns {count before, count after, users before, users after}, or the
error "LEASE lost" (nothing changed).
]]
local lease = redis.call('GET', KEYS[5])
if not lease or string.match(lease, '^(%S+)') ~= ARGV[1] then
  return redis.error_reply('LEASE lost')
end
local count_before = tonumber(redis.call('GET', KEYS[2])) or 0
local users_before = redis.call('SCARD', KEYS[3])
local n = redis.call('SCARD', KEYS[4])
if n > 0 then
  redis.call('RENAME', KEYS[4], KEYS[3])
else
  redis.call('DEL', KEYS[3])
end
redis.call('SET', KEYS[2], n)
redis.call('HDEL', KEYS[1], 'paused')
return {count_before, n, users_before, n}
