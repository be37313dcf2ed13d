-- Zipf workload: replays a pre-generated request sequence (indices into a URL list).
-- wrk ... -s zipf.lua URL -- TEMPLATE URLS_FILE SEQ_FILE NTHREADS
-- TEMPLATE has {KEY} and {W}; URLS_FILE has lines "key width"; SEQ_FILE has one 1-based
-- URL index per line.  Thread k starts at offset k/NTHREADS of the sequence and wraps.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local paths, seq, pos = {}, {}, 1
function init(args)
  local tpl, ufile, sfile, nthreads = args[1], args[2], args[3], tonumber(args[4] or "1")
  for line in io.lines(ufile) do
    local key, w = line:match("^(%S+)%s+(%d+)")
    if key then
      local p = tpl:gsub("{KEY}", function() return key end):gsub("{W}", w)
      paths[#paths + 1] = p
    end
  end
  for line in io.lines(sfile) do
    local n = tonumber(line)
    if n then seq[#seq + 1] = n end
  end
  pos = math.floor(((tid or 1) - 1) * #seq / nthreads) + 1
end

function request()
  local p = paths[seq[pos]]
  pos = pos + 1
  if pos > #seq then pos = 1 end
  return wrk.format("GET", p)
end

done = dofile((os.getenv("PEERS_WRK_DIR") or ".") .. "/done.lua")
