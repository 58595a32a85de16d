-- Gives a hold back: only the hold of that very ticket, so that a late
-- release (a reaper behind, a repeated cancel) never frees the user's next
-- ticket. KEYS[1] = ticket:{<type>}:users (see reserve.lua); ARGV = user id,
-- ticket id.
-- Returns 1 if it was released, 0 if that hold was not there.
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held and string.sub(held, 1, #ARGV[2] + 1) == ARGV[2] .. ':' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 1
end
return 0
