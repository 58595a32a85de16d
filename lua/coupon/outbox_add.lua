--[[
outbox_add.lua: appends one issuance to a campaign's outbox for the relay
to deliver (couponctl reconcile re-publishing a user that is nowhere
downstream), only while the caller still holds the campaign's operator
lease: a run that lost it (stalled past its expiry while another took
over) must not add what the other run adds too.

KEYS[1] coupon:{c}:outbox  KEYS[2] coupon:{c}:ops (the lease)
ARGV[1] the lease token  ARGV[2] user id  ARGV[3] seq  ARGV[4] issued_at (unix ms)
Returns the entry id, or the error "LEASE lost".
]]
local cur = redis.call('GET', KEYS[2])
if not cur or string.match(cur, '^(%S+)') ~= ARGV[1] then
  return redis.error_reply('LEASE lost')
end
return redis.call('XADD', KEYS[1], '*', 'user_id', ARGV[2], 'seq', ARGV[3], 'issued_at', ARGV[4])
