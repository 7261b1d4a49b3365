-- The data-quality parts of windows ARGV[2] (JSON) in this partition, read atomically (a fold moves
-- rows from the list into the summary): per window {summary or false, folds, {row, ...}}.
local base, out = ARGV[1], {}
for i, w in ipairs(cjson.decode(ARGV[2])) do
  local qs = base .. ':qs:' .. w
  out[i] = {redis.call('HGET', qs, 'p') or false, redis.call('HGET', qs, 'n') or '0',
            redis.call('LRANGE', base .. ':q:' .. w, 0, -1)}
end
return out
