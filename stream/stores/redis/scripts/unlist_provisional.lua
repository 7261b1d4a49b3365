-- Take windows ARGV[2] (JSON) off this partition's list of windows waiting for a provisional record,
-- and drop their data-quality parts (published with it).
local base, windows = ARGV[1], cjson.decode(ARGV[2])
for _, w in ipairs(windows) do
  redis.call('ZREM', base .. ':pv', w)
  redis.call('DEL', base .. ':q:' .. w, base .. ':qs:' .. w)
end
return 1
