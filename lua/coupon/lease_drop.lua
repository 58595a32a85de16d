--[[
lease_drop.lua: gives a lease up, if it is still the caller's.

KEYS[1] the lease  ARGV[1] the caller's token
Returns 1 when it was dropped, 0 when it was not (anymore) the caller's.
]]
local cur = redis.call('GET', KEYS[1])
if cur and string.match(cur, '^(%S+)') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
