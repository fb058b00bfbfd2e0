-- The smaller kong.* PDK modules: client, ctx, log, ip, node, table, router,
-- nginx, plugin. Each is documented with the phases it may be called in.

local ffi = require "ffi"
local C = require "sluice.ffi.cdefs"
local phases = require "kong.pdk.private.phases"
local state = require "sluice.runtime.state"


local type = type
local error = error
local select = select
local tostring = tostring
local concat = table.concat
local check = phases.check
local check_not = phases.check_not
local PHASES = phases.phases
local ffi_string = ffi.string

local pp = ffi.new("const char *[1]")
local pn = ffi.new("size_t[1]")

local function str(fn)
  if fn(pp, pn) ~= 0 then
    return nil
  end
  return ffi_string(pp[0], pn[0])
end


local AUTH_READ = phases.new(PHASES.access, PHASES.header_filter,
                             PHASES.response, PHASES.body_filter, PHASES.log)
local INIT = PHASES.init_worker
local ROUTER = AUTH_READ


local _M = {}


--- kong.client ---------------------------------------------------------------
local client = {}
_M.client = client

--- The address of the connecting peer.
-- @phases certificate, rewrite, access, header_filter, response, body_filter, log
function client.get_ip()
  check_not(INIT)
  return str(C.sl_ffi_req_peer_ip)
end

--- The client address after trusted_ips / real_ip_header.
-- @phases certificate, rewrite, access, header_filter, response, body_filter, log
function client.get_forwarded_ip()
  check_not(INIT)
  return str(C.sl_ffi_req_client_ip)
end

--- The port of the connecting peer.
-- @phases certificate, rewrite, access, header_filter, response, body_filter, log
function client.get_port()
  check_not(INIT)
  return C.sl_ffi_req_peer_port()
end

