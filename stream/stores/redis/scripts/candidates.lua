-- Fill the partition's work list ARGV[2] ('xw': expiring, 'xv': evicting) from its expiry index,
-- unless a crash left one: ARGV[3] 'due' takes the slots ending by ARGV[4], 'over' the entries
-- beyond the ARGV[4] that expire last; ARGV[5] entries at most. Returns the work list.
--! include buckets.lua
--! include rpush.lua
local work, xs = base .. ':' .. ARGV[2], base .. ':xs'
if redis.call('EXISTS', work) == 1 then return redis.call('LRANGE', work, 0, -1) end
local want, slots = tonumber(ARGV[5]), nil
if ARGV[3] == 'over' then
  want = math.min(want, N - tonumber(ARGV[4]))
  if want <= 0 then return {} end
  slots = redis.call('ZRANGE', xs, 0, -1)
else
  slots = redis.call('ZRANGEBYSCORE', xs, '-inf', ARGV[4])
end
local got = 0
for _, s in ipairs(slots) do
  if got >= want then break end
  local key = base .. ':x:' .. s
  local items = redis.call('LRANGE', key, 0, want - got - 1)
  if #items > 0 then
    rpush(work, items)
    redis.call('LTRIM', key, #items, -1)
    got = got + #items
  end
  if redis.call('EXISTS', key) == 0 then redis.call('ZREM', xs, s) end
end
return redis.call('LRANGE', work, 0, -1)
