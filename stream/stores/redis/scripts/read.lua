-- ARGV[2]: the digests, concatenated; ARGV[3]: model references the caller knows; ARGV[4..]: input
-- topics. Returns the entries (a long one is in a key of its own: 'P' points there), the model
-- references from the known count on, the topics' applied offsets, the watermark hash, the version
-- and the count of model references.
--! include buckets.lua
--! include rpush.lua
local blob, values = ARGV[2], {}
for i = 1, #blob, 12 do
  local f = string.sub(blob, i, i + 11)
  local v = redis.call('HGET', bucket(f), f)
  if v == 'P' then v = redis.call('GET', base .. ':L:' .. f) end
  values[#values + 1] = v or false
end
local models, count = {}, redis.call('HLEN', base .. ':m')
for r = tonumber(ARGV[3]), count - 1 do models[#models + 1] = redis.call('HGET', base .. ':m', r) end
local offsets = {}
for i = 4, #ARGV do offsets[#offsets + 1] = redis.call('HGET', base .. ':ck', ARGV[i]) or false end
return {values, models, offsets, redis.call('HGETALL', base .. ':wm'), lm[4] or '', count}
