-- Cold workload: every request asks for a random width in [WMIN, WMAX], so no cache
-- or coalescing helps.  wrk ... -s cold.lua URL -- TEMPLATE [WMIN] [WMAX]
-- TEMPLATE is the request path with {W} where the width goes.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local tpl, wmin, wmax
function init(args)
  tpl = args[1]
  wmin = tonumber(args[2] or "250")
  wmax = tonumber(args[3] or "349")
  math.randomseed(os.time() * 1000 + (tid or 0) * 7919)
end

function request()
  local w = tostring(math.random(wmin, wmax))
  local path = tpl:gsub("{W}", w)
  return wrk.format("GET", path)
end

done = dofile((os.getenv("PEERS_WRK_DIR") or ".") .. "/done.lua")
