local function rpush(key, items)
  for j = 1, #items, 1000 do redis.call('RPUSH', key, unpack(items, j, math.min(j + 999, #items))) end
end
