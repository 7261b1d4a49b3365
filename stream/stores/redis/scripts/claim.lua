-- Claim windows for publication in their owner partition (their model version's): ARGV[2] is JSON
-- {groups: [{model, expect, windows, ends, rows, detectors, fed_to}], ttl}. A group whose change
-- detectors (hash cd:<model>) moved since they were read (field '#end' other than `expect`) is a
-- conflict: nothing of it is done. Otherwise the outputs of each window past the model version's
-- published-through end are queued, that end moved to the group's last, and the detectors stored.
-- Returns {claimed windows, conflicting models}.
--! include rpush.lua
--! include store_detectors.lua
--! include through.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
migrate_closed(base)
local claimed, conflicts = 0, {}
for _, g in ipairs(a.groups) do
  local cd = base .. ':cd:' .. g.model
  if (redis.call('HGET', cd, '#end') or '') ~= g.expect then
    conflicts[#conflicts + 1] = g.model
  else
    local published = through(base, 'cp', g.model)
    for i, e in ipairs(g.ends) do
      if tonumber(e) > published then
        rpush(base .. ':o', g.rows[i])
        advance(base, 'cp', g.model, e)
        claimed = claimed + 1
      end
    end
    redis.call('EXPIRE', base .. ':cp', a.ttl)
    store_detectors(cd, g, '#end', a.ttl)
  end
end
return {claimed, conflicts}
