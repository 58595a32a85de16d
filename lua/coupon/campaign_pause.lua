--[[
campaign_pause.lua: pauses (ARGV[1] = "1") or resumes ("0") a campaign.
While paused, issue.lua answers "paused" (HTTP 503) and changes nothing.
Used by couponctl rebuild; when the meta hash was lost (FLUSHALL, a
restore from an old snapshot) it is written again from MySQL's row.

KEYS[1] coupon:{c}:meta  KEYS[2] coupon:campaigns (the relay's registry)
ARGV[1] "1" or "0"  ARGV[2] campaign id  ARGV[3] total  ARGV[4] starts_at
ARGV[5] ends_at ("" = never)  ARGV[6] name
Returns "restored" when the meta hash had to be written again, else "ok".
]]
local res = 'ok'
if redis.call('HEXISTS', KEYS[1], 'total') == 0 then
  redis.call('HSET', KEYS[1], 'total', ARGV[3], 'starts_at', ARGV[4], 'name', ARGV[6])
  if ARGV[5] ~= '' then
    redis.call('HSET', KEYS[1], 'ends_at', ARGV[5])
  end
  res = 'restored'
end
if ARGV[1] == '1' then
  redis.call('HSET', KEYS[1], 'paused', '1')
else
  redis.call('HDEL', KEYS[1], 'paused')
end
redis.call('SADD', KEYS[2], ARGV[2])
return res
