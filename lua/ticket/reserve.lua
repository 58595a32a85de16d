-- The reservation gate: decides at Redis speed, before MySQL sees the
-- request, and writes nothing that would need undoing unless it passes.
-- KEYS[1] = ticket:{<type>}:meta, KEYS[2] = ticket:{<type>}:users (user id
-- -> "<ticket id>:<unix ms of the hold>" for the user's live ticket:
-- PENDING, PAID or CONFIRMED).
-- ARGV[1] = user id, ARGV[2] = the id the new ticket will have.
-- Returns {'ok', id} (the hold is recorded: MySQL must now take the stock,
-- or the caller gives the hold back), {'held', id, age_ms} (the user's
-- live ticket, recorded age_ms ago), {'sold_out'}, {'not_open',
-- 'scheduled'|'ended'}, {'not_found'}. Repeating a call that ran answers
-- {'held', ARGV[2], ...}: the caller knows it.
local m = redis.call('HMGET', KEYS[1], 'total', 'starts_at', 'ends_at')
if not m[1] then
  return {'not_found'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now < tonumber(m[2]) then
  return {'not_open', 'scheduled'}
end
local ends = tonumber(m[3])
if ends > 0 and now >= ends then
  return {'not_open', 'ended'}
end
local held = redis.call('HGET', KEYS[2], ARGV[1])
if held then
  local sep = string.find(held, ':', 1, true)
  local since = sep and tonumber(string.sub(held, sep + 1)) or now
  return {'held', sep and string.sub(held, 1, sep - 1) or held, now - since}
end
if redis.call('HLEN', KEYS[2]) >= tonumber(m[1]) then
  return {'sold_out'}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':' .. now)
return {'ok', ARGV[2]}
