-- The counters of models ARGV[2] (JSON) that no window open in this partition carries (those that
-- name no model, '', always: no window carries them), and the counters' version.
local base, models = ARGV[1], cjson.decode(ARGV[2])
local open, carried, out = redis.call('ZRANGE', base .. ':open', 0, -1), {}, {}
for _, w in ipairs(open) do carried[string.match(w, '^[^\31]*')] = true end
for i, m in ipairs(models) do
  if m ~= '' and carried[m] then
    out[i] = {}
  else
    out[i] = redis.call('HGETALL', base .. ':c:' .. m)
  end
end
return {redis.call('GET', base .. ':cv') or '', out}
