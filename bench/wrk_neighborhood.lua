-- wrk script: each request asks for the neighborhood of a random entity from the ids file (args[1]).
-- With WRK_RATE set (views/s for each wrk thread), requests leave on a fixed schedule instead of as fast as
-- answers come back: the latency at a given load, not only that of a saturated closed loop. A slot missed
-- because every connection was busy is dropped, so the achieved rate shows when the load was too high.
local ids = {}

init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
end

request = function()
  return wrk.format("GET", "/v1/entities/" .. ids[math.random(#ids)] .. "/neighborhood")
end

local rate = tonumber(os.getenv("WRK_RATE") or "")
if rate then
  local ffi = require("ffi")
  ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } wrk_timespec;
    int clock_gettime(int clock, wrk_timespec *ts);
  ]]
  local ts = ffi.new("wrk_timespec")
  local interval = 1000 / rate -- ms between two requests of this thread
  local next_at = nil

  delay = function()
    ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
    local now = tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
    local slot = math.max(next_at or now, now)
    next_at = slot + interval
    return slot - now
  end
end
