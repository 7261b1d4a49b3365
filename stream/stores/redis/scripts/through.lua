-- Per model version, the end of the last window this partition sealed (hash 'cl') or, in the
-- owner partition of the model version, published (hash 'cp'): every window of the model version
-- ending by then is past. A pair for it is late, and it is never sealed or published again. One
-- field per model version, whatever the number of windows (key layout 2 kept a sorted set of
-- every window closed in the last 15 days, 'closed': folded into the hashes on first sight).
local function through(base, name, mk)
  local v = redis.call('HGET', base .. ':' .. name, mk)
  return v and tonumber(v) or -math.huge
end
local function advance(base, name, mk, e)
  if tonumber(e) > through(base, name, mk) then redis.call('HSET', base .. ':' .. name, mk, e) end
end
local function migrate_closed(base)
  local old = base .. ':closed'
  if redis.call('EXISTS', old) == 1 then
    local all = redis.call('ZRANGE', old, 0, -1, 'WITHSCORES')
    for i = 1, #all, 2 do
      local mk = string.match(all[i], '^([^\31]*\31[^\31]*)\31')
      if mk then
        advance(base, 'cl', mk, all[i + 1])
        advance(base, 'cp', mk, all[i + 1])
      end
    end
    redis.call('DEL', old)
  end
end
