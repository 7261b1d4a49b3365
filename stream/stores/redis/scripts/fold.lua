-- Fold a window's data-quality rows into its summary: ARGV[2] the window, ARGV[3] the folds the
-- summary was read with, ARGV[4] the new summary, ARGV[5] the rows it took from the list's head,
-- ARGV[6] the safety TTL. Compare-and-set: when another fold came between (or the window's keys
-- are gone), nothing is written and 0 returned.
local base, w = ARGV[1], ARGV[2]
local qs, q = base .. ':qs:' .. w, base .. ':q:' .. w
if (redis.call('HGET', qs, 'n') or '0') ~= ARGV[3] then return 0 end
if redis.call('LLEN', q) < tonumber(ARGV[5]) then return 0 end
redis.call('HSET', qs, 'p', ARGV[4], 'n', tonumber(ARGV[3]) + 1)
redis.call('LTRIM', q, tonumber(ARGV[5]), -1)
redis.call('EXPIRE', qs, ARGV[6])
return 1
