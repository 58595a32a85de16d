--[[
lease.lua: takes or renews a lease, a key that says who works on a
campaign (couponctl's operator commands: coupon:{c}:ops; the outbox relay
of one coupon-api: coupon:{c}:relay). A holder that dies stops renewing
it, and it expires.

KEYS[1] the lease
ARGV[1] the taker's token (unique per run)  ARGV[2] time to live, ms
ARGV[3] what the taker is, for the one refused ("rebuild host:pid")

Returns {"ok"} when the lease is the taker's now (taken, or renewed: it
was already), else {"held", what the holder is, its remaining ms}.
]]
local cur = redis.call('GET', KEYS[1])
if cur then
  local token, what = string.match(cur, '^(%S+) ?(.*)$')
  if token ~= ARGV[1] then
    return {'held', what or '', redis.call('PTTL', KEYS[1])}
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. ARGV[3], 'PX', ARGV[2])
return {'ok'}
