"""The Redis store's Lua scripts. Each runs on the keys of one input partition, all of which share a
hash tag (one cluster slot): `KEYS[1]` is the partition's meta hash, which routes the call, and
`ARGV[1]` the partition's key base (`<prefix>:{<prefix>:<partition>}`) the script builds the
other names from. Rolling windows (one list per model version, written by every partition) are
the one exception; they are refused in cluster mode.

Join entries live in hashes ("buckets") of about FILL entries, small enough for Redis's compact
listpack encoding, found by linear hashing on the first four bytes of the entry's 12-byte id
digest: with `L` and `s` in the meta hash, bucket `h mod 2^L`, or `h mod 2^(L+1)` when that is
below `s`. When the partition holds more than FILL entries a bucket, bucket `s` splits in two.
"""

from __future__ import annotations

FILL = 40  # average entries per bucket before one splits (at most twice that in unsplit buckets)
DIGEST = 12  # bytes of an event id's digest

# RPUSH of any number of items, in pages (unpack() is bounded by Lua's stack).
RPUSH = """
local function rpush(key, items)
  for j = 1, #items, 1000 do redis.call('RPUSH', key, unpack(items, j, math.min(j + 999, #items))) end
end
"""

# Names and functions every entry script starts with.
BUCKETS = (
    """
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
"""
    + RPUSH
)

# ARGV[2]: the digests, concatenated; ARGV[3]: model references the caller knows; ARGV[4..]: input
# topics. Returns the entries (a long one is in a key of its own: 'P' points there), the model
# references from the known count on, the topics' applied offsets, the watermark hash, the version
# and the count of model references.
READ = (
    BUCKETS
    + """
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
"""
)

# Lua adding a list [[key, [field, increment, ...]], ...] (the expression put in for %s) to hashes;
# an increment with a point or exponent (a regression sum) is a float.
HINCR = """
for _, h in ipairs(%s) do
  local f = h[2]
  for i = 1, #f, 2 do
    if string.find(f[i + 1], '[.eEn]') then
      redis.call('HINCRBYFLOAT', h[1], f[i], f[i + 1])
    else
      redis.call('HINCRBY', h[1], f[i], f[i + 1])
    end
  end
end
"""

# ARGV[2]: JSON of a batch's writes (see RedisStore._write); ARGV[3]: digests to delete; ARGV[4]:
# entries to set, each digest, 4-byte length, value; ARGV[5]: digests whose long value to delete.
# First the guard: when the partition's version or idle floor is not what the batch read, another
# writer came between, and the script writes nothing and returns 0 (a sweep whose work list is
# gone was done by another worker: 2). Otherwise it applies everything and returns
# {1, rolling windows that came due: {{field, total}, ...}} (their samples are read once per batch).
APPLY = (
    BUCKETS
    + """
local a = cjson.decode(ARGV[2])
local wm = base .. ':wm'
if a.sweep ~= '' and redis.call('EXISTS', base .. ':' .. a.sweep) == 0 then return 2 end
if (lm[4] or '') ~= a.version or (redis.call('HGET', wm, 'f') or '') ~= a.floor then return 0 end
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
"""
    + HINCR % "a.hincr"
    + """
for i = 1, #a.open, 2 do redis.call('ZADD', base .. ':open', a.open[i], a.open[i + 1]) end
for i = 1, #a.pv, 2 do redis.call('ZADD', base .. ':pv', a.pv[i], a.pv[i + 1]) end
for _, g in ipairs(a.seg) do  -- {window part, segment key, value, {field, increment, ...}}
  local admitted, value = g[1] .. ':g:' .. g[2], g[3]
  if redis.call('SISMEMBER', admitted, value) == 0 then
    if redis.call('SCARD', admitted) < a.segcap then
      redis.call('SADD', admitted, value)
      redis.call('EXPIRE', admitted, a.ttl)
    else
      value = '__other__'
    end
  end
  local prefix, f = 'k\\31' .. g[2] .. '\\31' .. value .. '\\31', g[4]
  for i = 1, #f, 2 do
    if string.find(f[i + 1], '[.eEn]') then
      redis.call('HINCRBYFLOAT', g[1], prefix .. f[i], f[i + 1])
    else
      redis.call('HINCRBY', g[1], prefix .. f[i], f[i + 1])
    end
  end
end
for _, key in ipairs(a.unopened) do redis.call('EXPIRE', key, a.ttl) end  -- parts no label may ever open
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
local due = {}
for _, l in ipairs(a.rolling) do  -- {list, field in the counts hash, {sample, ...}}
  rpush(l[1], l[3])
  redis.call('LTRIM', l[1], -a.rolling_size, -1)
  local total = redis.call('HINCRBY', a.rolling_counts, l[2], #l[3])
  if math.floor(total / a.rolling_every) > math.floor((total - #l[3]) / a.rolling_every) then
    due[#due + 1] = {l[2], total}
  end
end
return {1, due}
"""
)

