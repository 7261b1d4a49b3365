-- KEYS[1]: an outbox; ARGV[1]: JSON [row, ...] published. Trims them only if they still head it.
local rows = cjson.decode(ARGV[1])
local head = redis.call('LRANGE', KEYS[1], 0, #rows - 1)
for i = 1, #rows do if head[i] ~= rows[i] then return 0 end end
redis.call('LTRIM', KEYS[1], #rows, -1)
return #rows
