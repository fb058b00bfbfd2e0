-- Bootstraps a Sluice VM (master, before the configuration loads; workers
-- inherit it): module lookup for kong.plugins.<name>.* in the bundled
-- plugins/ tree, the `ngx` and `kong` globals that plugins capture when they
-- load.

local core = require "sluice.core"


local _M = {}


-- kong.plugins.<name>.<mod> -> <root>/plugins/<name>/<mod>.lua (after the
-- regular path search, so a luarocks-installed plugin of the same name wins)
local function plugin_loader(modname)
  local rest = modname:match("^kong%.plugins%.(.+)$")
  if not rest then
    return nil
  end
  local name, mod = rest:match("^([^%.]+)%.(.+)$")
  if not name then
    return nil
  end
  local path = core.root .. "/plugins/" .. name .. "/" .. mod:gsub("%.", "/")
               .. ".lua"
  local f = io.open(path, "r")
  if not f then
    return "\n\tno file '" .. path .. "'"
  end
  f:close()
  local chunk, err = loadfile(path)
  if not chunk then
    error(err, 2)
  end
  return chunk
end


function _M.bootstrap(props)
  -- user coroutines may wait on the event loop (ngx.sleep, cosockets)
  require("sluice.coroutine").install()
  local loaders = package.loaders
  loaders[#loaders + 1] = plugin_loader
  _G.ngx = require "sluice.ngx"
  -- lua-resty-core's module names for the same functions
  local re = require "sluice.ngx.re"
  local crypto = require "sluice.ngx.crypto"
  package.loaded["ngx.re"] = { split = re.split, opt = function() end }
  package.loaded["ngx.base64"] = {
    encode_base64url = crypto.encode_base64url,
    decode_base64url = crypto.decode_base64url,
  }
  _G.kong = require("kong.pdk").new(props)
  -- one node id for every worker (they inherit it)
  require("sluice.runtime.state").node_id()
  return true
end


return _M
