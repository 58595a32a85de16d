-- A ticket type's gate state, written from MySQL's row (the truth) by a
-- create. KEYS[1] = ticket:{<id>}:meta; ARGV = total, starts_at, ends_at
-- (unix ms; 0 = never), hold_ms.
-- Returns 1 when this call wrote it, 0 when it was there already: of any
-- number of identical creates, exactly one hears "created".
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'starts_at', ARGV[2], 'ends_at', ARGV[3], 'hold_ms', ARGV[4])
return 1
