-- ARGV[2]: JSON of a batch's writes (see RedisStore._write); ARGV[3]: digests to delete; ARGV[4]:
-- entries to set, each digest, 4-byte length, value; ARGV[5]: digests whose long value to delete.
-- First the guard: when the partition's version or idle floor is not what the batch read, another
-- writer came between, and the script writes nothing and returns 0 (a sweep whose work list is
-- gone was done by another worker: 2). Otherwise it applies everything and returns
-- {1, rolling windows that came due: {{field, total}, ...}, the (0-based) windows of `a.windows`
-- whose pairs were counted late because the window had closed, the windows whose data-quality rows
-- hold a whole fold} (rolling windows' samples are read once per batch).
--! include buckets.lua
--! include rpush.lua
--! include hincr.lua
--! include through.lua
local a = cjson.decode(ARGV[2])
local wm = base .. ':wm'
if a.sweep ~= '' and redis.call('EXISTS', base .. ':' .. a.sweep) == 0 then return 2 end
if (lm[4] or '') ~= a.version or (redis.call('HGET', wm, 'f') or '') ~= a.floor then return 0 end
migrate_closed(base)
for i = 1, #a.models, 2 do redis.call('HSET', base .. ':m', a.models[i], a.models[i + 1]) end
local dels, sides = ARGV[3], ARGV[5]
for i = 1, #sides, 12 do redis.call('DEL', base .. ':L:' .. string.sub(sides, i, i + 11)) end
for i = 1, #dels, 12 do
  local f = string.sub(dels, i, i + 11)
  N = N - redis.call('HDEL', bucket(f), f)
end
local sets, pos, digests, touched = ARGV[4], 1, {}, {}
while pos <= #sets do
  local f = string.sub(sets, pos, pos + 11)
  local b1, b2, b3, b4 = string.byte(sets, pos + 12, pos + 15)
  local n = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  local v = string.sub(sets, pos + 16, pos + 15 + n)
  pos = pos + 16 + n
  digests[#digests + 1] = f
  if n > a.inline then
    redis.call('SET', base .. ':L:' .. f, v, 'EX', a.ttl)
    v = 'P'
  end
  local b = bucket(f)
  N = N + redis.call('HSET', b, f, v)
  touched[b] = true
end
for _, x in ipairs(a.index) do
  local key, items = base .. ':x:' .. x[1], {}
  for _, j in ipairs(x[2]) do items[#items + 1] = digests[j] end
  rpush(key, items)
  touched[key] = true
  redis.call('ZADD', base .. ':xs', x[1], x[1])
end
-- A pair whose window this partition sealed cannot join it: it is counted late, never lost (the
-- core judged it by its partitions' event time; another partition may have closed it).
local gone, late = {}, {}
for i, w in ipairs(a.windows) do  -- {window, its part, its model's counters, pairs, model version, end}
  if tonumber(w[6]) <= through(base, 'cl', w[5]) then
    gone[w[2]] = true
    redis.call('HINCRBY', w[3], 'late', w[4])
    late[#late + 1] = i - 1
  end
end
-- What inferences add to a window without opening it (coverage, estimates) is listed in the model
-- version's 'u:' until the window is past, when a seal drops it; a window already past takes
-- nothing. A model no label reaches is never sealed: its list keeps what the parts' safety TTL keeps.
for _, u in ipairs(a.uwin) do  -- {window, its part, model version, end}
  if tonumber(u[4]) <= through(base, 'cl', u[3]) then
    gone[u[2]] = true
  else
    local listed = base .. ':u:' .. u[3]
    redis.call('ZADD', listed, u[4], u[1])
    redis.call('ZREMRANGEBYSCORE', listed, '-inf', '(' .. (tonumber(u[4]) - a.ttl))
    redis.call('EXPIRE', listed, a.ttl)
  end
end
local writes = a.hincr
if next(gone) then
  writes = {}
  for _, h in ipairs(a.hincr) do if not gone[h[1]] then writes[#writes + 1] = h end end
end
hincr(writes)

for i = 1, #a.open, 2 do
  if not gone[base .. ':w:' .. a.open[i + 1]] then redis.call('ZADD', base .. ':open', a.open[i], a.open[i + 1]) end
end
for i = 1, #a.pv, 2 do redis.call('ZADD', base .. ':pv', a.pv[i], a.pv[i + 1]) end
for _, g in ipairs(a.seg) do  -- {window part, segment key, value, {field, increment, ...}}
  if not gone[g[1]] then
    local admitted, value = g[1] .. ':g:' .. g[2], g[3]
    if redis.call('SISMEMBER', admitted, value) == 0 then
      if redis.call('SCARD', admitted) < a.segcap then
        redis.call('SADD', admitted, value)
        redis.call('EXPIRE', admitted, a.ttl)
      else
        value = '__other__'
      end
    end
    local prefix, f = 'k\31' .. g[2] .. '\31' .. value .. '\31', g[4]
    for i = 1, #f, 2 do
      if string.find(f[i + 1], '[.eEn]') then
        redis.call('HINCRBYFLOAT', g[1], prefix .. f[i], f[i + 1])
      else
        redis.call('HINCRBY', g[1], prefix .. f[i], f[i + 1])
      end
    end
  end
end
for _, key in ipairs(a.unopened) do  -- parts no label may ever open
  if not gone[key] then redis.call('EXPIRE', key, a.ttl) end
end
for i = 1, #a.wm, 2 do redis.call('HSET', wm, a.wm[i], a.wm[i + 1]) end
for i = 1, #a.ck, 2 do redis.call('HSET', base .. ':ck', a.ck[i], a.ck[i + 1]) end
rpush(base .. ':o', a.outbox)
if a.sweep ~= '' then redis.call('DEL', base .. ':' .. a.sweep) end
while N > a.fill * (2 ^ L + S) do  -- linear hashing: split bucket S
  local src, dst = base .. ':e:' .. S, base .. ':e:' .. (S + 2 ^ L)
  local all = redis.call('HGETALL', src)
  for i = 1, #all, 2 do
    if h32(all[i]) % (2 ^ (L + 1)) ~= S then
      redis.call('HSET', dst, all[i], all[i + 1])
      redis.call('HDEL', src, all[i])
    end
  end
  touched[dst] = true
  S = S + 1
  if S == 2 ^ L then L, S = L + 1, 0 end
end
for key in pairs(touched) do redis.call('EXPIRE', key, a.ttl) end  -- the safety TTL, from the last write
redis.call('HSET', meta, 'L', L, 's', S, 'n', N, 'v', (tonumber(lm[4]) or 0) + 1, 'layout', a.layout,
  'pi', (tonumber(lm[5]) or 0) + a.pending[1], 'pl', (tonumber(lm[6]) or 0) + a.pending[2])
-- Data quality: each window's feature rows, appended in offset order (see core.dataquality.window);
-- a list that holds a whole fold of rows is named in the reply, for the store to fold.
local folds = {}
for _, q in ipairs(a.q) do  -- {window, its part, {row, ...}, its model's counters, model version, end}
  if gone[q[2]] or tonumber(q[6]) <= through(base, 'cl', q[5]) then
    redis.call('HINCRBY', q[4], 'late_features', #q[3])  -- the window is sealed: counted, not lost
  else
    local key = base .. ':q:' .. q[1]
    rpush(key, q[3])
    redis.call('EXPIRE', key, a.ttl)
    if redis.call('LLEN', key) >= a.fold then folds[#folds + 1] = q[1] end
  end
end
local due = {}
for _, l in ipairs(a.rolling) do  -- {model version, {sample, ...}}: this partition's part of its rolling window
  local list, counts = base .. ':r:' .. l[1], base .. ':rn'
  rpush(list, l[2])
  redis.call('LTRIM', list, -a.rolling_size, -1)
  redis.call('EXPIRE', list, a.ttl)
  local total = redis.call('HINCRBY', counts, l[1], #l[2])
  redis.call('EXPIRE', counts, a.ttl)
  if math.floor(total / a.rolling_every) > math.floor((total - #l[2]) / a.rolling_every) then
    due[#due + 1] = {l[1], total}
  end
end
return {1, due, late, folds}
