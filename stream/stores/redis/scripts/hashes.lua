-- The hashes named in ARGV[2] (JSON: names after the partition's base), each as HGETALL gives it
-- (one reply for many small hashes: redis-py spends far more on a command than Redis does on it).
local base, out = ARGV[1], {}
for i, name in ipairs(cjson.decode(ARGV[2])) do out[i] = redis.call('HGETALL', base .. ':' .. name) end
return out