# Fill the partition's work list ARGV[2] ('xw': expiring, 'xv': evicting) from its expiry index,
# unless a crash left one: ARGV[3] 'due' takes the slots ending by ARGV[4], 'over' the entries
# beyond the ARGV[4] that expire last; ARGV[5] entries at most. Returns the work list.
CANDIDATES = (
    BUCKETS
    + """
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
"""
)

# Seal windows ARGV[2] (JSON {windows, models, ends}) in this partition, oldest first: its part of
# each becomes the sealed hash s:<window> (field '#' marks it), and the counters of the window's
# model and the unattributed ones move into the first window of this call to take them ('#'
# before each name). A window already sealed is left as it is; one this partition saw closed gives
# false. Returns each window's sealed hash.
SEAL = """
local base, a = ARGV[1], cjson.decode(ARGV[2])
local closed, out, changed = base .. ':closed', {}, false
for i, w in ipairs(a.windows) do
  local sealed = base .. ':s:' .. w
  if redis.call('ZSCORE', closed, w) then
    out[i] = false
  else
    if redis.call('EXISTS', sealed) == 0 then
      local part = base .. ':w:' .. w
      if redis.call('EXISTS', part) == 1 then redis.call('RENAME', part, sealed) end
      redis.call('HSET', sealed, '#', '1')
      for _, m in ipairs({a.models[i], ''}) do  -- a later window of the model finds them gone
        local c = redis.call('HGETALL', base .. ':c:' .. m)
        for j = 1, #c, 2 do redis.call('HINCRBY', sealed, '#' .. c[j], c[j + 1]) end
        redis.call('DEL', base .. ':c:' .. m)
      end
      redis.call('ZREM', base .. ':open', w)
      redis.call('ZADD', base .. ':sealed', a.ends[i], w)
      changed = true
    end
    out[i] = redis.call('HGETALL', sealed)
  end
end
if changed then redis.call('INCR', base .. ':cv') end  -- counters moved: a count read before is stale
return out
"""

# Store a claim group's change detectors and the end of the last window they were fed (`marker`).
STORE_DETECTORS = """
local function store_detectors(cd, g, marker, ttl)
  if #g.detectors > 0 then
    for j = 1, #g.detectors, 2 do redis.call('HSET', cd, g.detectors[j], g.detectors[j + 1]) end
    redis.call('HSET', cd, marker, g.fed_to)
    redis.call('EXPIRE', cd, ttl)
  end
end
"""

# Claim windows for publication in their owner partition (their model version's): ARGV[2] is JSON
# {groups: [{model, expect, windows, ends, rows, detectors, fed_to}], ttl}. A group whose change
# detectors (hash cd:<model>) moved since they were read (field '#end' other than `expect`) is a
# conflict: nothing of it is done. Otherwise the outputs of each window not closed yet are queued,
# the window marked closed, and the detectors stored. Returns {claimed windows, conflicting models}.
CLAIM = (
    RPUSH
    + STORE_DETECTORS
    + """
local base, a = ARGV[1], cjson.decode(ARGV[2])
local closed, claimed, conflicts = base .. ':closed', 0, {}
for _, g in ipairs(a.groups) do
  local cd = base .. ':cd:' .. g.model
  if (redis.call('HGET', cd, '#end') or '') ~= g.expect then
    conflicts[#conflicts + 1] = g.model
  else
    for i, w in ipairs(g.windows) do
      if not redis.call('ZSCORE', closed, w) then
        redis.call('ZADD', closed, g.ends[i], w)
        rpush(base .. ':o', g.rows[i])
        claimed = claimed + 1
      end
    end
    store_detectors(cd, g, '#end', a.ttl)
  end
end
return {claimed, conflicts}
"""
)

