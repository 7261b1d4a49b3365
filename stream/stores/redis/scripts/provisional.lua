-- Claim windows for their provisional record in their owner partition (their model version's):
-- ARGV[2] is JSON {groups: [{model, expect, windows, ends, rows, notes, detectors, fed_to}], ttl}. A group whose
-- change detectors moved since they were read (field '#pend' other than `expect`) is a conflict;
-- otherwise the outputs of each window neither sealed here nor published provisionally yet are queued (a
-- `pd:` marker, holding the window's note (its drifted features) or '1', says it was, for the safety TTL) and the detectors stored. Returns {records queued,
-- conflicting models}.
--! include rpush.lua
--! include store_detectors.lua
--! include through.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
migrate_closed(base)
local queued, conflicts = 0, {}
for _, g in ipairs(a.groups) do
  local cd = base .. ':cd:' .. g.model
  if (redis.call('HGET', cd, '#pend') or '') ~= g.expect then
    conflicts[#conflicts + 1] = g.model
  else
    local sealed = through(base, 'cl', g.model)
    for i, w in ipairs(g.windows) do
      if tonumber(g.ends[i]) > sealed
        and redis.call('SET', base .. ':pd:' .. w, g.notes[i] ~= '' and g.notes[i] or '1', 'NX', 'EX', a.ttl) then
        rpush(base .. ':o', g.rows[i])
        queued = queued + #g.rows[i]
        redis.call('ZADD', base .. ':u:' .. g.model, g.ends[i], w)  -- the marker goes when the window is past
        redis.call('EXPIRE', base .. ':u:' .. g.model, a.ttl)
      end
    end
    store_detectors(cd, g, '#pend', a.ttl)
  end
end
return {queued, conflicts}
