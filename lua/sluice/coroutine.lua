-- The coroutine API plugin code sees. As in OpenResty, a coroutine that user
-- code creates may call ngx.sleep, read the request body or use cosockets:
-- such a wait yields the value sluice.core.WAIT, and resume()/wrap() pass it
-- up to the coroutine the runtime drives (and the answer back down) instead
-- of returning it to the user. install() replaces the global coroutine
-- functions; the runtime keeps using the raw ones (_M.raw).

local core = require "sluice.core"

local WAIT = core.WAIT
local select = select
local unpack = unpack
local error = error

local raw = {
  create = coroutine.create,
  resume = coroutine.resume,
  yield = coroutine.yield,
  status = coroutine.status,
  running = coroutine.running,
  wrap = coroutine.wrap,
}


local _M = { raw = raw, WAIT = WAIT }


local function pack(...)
  return { n = select("#", ...), ... }
end


local raw_resume, raw_yield, raw_status = raw.resume, raw.yield, raw.status


--- coroutine.resume that passes event-loop waits of `co` up.
function _M.resume(co, ...)
  local res = pack(raw_resume(co, ...))
  while res[1] and res.n == 2 and res[2] == WAIT and raw_status(co) == "suspended" do
    local back = pack(raw_yield(WAIT))
    res = pack(raw_resume(co, unpack(back, 1, back.n)))
  end
  return unpack(res, 1, res.n)
end


local resume = _M.resume


function _M.wrap(f)
  local co = raw.create(f)
  return function(...)
    local res = pack(resume(co, ...))
    if not res[1] then
      error(res[2], 0)
    end
    return unpack(res, 2, res.n)
  end
end


function _M.install()
  coroutine.resume = _M.resume
  coroutine.wrap = _M.wrap
end


return _M
