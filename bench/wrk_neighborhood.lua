-- wrk script: each request asks for the neighborhood of a random entity from bench/ids.txt
local ids = {}
init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
end
request = function()
  return wrk.format("GET", "/v1/entities/" .. ids[math.random(#ids)] .. "/neighborhood")
end
