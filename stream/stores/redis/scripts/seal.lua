-- Seal windows ARGV[2] (JSON {windows, models, keys, ends}) in this partition, oldest first: its
-- part of each becomes the sealed hash s:<window> (field '#' marks it; the segment values it
-- admitted are forgotten, and so are the parts of its earlier windows that only inferences
-- reached, listed in its 'u:'), the model version's
-- sealed-through end moves to the window's end (a pair for it that comes after is late), and the
-- counters of the window's model move into the first window of this call to take them ('#' before
-- each name; counts that name no model are never a model's: they go out in an accounting record
-- of their own). A window published already gives false; one sealed already is returned as it is
-- (a repeated close); one past the sealed-through end gives false. Returns each window's sealed hash.
--! include through.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
migrate_closed(base)
local out, changed = {}, false
for i, w in ipairs(a.windows) do
  local sealed = base .. ':s:' .. w
  if tonumber(a.ends[i]) <= through(base, 'cp', a.keys[i]) then
    out[i] = false  -- published (in the model version's owner partition): only the cleanup is left
  elseif redis.call('EXISTS', sealed) == 1 then
    out[i] = redis.call('HGETALL', sealed)
  elseif tonumber(a.ends[i]) <= through(base, 'cl', a.keys[i]) then
    out[i] = false
  else
    local part = base .. ':w:' .. w
    if redis.call('EXISTS', part) == 1 then redis.call('RENAME', part, sealed) end
    redis.call('HSET', sealed, '#', '1')
    local note = redis.call('GET', base .. ':pd:' .. w)  -- the provisional claim's, in the owner partition
    if note and note ~= '1' then redis.call('HSET', sealed, '~drifted', note) end
    local counters = base .. ':c:' .. a.models[i]  -- a later window of the model finds them gone
    local c = redis.call('HGETALL', counters)
    for j = 1, #c, 2 do redis.call('HINCRBY', sealed, '#' .. c[j], c[j + 1]) end
    redis.call('DEL', counters)
    redis.call('ZREM', base .. ':open', w)
    redis.call('ZADD', base .. ':sealed', a.ends[i], w)
    advance(base, 'cl', a.keys[i], a.ends[i])
    changed = true
    out[i] = redis.call('HGETALL', sealed)
    -- the model version's windows that only inferences reached, up to this one, are past too
    local listed = base .. ':u:' .. a.keys[i]
    for _, v in ipairs(redis.call('ZRANGEBYSCORE', listed, '-inf', a.ends[i])) do
      if v ~= w then redis.call('DEL', base .. ':w:' .. v) end
      redis.call('DEL', base .. ':pd:' .. v)
    end
    redis.call('ZREMRANGEBYSCORE', listed, '-inf', a.ends[i])
    local admitted = {}  -- the segment values the part admitted: no pair will join it now
    for j = 1, #out[i], 2 do
      local k = string.match(out[i][j], '^k\31([^\31]*)\31')
      if k and not admitted[k] then
        admitted[k] = true
        redis.call('DEL', part .. ':g:' .. k)
      end
    end
  end
end
if changed then redis.call('INCR', base .. ':cv') end  -- counters moved: a count read before is stale
return out
