-- Take windows ARGV[2] (JSON) off this partition's list of windows waiting for a provisional record.
local base, windows = ARGV[1], cjson.decode(ARGV[2])
for _, w in ipairs(windows) do redis.call('ZREM', base .. ':pv', w) end
return 1
