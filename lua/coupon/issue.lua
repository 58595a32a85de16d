--[[
issue.lua: the whole issuance decision, run atomically by Redis.

KEYS[1] coupon:{c}:meta    hash   total, starts_at, ends_at (unix ms), paused
KEYS[2] coupon:{c}:count   string coupons accepted so far
KEYS[3] coupon:{c}:users   set    user ids accepted
KEYS[4] coupon:{c}:outbox  stream accepted issuances not yet in Kafka
ARGV[1] user id (validated by the caller)

Every refusal is decided before the first write, so a refused, repeated or
late request never moves the count (docs/design.md, invariants). The outbox entry
is written by the same script as the decision: there is no moment at which
a user is accepted and nothing remembers to deliver it.

Returns one of
  {"issued", seq, outbox_entry_id, issued_at_ms}
  {"already_issued"} {"sold_out"} {"not_found"} {"paused"}
  {"not_open", "scheduled"|"ended"}
]]
if redis.replicate_commands then
  -- Redis < 5 replicates scripts verbatim; TIME needs effects replication.
  redis.replicate_commands()
end

local meta = redis.call('HMGET', KEYS[1], 'total', 'starts_at', 'ends_at', 'paused')
local total = tonumber(meta[1])
if total == nil then
  return {'not_found'}
end
if meta[4] == '1' then
  return {'paused'}
end

-- One clock for every coupon-api instance: Redis's.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local starts = tonumber(meta[2]) or 0
local ends = tonumber(meta[3])
if now < starts then
  return {'not_open', 'scheduled'}
end
if ends ~= nil and now >= ends then
  return {'not_open', 'ended'}
end

if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then
  return {'already_issued'}
end
if (tonumber(redis.call('GET', KEYS[2])) or 0) >= total then
  return {'sold_out'}
end

local seq = redis.call('INCR', KEYS[2])
redis.call('SADD', KEYS[3], ARGV[1])
local id = redis.call('XADD', KEYS[4], '*', 'user_id', ARGV[1], 'seq', seq, 'issued_at', now)
return {'issued', seq, id, now}
