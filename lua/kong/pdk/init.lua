-- Builds the `kong` global the PDK offers plugins (Kong's kong/pdk/init.lua):
-- kong.version, version_num, configuration, request, response, service
-- (+ .request, .response), client, ctx, log, ip, node, table, router, nginx,
-- plugin, cache. Created in the master before plugins load (plugins capture
-- `local kong = kong` at load time), used in every worker.

local meta = require "kong.meta"


local _M = {}


local LIST_PROPS = {
  plugins = true, trusted_ips = true, headers = true, headers_upstream = true,
  untrusted_lua_sandbox_requires = true,
  untrusted_lua_sandbox_environment = true, proxy_listen = true,
  admin_listen = true, status_listen = true, dns_order = true,
  lua_ssl_trusted_certificate = true, lua_ssl_protocols = true,
  ssl_protocols = true,
}
local SENSITIVE = {
  pg_password = true, pg_ro_password = true, cassandra_password = true,
  admin_gui_session_conf = true, ssl_cert_key = true, admin_ssl_cert_key = true,
}


-- Properties whose "on"/"off" values are strings in Kong (enums and paths).
local STRING_PROPS = {
  database = true, untrusted_lua = true, role = true, embedded_db = true,
  pg_host = true, pg_user = true, pg_password = true, pg_database = true,
  pg_schema = true, prefix = true,
  proxy_access_log = true, proxy_error_log = true, admin_access_log = true,
  admin_error_log = true, status_access_log = true, status_error_log = true,
}


local function convert(name, value)
  if STRING_PROPS[name] then
    return value
  end
  if LIST_PROPS[name] then
    local out = {}
    for item in value:gmatch("[^,]+") do
      item = item:match("^%s*(.-)%s*$")
      if item ~= "" then
        out[#out + 1] = item
      end
    end
    return out
  end
  local l = value:lower()
  if l == "on" or l == "true" then
    return true
  elseif l == "off" or l == "false" then
    return false
  end
  if value:match("^%-?%d+$") then
    return tonumber(value)
  end
  return value
end


--- A read-only view of kong.conf, lists as arrays, on/off as booleans.
local function configuration(props)
  local t = {}
  for k, v in pairs(props or {}) do
    t[k] = convert(k, v)
  end
  local view = setmetatable({}, {
    __index = t,
    __newindex = function()
      error("cannot write to Kong configuration", 2)
    end,
    __pairs = function()
      return next, t, nil
    end,
  })
  rawset(view, "remove_sensitive", nil)
  return view, t
end


function _M.new(props)
  local version = meta.version
  local major, minor, patch = version:match("^(%d+)%.(%d+)%.(%d+)")
  local kong = {
    version = version,
    version_num = tonumber(string.format("%d%.2d%.2d", major * 100,
                                         minor * 10, patch)),
  }
  local conf, raw = configuration(props)
  kong.configuration = conf
  -- the sandbox shows this instead: secrets masked
  kong.configuration_sanitized = setmetatable({}, {
    __index = function(_, k)
      if SENSITIVE[k] and raw[k] ~= nil then
        return "******"
      end
      return raw[k]
    end,
  })
  local misc = require "kong.pdk.misc"
  kong.request = require "kong.pdk.request"
  kong.response = require "kong.pdk.response"
  kong.service = require "kong.pdk.service"
  kong.client = misc.client
  kong.ctx = misc.ctx
  kong.log = misc.log
  kong.ip = misc.ip
  kong.node = misc.node
  kong.table = misc.table
  kong.router = misc.router
  kong.nginx = misc.nginx
  kong.plugin = misc.plugin
  kong.cache = require("sluice.cache").new()
  kong.core_cache = kong.cache
  kong.default_workspace = "00000000-0000-0000-0000-000000000000"
  return kong
end


--- Per-worker set-up (the caches are per worker).
function _M.init_worker()
end


return _M
