local base, meta = ARGV[1], KEYS[1]
local function h32(f)
  local a, b, c, d = string.byte(f, 1, 4)
  return ((a * 256 + b) * 256 + c) * 256 + d
end
local lm = redis.call('HMGET', meta, 'L', 's', 'n', 'v', 'pi', 'pl')
local L, S, N = tonumber(lm[1]) or 0, tonumber(lm[2]) or 0, tonumber(lm[3]) or 0
local function bucket(f)
  local h = h32(f)
  local b = h % (2 ^ L)
  if b < S then b = h % (2 ^ (L + 1)) end
  return base .. ':e:' .. b
end