# Claim windows for their provisional record in their owner partition (their model version's):
# ARGV[2] is JSON {groups: [{model, expect, windows, rows, detectors, fed_to}], ttl}. A group whose
# change detectors moved since they were read (field '#pend' other than `expect`) is a conflict;
# otherwise the outputs of each window neither closed nor published provisionally yet are queued (a
# `pd:` marker says it was, for the safety TTL) and the detectors stored. Returns {records queued,
# conflicting models}.
PROVISIONAL = (
    RPUSH
    + STORE_DETECTORS
    + """
local base, a = ARGV[1], cjson.decode(ARGV[2])
local queued, conflicts = 0, {}
for _, g in ipairs(a.groups) do
  local cd = base .. ':cd:' .. g.model
  if (redis.call('HGET', cd, '#pend') or '') ~= g.expect then
    conflicts[#conflicts + 1] = g.model
  else
    for i, w in ipairs(g.windows) do
      if not redis.call('ZSCORE', base .. ':closed', w)
        and redis.call('SET', base .. ':pd:' .. w, '1', 'NX', 'EX', a.ttl) then
        rpush(base .. ':o', g.rows[i])
        queued = queued + #g.rows[i]
      end
    end
    store_detectors(cd, g, '#pend', a.ttl)
  end
end
return {queued, conflicts}
"""
)

# The hashes named in ARGV[2] (JSON: names after the partition's base), each as HGETALL gives it
# (one reply for many small hashes: redis-py spends far more on a command than Redis does on it).
HASHES = """
local base, out = ARGV[1], {}
for i, name in ipairs(cjson.decode(ARGV[2])) do out[i] = redis.call('HGETALL', base .. ':' .. name) end
return out
"""

# Take windows ARGV[2] (JSON) off this partition's list of windows waiting for a provisional record.
UNLIST_PROVISIONAL = """
local base, windows = ARGV[1], cjson.decode(ARGV[2])
for _, w in ipairs(windows) do redis.call('ZREM', base .. ':pv', w) end
return 1
"""

# Drop this partition's sealed parts of windows ARGV[2] (JSON {windows, ends, forget}) and remember
# them as closed, forgetting windows closed before `forget`.
CLEANUP = """
local base, a = ARGV[1], cjson.decode(ARGV[2])
for i, w in ipairs(a.windows) do
  redis.call('DEL', base .. ':s:' .. w)
  redis.call('ZREM', base .. ':sealed', w)
  redis.call('ZREM', base .. ':pv', w)
  redis.call('DEL', base .. ':pd:' .. w)
  redis.call('ZADD', base .. ':closed', a.ends[i], w)
end
redis.call('ZREMRANGEBYSCORE', base .. ':closed', '-inf', '(' .. a.forget)
return 1
"""

# The counters of models ARGV[2] (JSON) that no window open in this partition carries (the
# unattributed ones only when none is open), and the counters' version.
COUNTS = """
local base, models = ARGV[1], cjson.decode(ARGV[2])
local open, carried, out = redis.call('ZRANGE', base .. ':open', 0, -1), {}, {}
for _, w in ipairs(open) do carried[string.match(w, '^[^\\31]*')] = true end
for i, m in ipairs(models) do
  if (m == '' and #open > 0) or (m ~= '' and carried[m]) then
    out[i] = {}
  else
    out[i] = redis.call('HGETALL', base .. ':c:' .. m)
  end
end
return {redis.call('GET', base .. ':cv') or '', out}
"""

# Take counts ARGV[2] (JSON {version, take: [[model, [field, -n, ...]], ...], rows}) if the counters'
# version is still the one read: subtract them, queue the rows. Returns 1, or 0 when it moved.
TAKE = (
    RPUSH
    + """
local base, a = ARGV[1], cjson.decode(ARGV[2])
if (redis.call('GET', base .. ':cv') or '') ~= a.version then return 0 end
redis.call('INCR', base .. ':cv')
local take = {}
for _, t in ipairs(a.take) do take[#take + 1] = {base .. ':c:' .. t[1], t[2]} end
"""
    + HINCR % "take"
    + """
for _, t in ipairs(take) do
  local c = redis.call('HGETALL', t[1])
  for j = 1, #c, 2 do if tonumber(c[j + 1]) == 0 then redis.call('HDEL', t[1], c[j]) end end
end
rpush(base .. ':o', a.rows)
return 1
"""
)

# KEYS[1]: an outbox; ARGV[1]: JSON [row, ...] published. Trims them only if they still head it.
CONFIRM = """
local rows = cjson.decode(ARGV[1])
local head = redis.call('LRANGE', KEYS[1], 0, #rows - 1)
for i = 1, #rows do if head[i] ~= rows[i] then return 0 end end
redis.call('LTRIM', KEYS[1], #rows, -1)
return #rows
"""

# KEYS[1]: a partition's watermark hash; raise its idle floor to ARGV[1] (never lower it).
RAISE_FLOOR = """
local v = tonumber(redis.call('HGET', KEYS[1], 'f') or '-inf')
if tonumber(ARGV[1]) > v then redis.call('HSET', KEYS[1], 'f', ARGV[1]) end
return 1
"""
