local function store_detectors(cd, g, marker, ttl)
  if #g.detectors > 0 then
    for j = 1, #g.detectors, 2 do redis.call('HSET', cd, g.detectors[j], g.detectors[j + 1]) end
    redis.call('HSET', cd, marker, g.fed_to)
    redis.call('EXPIRE', cd, ttl)
  end
end
