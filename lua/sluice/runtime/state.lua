-- Per-worker runtime state shared by the runloop, the PDK and the ngx shim:
-- the configuration, the request being run (its ngx.ctx, route, service) and
-- the plugin whose handler is running (for kong.log and kong.ctx.plugin).

local ffi = require "ffi"
local C = require "sluice.ffi.cdefs"


local _M = {
  plugin_name = nil,     -- running plugin's name (kong.log namespace)
  plugin_handler = nil,  -- running plugin's handler table (kong.ctx.plugin key)
  plugin_id = nil,
}

local cfg = { services = {}, routes = {}, plugins = {}, consumers = {} }
local services_by_id = {}
-- generation -> configuration, for requests routed before a swap; an entry
-- goes when C drops the generation (its registry reference keeps it alive)
local generations = setmetatable({}, { __mode = "v" })
local by_id_of = setmetatable({}, { __mode = "k" })   -- cfg -> services by id
local ctxs = {}          -- request serial -> ngx.ctx table
local node_id


function _M.set_config(c, generation)
  cfg = c
  services_by_id = {}
  for _, s in ipairs(c.services or {}) do
    services_by_id[s.id] = s
  end
  by_id_of[c] = services_by_id
  if generation then
    generations[generation] = c
  end
end


-- the configuration the current request was routed with
local function request_config()
  local g = tonumber(C.sl_ffi_req_generation())
  return generations[g] or cfg
end


function _M.config()
  return cfg
end


function _M.serial()
  if C.sl_ffi_req_in_request() == 0 then
    return nil
  end
  return C.sl_ffi_req_serial()
end


--- The current request's ngx.ctx (created on first use), nil outside one.
function _M.ngx_ctx()
  local s = _M.serial()
  if not s then
    return nil
  end
  local ctx = ctxs[s]
  if not ctx then
    ctx = {}
    ctxs[s] = ctx
  end
  return ctx
end


function _M.drop(serial)
  ctxs[serial] = nil
end


--- The ngx.ctx of a request by its serial (nil if it never made one).
function _M.ctx_of(serial)
  return ctxs[serial]
end


function _M.route()
  local i = C.sl_ffi_req_route_index()
  if i < 0 then
    return nil
  end
  return request_config().routes[i + 1]
end


function _M.service()
  local c = request_config()
  local i = C.sl_ffi_req_route_index()
  local r = i >= 0 and c.routes[i + 1]
  if not r or not r.service then
    return nil
  end
  return (by_id_of[c] or services_by_id)[r.service.id]
end


function _M.is_trusted(address)
  if type(address) ~= "string" then
    error("address must be a string", 3)
  end
  return C.sl_ffi_ip_is_trusted(address, #address) ~= 0
end


function _M.node_id()
  if not node_id then
    local conf = kong and kong.configuration
    node_id = conf and conf.node_id ~= "" and conf.node_id
              or require("sluice.uuid").generate_v4()
  end
  return node_id
end


--- kong.log.serialize(): what loggers send (a subset of Kong's fields).
function _M.serialize()
  local req = kong.request
  local resp = kong.response
  local headers = req.get_headers()
  local h = {}
  for k, v in pairs(headers) do
    if k == "authorization" or k == "proxy-authorization" then
      v = "REDACTED"
    end
    h[k] = v
  end
  local started = req.get_start_time()
  local ctx = _M.ngx_ctx() or {}
  local out = {
    request = {
      id = require("kong.pdk.request").str(C.sl_ffi_req_id),
      uri = req.get_path_with_query(),
      url = req.get_scheme() .. "://" .. req.get_host() .. ":"
            .. req.get_port() .. req.get_path_with_query(),
      querystring = req.get_query(),
      method = req.get_method(),
      headers = h,
    },
    response = {
      status = resp.get_status(),
      headers = resp.get_headers(),
    },
    route = _M.route(),
    service = _M.service(),
    consumer = ctx.authenticated_consumer,
    client_ip = kong.client.get_forwarded_ip(),
    started_at = started,
    latencies = {
      request = math.floor(C.sl_ffi_now() * 1000) - started,
    },
    source = resp.get_source() == "service" and "upstream" or "kong",
  }
  for _, e in ipairs(ctx.__serialize or {}) do
    local t = out
    local path = {}
    for part in e.key:gmatch("[^%.]+") do
      path[#path + 1] = part
    end
    for i = 1, #path - 1 do
      t[path[i]] = t[path[i]] or {}
      t = t[path[i]]
    end
    local last = path[#path]
    if e.mode == "add" then
      if t[last] == nil then
        t[last] = e.value
      end
    elseif e.mode == "replace" then
      if t[last] ~= nil then
        t[last] = e.value
      end
    else
      t[last] = e.value
    end
  end
  return out
end


local _ = ffi
return _M
