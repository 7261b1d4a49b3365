-- Claim windows for publication in their owner partition (their model version's): ARGV[2] is JSON
-- {groups: [{model, expect, windows, ends, rows, detectors, fed_to}], ttl}. A group whose change
-- detectors (hash cd:<model>) moved since they were read (field '#end' other than `expect`) is a
-- conflict: nothing of it is done. Otherwise the outputs of each window not closed yet are queued,
-- the window marked closed, and the detectors stored. Returns {claimed windows, conflicting models}.
--! include rpush.lua
--! include store_detectors.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
local closed, claimed, conflicts = base .. ':closed', 0, {}
for _, g in ipairs(a.groups) do
  local cd = base .. ':cd:' .. g.model
  if (redis.call('HGET', cd, '#end') or '') ~= g.expect then
    conflicts[#conflicts + 1] = g.model
  else
    for i, w in ipairs(g.windows) do
      if not redis.call('ZSCORE', closed, w) then
        redis.call('ZADD', closed, g.ends[i], w)
        rpush(base .. ':o', g.rows[i])
        claimed = claimed + 1
      end
    end
    store_detectors(cd, g, '#end', a.ttl)
  end
end
return {claimed, conflicts}
