-- Take counts ARGV[2] (JSON {version, take: [[model, [field, -n, ...]], ...], rows}) if the counters'
-- version is still the one read: subtract them, queue the rows. Returns 1, or 0 when it moved.
--! include rpush.lua
--! include hincr.lua
local base, a = ARGV[1], cjson.decode(ARGV[2])
if (redis.call('GET', base .. ':cv') or '') ~= a.version then return 0 end
redis.call('INCR', base .. ':cv')
local take = {}
for _, t in ipairs(a.take) do take[#take + 1] = {base .. ':c:' .. t[1], t[2]} end
hincr(take)

for _, t in ipairs(take) do
  local c = redis.call('HGETALL', t[1])
  for j = 1, #c, 2 do if tonumber(c[j + 1]) == 0 then redis.call('HDEL', t[1], c[j]) end end
end
rpush(base .. ':o', a.rows)
return 1
