-- Drop this partition's sealed parts of windows ARGV[2] (JSON {windows, keys, ends, ttl}), with
-- their provisional markers and listings: the windows are past.
--! include through.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
for i, w in ipairs(a.windows) do
  redis.call('DEL', base .. ':s:' .. w)
  redis.call('ZREM', base .. ':sealed', w)
  redis.call('ZREM', base .. ':pv', w)
  redis.call('DEL', base .. ':pd:' .. w)
  advance(base, 'cl', a.keys[i], a.ends[i])
end
redis.call('EXPIRE', base .. ':cl', a.ttl)
if redis.call('EXISTS', base .. ':cp') == 1 then redis.call('EXPIRE', base .. ':cp', a.ttl) end
return 1
