-- KEYS[1]: a partition's watermark hash; raise its idle floor to ARGV[1] (never lower it).
local v = tonumber(redis.call('HGET', KEYS[1], 'f') or '-inf')
if tonumber(ARGV[1]) > v then redis.call('HSET', KEYS[1], 'f', ARGV[1]) end
return 1
