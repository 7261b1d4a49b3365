-- Seal windows ARGV[2] (JSON {windows, models, ends}) in this partition, oldest first: its part of
-- each becomes the sealed hash s:<window> (field '#' marks it), and the counters of the window's
-- model move into the first window of this call to take them ('#' before each name; counts that
-- name no model are never a model's: they go out in an accounting record of their own). A window already sealed is left as it is; one this partition saw closed gives
-- false. Returns each window's sealed hash.
local base, a = ARGV[1], cjson.decode(ARGV[2])
local closed, out, changed = base .. ':closed', {}, false
for i, w in ipairs(a.windows) do
  local sealed = base .. ':s:' .. w
  if redis.call('ZSCORE', closed, w) then
    out[i] = false
  else
    if redis.call('EXISTS', sealed) == 0 then
      local part = base .. ':w:' .. w
      if redis.call('EXISTS', part) == 1 then redis.call('RENAME', part, sealed) end
      redis.call('HSET', sealed, '#', '1')
      local counters = base .. ':c:' .. a.models[i]  -- a later window of the model finds them gone
      local c = redis.call('HGETALL', counters)
      for j = 1, #c, 2 do redis.call('HINCRBY', sealed, '#' .. c[j], c[j + 1]) end
      redis.call('DEL', counters)
      redis.call('ZREM', base .. ':open', w)
      redis.call('ZADD', base .. ':sealed', a.ends[i], w)
      changed = true
    end
    out[i] = redis.call('HGETALL', sealed)
  end
end
if changed then redis.call('INCR', base .. ':cv') end  -- counters moved: a count read before is stale
return out
