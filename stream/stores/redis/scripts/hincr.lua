local function hincr(hashes)
  for _, h in ipairs(hashes) do
    local f = h[2]
    for i = 1, #f, 2 do
      if string.find(f[i + 1], '[.eEn]') then
        redis.call('HINCRBYFLOAT', h[1], f[i], f[i + 1])
      else
        redis.call('HINCRBY', h[1], f[i], f[i + 1])
      end
    end
  end
end
