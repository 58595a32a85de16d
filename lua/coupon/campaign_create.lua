--[[
campaign_create.lua: create a campaign's meta hash unless it exists.

KEYS[1] coupon:{c}:meta  KEYS[2] coupon:{c}:create (the creating request's token)
ARGV[1] total  ARGV[2] starts_at (unix ms)  ARGV[3] ends_at (unix ms, "" = never)
ARGV[4] name   ARGV[5] a token unique to the create request

Returns "created", "same" (it exists with exactly these fields, made by
another request) or "exists" (it exists and differs). A request that sends
the script again because its first answer was lost (the connection broke)
gets "created" again: KEYS[2] remembers its token for a minute, so exactly
one request ever hears "created".
]]
local cur = redis.call('HMGET', KEYS[1], 'total', 'starts_at', 'ends_at', 'name')
if cur[1] then
  if cur[1] == ARGV[1] and cur[2] == ARGV[2] and (cur[3] or '') == ARGV[3]
     and (cur[4] or '') == ARGV[4] then
    if redis.call('GET', KEYS[2]) == ARGV[5] then
      return 'created'
    end
    return 'same'
  end
  return 'exists'
end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'starts_at', ARGV[2], 'name', ARGV[4])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[1], 'ends_at', ARGV[3])
end
redis.call('SET', KEYS[2], ARGV[5], 'PX', 60000)
return 'created'
