--[[
campaign_get.lua: one consistent snapshot of a campaign, in one round trip.

KEYS[1] coupon:{c}:meta  KEYS[2] coupon:{c}:count  KEYS[3] coupon:{c}:outbox
Returns {} when the campaign does not exist, else
  {total, starts_at, ends_at or "", name or "", paused or "0", count, now_ms, outbox_len}
]]
if redis.replicate_commands then
  redis.replicate_commands()
end
local m = redis.call('HMGET', KEYS[1], 'total', 'starts_at', 'ends_at', 'name', 'paused')
if not m[1] then
  return {}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local count = redis.call('GET', KEYS[2]) or '0'
local xlen = 0
if redis.call('EXISTS', KEYS[3]) == 1 then
  xlen = redis.call('XLEN', KEYS[3])
end
return {m[1], m[2] or '0', m[3] or '', m[4] or '', m[5] or '0', count, now, xlen}
