-- wrk script: each request asks for the neighborhood of an entity drawn from the ids file (args[1]): drawn
-- uniformly from its lines, so a file holding a Zipfian sample gives a Zipfian mix (bench/core.py writes it).
-- With WRK_WRITES set (a share, 0.05 for YCSB's workload B), that share of the requests instead rewrites the
-- entity drawn (same name, a new description and text: POST /v1/entities), which changes its view and the
-- views of its neighbours.
-- With WRK_RATE set (views/s for each wrk thread), requests leave on a fixed schedule instead of as fast as
-- answers come back: the latency at a given load, not only that of a saturated closed loop. A slot missed
-- because every connection was busy is dropped, so the achieved rate shows when the load was too high.
local ids = {}
local writes = tonumber(os.getenv("WRK_WRITES") or "") or 0
local written = 0

init = function(args)
  for line in io.lines(args[1]) do ids[#ids + 1] = line end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

request = function()
  local id = ids[math.random(#ids)]
  if writes > 0 and math.random() < writes then
    written = written + 1
    local headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    headers["Content-Type"] = "application/json"
    local n = id:match("e(%d+)$") or "0"
    local body = string.format(
      '{"id":"%s","name":"Entity %s","text":"Text of entity %s","description":"rewritten %d"}', id, n, n, written)
    return wrk.format("POST", "/v1/entities", headers, body)
  end
  return wrk.format("GET", "/v1/entities/" .. id .. "/neighborhood")
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
