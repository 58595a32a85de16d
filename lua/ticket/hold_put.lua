-- Records a live ticket's hold that the gate lost (couponctl ticket-type
-- reconcile, from MySQL's live tickets). KEYS[1] = ticket:{<type>}:users;
-- ARGV = user id, ticket id. Writes only where the user has no hold.
-- Returns 1 if it wrote the hold, 0 if the user had one.
local t = redis.call('TIME')
return redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2] .. ':' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)))
