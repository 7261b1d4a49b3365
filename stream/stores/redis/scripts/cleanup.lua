-- Drop this partition's sealed parts of windows ARGV[2] (JSON {windows, ends, forget}) and remember
-- them as closed, forgetting windows closed before `forget`.
local base, a = ARGV[1], cjson.decode(ARGV[2])
for i, w in ipairs(a.windows) do
  redis.call('DEL', base .. ':s:' .. w)
  redis.call('ZREM', base .. ':sealed', w)
  redis.call('ZREM', base .. ':pv', w)
  redis.call('DEL', base .. ':pd:' .. w)
  redis.call('ZADD', base .. ':closed', a.ends[i], w)
end
redis.call('ZREMRANGEBYSCORE', base .. ':closed', '-inf', '(' .. a.forget)
return 1