--- The client port (the peer's: Sluice does not take ports from headers).
-- @phases certificate, rewrite, access, header_filter, response, body_filter, log
function client.get_forwarded_port()
  check_not(INIT)
  return C.sl_ffi_req_peer_port()
end

--- The consumer an auth plugin authenticated, or nil.
-- @phases access, header_filter, response, body_filter, log
function client.get_consumer()
  check(AUTH_READ)
  local ctx = state.ngx_ctx()
  return ctx and ctx.authenticated_consumer
end

--- The credential an auth plugin authenticated, or nil.
-- @phases access, header_filter, response, body_filter, log
function client.get_credential()
  check(AUTH_READ)
  local ctx = state.ngx_ctx()
  return ctx and ctx.authenticated_credential
end

--- Sets the authenticated consumer and/or credential (at least one).
-- @phases access
function client.authenticate(consumer, credential)
  check(phases.new(PHASES.access))
  if consumer ~= nil and type(consumer) ~= "table" then
    error("consumer must be a table or nil", 2)
  end
  if credential ~= nil and type(credential) ~= "table" then
    error("credential must be a table or nil", 2)
  end
  if consumer == nil and credential == nil then
    error("either credential or consumer must be provided", 2)
  end
  local ctx = state.ngx_ctx()
  ctx.authenticated_consumer = consumer
  ctx.authenticated_credential = credential
end

--- Finds a consumer of the configuration by id (or by username when asked).
-- @phases access, header_filter, response, body_filter, log
function client.load_consumer(consumer_id, search_by_username)
  check(AUTH_READ)
  if type(consumer_id) ~= "string" then
    error("consumer_id must be a string", 2)
  end
  for _, c in ipairs(state.config().consumers or {}) do
    if c.id == consumer_id
       or (search_by_username and c.username == consumer_id) then
      return c
    end
  end
  return nil
end

--- The protocol of the request: "http" or "https".
-- @phases access, header_filter, response, body_filter, log
function client.get_protocol()
  check(AUTH_READ)
  return C.sl_ffi_req_scheme_is_https() ~= 0 and "https" or "http"
end


--- kong.ctx -------------------------------------------------------------------
-- kong.ctx.shared: one table per request for all plugins; kong.ctx.plugin:
-- one per plugin type per request. Both nil outside a request.
_M.ctx = setmetatable({}, {
  __index = function(_, k)
    local ctx = state.ngx_ctx()
    if not ctx then
      return nil
    end
    if k == "shared" then
      local t = ctx.__kong_shared
      if not t then
        t = {}
        ctx.__kong_shared = t
      end
      return t
    elseif k == "plugin" then
      local key = state.plugin_handler or "__none"
      local all = ctx.__kong_plugin
      if not all then
        all = {}
        ctx.__kong_plugin = all
      end
      local t = all[key]
      if not t then
        t = {}
        all[key] = t
      end
      return t
    end
  end,
})


--- kong.log -------------------------------------------------------------------
local LEVELS = { "debug", "info", "notice", "warn", "err", "crit", "alert",
                 "emerg" }
local NGX_LEVEL = { debug = 8, info = 7, notice = 6, warn = 5, err = 4,
                    crit = 3, alert = 2, emerg = 1 }

local function write_log(level, namespace, ...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    parts[i] = tostring((select(i, ...)))
  end
  local info = debug.getinfo(3, "Sl")
  -- Kong prints the file's base name
  local src = info and info.short_src or "?"
  src = src:match("[^/]+$") or src
  local where = info and (src .. ":" .. (info.currentline or 0)) or "?"
  local msg = "[kong] " .. where .. " "
              .. (namespace and ("[" .. namespace .. "] ") or "")
              .. concat(parts)
  require("sluice.core").log(NGX_LEVEL[level], msg)
end

local log = {}
for _, lvl in ipairs(LEVELS) do
  log[lvl] = function(...)
    write_log(lvl, state.plugin_name, ...) -- not a tail call: keeps the caller's frame
  end
end
log.warning = log.warn
log.trace = function() end

--- Pretty-prints values at notice level.
function log.inspect(...)
  local parts = {}
  for i = 1, select("#", ...) do
    parts[i] = require("sluice.inspect")((select(i, ...)))
  end
  write_log("notice", state.plugin_name, concat(parts, " "))
end

--- Logs a deprecation at warn level.
function log.deprecation(...)
  write_log("warn", state.plugin_name, ...)
end

--- Adds or replaces a field in what kong.log.serialize() returns.
-- @phases rewrite, access, header_filter, response, body_filter, log
local SERIALIZE_SET = phases.new(PHASES.rewrite, PHASES.access,
                                 PHASES.response, PHASES.header_filter,
                                 PHASES.body_filter, PHASES.log)

function log.set_serialize_value(key, value, options)
  check(SERIALIZE_SET)
  if type(key) ~= "string" then
    error("key must be a string", 2)
  end
  local ctx = state.ngx_ctx()
  if not ctx then
    error("no request context", 2)
  end
  local s = ctx.__serialize or {}
  ctx.__serialize = s
  local mode = options and options.mode or "set"
  s[#s + 1] = { key = key, value = value, mode = mode }
end

--- The request as a table for loggers (log phase).
-- @phases log
function log.serialize()
  check(phases.new(PHASES.log))
  return state.serialize()
end

_M.log = setmetatable(log, {
  __call = function(_, ...)
    write_log("notice", state.plugin_name, ...)
  end,
})


--- kong.ip --------------------------------------------------------------------
_M.ip = {
  --- Is the address in trusted_ips?
  -- @phases any
  is_trusted = function(address)
    return require("sluice.runtime.state").is_trusted(address)
  end,
}


--- kong.node ------------------------------------------------------------------
_M.node = {
  --- The node's id (node_id, else generated once per start).
  get_id = function()
    return state.node_id()
  end,
  --- The host name.
  get_hostname = function()
    local f = io.open("/proc/sys/kernel/hostname")
    local h = f and f:read("*l")
    if f then
      f:close()
    end
    return h or "localhost"
  end,
  --- Memory in use by this worker's Lua VM.
  get_memory_stats = function()
    return {
      workers_lua_vms = { { http_allocated_gc = collectgarbage("count") * 1024,
                            pid = require("sluice.core").worker_info().pid } },
      lua_shared_dicts = {},
    }
  end,
}


--- kong.table -----------------------------------------------------------------
local tnew = require "table.new"
local tclear = require "table.clear"
_M.table = {
  new = function(narr, nrec)
    return tnew(narr or 0, nrec or 0)
  end,
  clear = function(t)
    return tclear(t)
  end,
  --- A new table with the keys of t1 then t2 (t2 wins).
  merge = function(t1, t2)
    local r = {}
    if t1 then
      for k, v in pairs(t1) do
        r[k] = v
      end
    end
    if t2 then
      for k, v in pairs(t2) do
        r[k] = v
      end
    end
    return r
  end,
}


--- kong.router ----------------------------------------------------------------
_M.router = {
  --- The matched route entity, or nil.
  -- @phases access, header_filter, response, body_filter, log
  get_route = function()
    check(ROUTER)
    return state.route()
  end,
  --- The matched route's service entity, or nil.
  -- @phases access, header_filter, response, body_filter, log
  get_service = function()
    check(ROUTER)
    return state.service()
  end,
}


--- kong.nginx -----------------------------------------------------------------
_M.nginx = {
  get_subsystem = function()
    return "http"
  end,
  --- nginx's stub_status for the whole node (every worker).
  get_statistics = function()
    local out = ffi.new("uint64_t[7]")
    C.sl_ffi_server_stats(out)
    local n = tonumber
    return { connections_active = n(out[0]), connections_reading = n(out[1]),
             connections_writing = n(out[2]), connections_waiting = n(out[3]),
             connections_accepted = n(out[4]), connections_handled = n(out[5]),
             total_requests = n(out[6]) }
  end,
}


--- kong.plugin ----------------------------------------------------------------
_M.plugin = {
  --- The id of the running plugin instance.
  -- @phases rewrite, access, header_filter, response, body_filter, log
  get_id = function()
    return state.plugin_id
  end,
}


_M.str = str


return _M
