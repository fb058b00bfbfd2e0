-- The request runloop: which plugins run for a request, in which order, with
-- which configuration, in every phase (Kong's kong/init.lua and
-- kong/runloop/plugins_iterator.lua semantics). C calls access() in a
-- coroutine and the filters and log under pcall (core/lua/sl_lua_runtime.c).

local phases = require "kong.pdk.private.phases"
local state = require "sluice.runtime.state"
local plugins = require "sluice.plugins"
local C = require "sluice.ffi.cdefs"


local bit = require "bit"
local bor = bit.bor
local type = type
local pairs = pairs
local ipairs = ipairs
local pcall = pcall
local unpack = unpack
local select = select
local tostring = tostring
-- the raw coroutine functions: run_yielding passes every wait up itself
local raw_co = require("sluice.coroutine").raw
local co_create = raw_co.create
local co_resume = raw_co.resume
local co_yield = raw_co.yield
local co_status = raw_co.status
local co_running = raw_co.running
local traceback = debug.traceback
local xpcall = xpcall
local new_tab = require "table.new"
local clear_tab = require "table.clear"


local F_HEADER_FILTER = 0x2
local F_BODY_FILTER = 0x4
local F_LOG = 0x8
local setmetatable = setmetatable
local F_BUFFER = 0x100 -- SL_LUA_BUFFER: buffered proxying, response phase

local EXIT = setmetatable({}, { __tostring = function() return "exit" end })


local _M = {}

-- name -> { [compound key] = config }
local combos = {}
-- name -> array of every enabled config (for configure())
local all_configs = {}
local any_plugin = false


local function key(route_id, service_id, consumer_id)
  return (route_id or "") .. ":" .. (service_id or "") .. ":"
         .. (consumer_id or "")
end


-- The loaded plugin a configured row runs, or nil when the row is disabled,
-- of an unknown plugin or of no http protocol.
local function usable(row)
  local p = plugins.loaded[row.name]
  if not p or row.enabled == false then
    return nil
  end
  if row.protocols then
    -- kept when one of its protocols is of the http subsystem, as Kong
    for _, proto in ipairs(row.protocols) do
      if proto == "http" or proto == "https" or proto == "grpc"
         or proto == "grpcs" then
        return p
      end
    end
    return nil
  end
  return p
end


local function build(cfg)
  combos, all_configs, any_plugin = {}, {}, false
  for _, row in ipairs(cfg.plugins or {}) do
    if usable(row) then
      local conf = {}
      for k, v in pairs(row.config or {}) do
        conf[k] = v
      end
      conf.route_id = row.route and row.route.id
      conf.service_id = row.service and row.service.id
      conf.consumer_id = row.consumer and row.consumer.id
      conf.__plugin_id = row.id
      conf.plugin_instance_name = row.instance_name
      conf.__key__ = "plugins:" .. row.name .. ":" .. key(conf.route_id,
                       conf.service_id, conf.consumer_id)
      local idx = combos[row.name]
      if not idx then
        idx = {}
        combos[row.name] = idx
      end
      idx[key(conf.route_id, conf.service_id, conf.consumer_id)] = conf
      local list = all_configs[row.name] or {}
      list[#list + 1] = conf
      all_configs[row.name] = list
      any_plugin = true
    end
  end
end


--- Whether a configuration runs any plugin (requests then go through Lua).
function _M.has_plugins(cfg)
  for _, row in ipairs(cfg.plugins or {}) do
    if usable(row) then
      return true
    end
  end
  return false
end


-- Kong's 8-level precedence, first hit wins.
local function lookup(p, route_id, service_id, consumer_id)
  local idx = combos[p.name]
  if not idx then
    return nil
  end
  local h = p.handler
  if h.no_route then
    route_id = nil
  end
  if h.no_service then
    service_id = nil
  end
  if h.no_consumer then
    consumer_id = nil
  end
  if consumer_id then
    local c = (route_id and service_id and idx[key(route_id, service_id,
                                                   consumer_id)])
              or (route_id and idx[key(route_id, nil, consumer_id)])
              or (service_id and idx[key(nil, service_id, consumer_id)])
    if c then
      return c
    end
  end
  return (route_id and service_id and idx[key(route_id, service_id, nil)])
         or (consumer_id and idx[key(nil, nil, consumer_id)])
         or (route_id and idx[key(route_id, nil, nil)])
         or (service_id and idx[key(nil, service_id, nil)])
         or idx[key(nil, nil, nil)]
end


local function enter(phase, p, conf)
  phases.current = phase
  state.plugin_name = p and p.name
  state.plugin_handler = p and p.handler
  state.plugin_id = conf and conf.__plugin_id
end


local function leave()
  state.plugin_name = nil
  state.plugin_handler = nil
  state.plugin_id = nil
end


local function run_configure(phase)
  for _, p in ipairs(plugins.ordered) do
    local h = p.handler
    if h.configure then
      enter(phase, p)
      local ok, err = pcall(h.configure, h, all_configs[p.name])
      if not ok then
        kong.log.err("failed to run configure of plugin ", p.name, ": ", err)
      end
    end
  end
  leave()
end


local starting = false

--- A new configuration generation is running (sluice.config): plugins are
-- resolved against it and their configure() handlers see its configs.
function _M.reconfigure(cfg, generation)
  state.set_config(cfg, generation)
  build(cfg)
  if not starting then
    local saved = phases.current
    run_configure("init_worker")
    phases.current = saved
  end
end


--- Called once per worker by C. Returns whether any plugin is configured.
function _M.init_worker()
  local cfg = require("sluice.declarative").current or {}
  state.set_config(cfg, tonumber(C.sl_ffi_req_generation()))
  build(cfg)
  require("kong.pdk").init_worker()
  require("sluice.kong_db").install(kong)
  -- the configuration source of this worker: the store, or for DB-less the
  -- file the Admin API's POST /config wrote (both may swap cfg in)
  starting = true
  local database = kong.configuration.database
  local ok, err = pcall(function()
    if database ~= nil and database ~= "off" then
      require("sluice.db").init_worker(kong.configuration)
    else
      require("sluice.admin.dbless").init_worker()
    end
  end)
  starting = false
  if not ok then
    kong.log.err("failed to load the configuration at worker start: ", err)
  end
  for _, p in ipairs(plugins.ordered) do
    local h = p.handler
    if h.init_worker then
      enter("init_worker", p)
      local iok, ierr = pcall(h.init_worker, h)
      if not iok then
        kong.log.err("failed to run init_worker of plugin ", p.name, ": ", ierr)
      end
    end
  end
  run_configure("init_worker")
  phases.current = nil
  return any_plugin
end


--- An Admin API request (admin_listen), in a coroutine like access.
function _M.admin()
  phases.current = "admin_api"
  local ok, err = xpcall(function()
    return require("sluice.admin").handle()
  end, traceback)
  if not ok then
    kong.log.err("error in the Admin API: ", err)
    if C.sl_ffi_resp_source() ~= 1 then
      kong.response.exit(500, { message = "An unexpected error occurred" })
    end
  elseif C.sl_ffi_resp_source() ~= 1 then
    kong.log.err("the Admin API produced no response")
    kong.response.exit(500, { message = "An unexpected error occurred" })
  end
  phases.current = nil
  return 0
end


local LEAVE = setmetatable({}, { __tostring = function() return "leave" end })

--- kong.response.exit from inside a handler: leave the handler's coroutine
-- (and skip the later access handlers).
function _M.exit_now()
  if state.plugin_co ~= nil and co_running() == state.plugin_co then
    return co_yield(EXIT)
  end
end


--- ngx.exit(ngx.OK) from inside a handler: leave only this handler.
function _M.leave_handler()
  if state.plugin_co ~= nil and co_running() == state.plugin_co then
    return co_yield(LEAVE)
  end
end


-- Runs handler:phase(conf) in its own coroutine, passing waits (sleep, I/O)
-- up to C's coroutine and back. Returns "ok", "exit" or "error", msg.
local function run_yielding(phase, p, conf)
  local h = p.handler
  local co = co_create(h[phase])
  enter(phase, p, conf)
  state.plugin_co = co
  local res = { co_resume(co, h, conf) }
  while true do
    if not res[1] then
      state.plugin_co = nil
      return "error", traceback(co, tostring(res[2]))
    end
    if co_status(co) == "dead" then
      state.plugin_co = nil
      return "ok"
    end
    if res[2] == EXIT then
      state.plugin_co = nil
      return "exit"
    end
    if res[2] == LEAVE then
      state.plugin_co = nil
      return "ok"
    end
    local back = { co_yield(unpack(res, 2)) }
    enter(phase, p, conf)     -- other requests ran meanwhile
    state.plugin_co = co
    res = { co_resume(co, unpack(back)) }
  end
end


local function unexpected(p, phase, err)
  kong.log.err("error running ", p.name, " plugin's ", phase, " handler: ", err)
  local ctx = state.ngx_ctx()
  ctx.KONG_UNEXPECTED = true
  leave()
  phases.current = "access"
  kong.response.error(500)
end


-- Whether the client asked to switch protocols (never buffered, as Kong).
local function is_upgrade()
  local up = kong.request.get_header("upgrade")
  local conn = kong.request.get_header("connection")
  return up ~= nil and conn ~= nil and conn:lower():find("upgrade", 1, true)
         ~= nil
end


-- The plugins collected for a request: a flat array p1, conf1, p2, conf2 ...
-- taken from a pool and given back when the request is done (no table per
-- request or per plugin on the hot path).
local collected_pool, pooled = {}, 0
local POOL_MAX = 256


local function fetch_collected()
  if pooled > 0 then
    local t = collected_pool[pooled]
    collected_pool[pooled] = nil
    pooled = pooled - 1
    return t
  end
  return new_tab(16, 0)
end


local function release_collected(t)
  clear_tab(t)
  if pooled < POOL_MAX then
    pooled = pooled + 1
    collected_pool[pooled] = t
  end
end


local function flags_of(collected, ctx)
  local f = F_LOG -- Kong's log phase always runs for collected plugins
  local any_log = false
  for i = 1, #collected, 2 do
    local h = collected[i].handler
    if h.response and ctx then
      -- Kong: a collected plugin with a response handler buffers the response
      ctx.buffered_proxying = true
    end
    if h.header_filter then
      f = bor(f, F_HEADER_FILTER)
    end
    if h.body_filter then
      f = bor(f, F_BODY_FILTER)
    end
    if h.log then
      any_log = true
    end
  end
  if not any_log then
    f = f - F_LOG
  end
  if ctx and ctx.buffered_proxying then
    if is_upgrade() then
      ctx.buffered_proxying = nil
    else
      f = bor(f, F_BUFFER)
    end
  end
  return f
end


--- rewrite (global plugins) then access (resolved per request). Runs in the
-- request's coroutine. Returns the phases C must call for this request.
function _M.access()
  local ctx = state.ngx_ctx()
  local route = state.route()
  local service = state.service()
  local route_id = route and route.id
  local service_id = service and service.id
  ctx.route = route
  ctx.service = service

  -- rewrite: global configurations only
  for _, p in ipairs(plugins.ordered) do
    if p.handler.rewrite then
      local conf = combos[p.name] and combos[p.name][key()]
      if conf then
        local status, err = run_yielding("rewrite", p, conf)
        if status == "error" then
          unexpected(p, "rewrite", err)
          break
        elseif status == "exit" then
          break
        end
      end
    end
  end

  local collected = fetch_collected()
  local exited = C.sl_ffi_resp_source() == 1
  if not route then
    -- no route matched: only global plugins apply, and only for their
    -- filters and log (C answers 404 unless a rewrite handler exited)
    for _, p in ipairs(plugins.ordered) do
      local conf = combos[p.name] and combos[p.name][key()]
      if conf then
        local n = #collected
        collected[n + 1], collected[n + 2] = p, conf
      end
    end
    leave()
    phases.current = nil
    ctx.__collected = collected
    return flags_of(collected)
  end
  for _, p in ipairs(plugins.ordered) do
    local consumer = ctx.authenticated_consumer
    local conf = lookup(p, route_id, service_id, consumer and consumer.id)
    if conf then
      local n = #collected
      collected[n + 1], collected[n + 2] = p, conf
      if not exited and p.handler.access then
        local status, err = run_yielding("access", p, conf)
        if status == "error" then
          unexpected(p, "access", err)
          exited = true
        elseif status == "exit" then
          exited = true
        end
      end
    end
  end
  leave()
  phases.current = nil
  ctx.__collected = collected
  return flags_of(collected, ctx)
end


-- The upstream's headers as Kong's buffered_headers: lower-case names,
-- repeated ones as arrays, looked up case-insensitively with "_" for "-".
local HEADERS_MT = {
  __index = function(t, name)
    if type(name) ~= "string" then
      return nil
    end
    local k = name:lower()
    local v = rawget(t, k)
    if v == nil then
      v = rawget(t, (k:gsub("_", "-")))
    end
    return v
  end,
}


--- The response phase of buffered proxying, in the request's coroutine
-- (handlers may yield): status, body and headers are the upstream's
-- (flat: { name, value, ... }); kong.response.* edit what the client gets.
-- Returns 0, or 1 when a handler raised (C answers Kong's 500).
function _M.response(status, body, flat)
  local ctx = state.ngx_ctx()
  local headers = setmetatable({}, HEADERS_MT)
  for i = 1, #flat, 2 do
    local k, v = flat[i]:lower(), flat[i + 1]
    local old = rawget(headers, k)
    if old == nil then
      headers[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      headers[k] = { old, v }
    end
  end
  ctx.buffered_proxying = true
  ctx.buffered_status = status
  ctx.buffered_headers = headers
  ctx.buffered_body = body
  local collected = ctx.__collected or {}
  for i = 1, #collected, 2 do
    local p, conf = collected[i], collected[i + 1]
    if p.handler.response then
      local status_, err = run_yielding("response", p, conf)
      if status_ == "error" then
        kong.log.err("error running ", p.name, " plugin's response handler: ",
                     err)
        ctx.KONG_UNEXPECTED = true
        leave()
        phases.current = nil
        return 1
      elseif status_ == "exit" then
        break
      end
    end
  end
  leave()
  phases.current = nil
  return 0
end


local function run_plain(phase, ...)
  local ctx = state.ngx_ctx()
  local collected = ctx and ctx.__collected
  if not collected then
    return
  end
  for i = 1, #collected, 2 do
    local p, conf = collected[i], collected[i + 1]
    local fn = p.handler[phase]
    if fn then
      enter(phase, p, conf)
      local ok, err = pcall(fn, p.handler, conf, ...)
      if not ok then
        kong.log.err("error running ", p.name, " plugin's ", phase,
                     " handler: ", err)
      end
    end
  end
  leave()
  phases.current = nil
end


function _M.header_filter()
  run_plain("header_filter")
end


--- One body chunk through the collected body_filter handlers; returns the
-- chunk to send (ngx.arg[1] as they left it).
function _M.body_filter(chunk, eof)
  local resp = require "kong.pdk.response"
  resp._chunk = chunk
  resp._eof = eof
  run_plain("body_filter")
  local out = resp._chunk
  resp._chunk = nil
  return out or ""
end


function _M.log()
  run_plain("log")
end


function _M.done(serial)
  local ctx = state.ctx_of(serial)
  local collected = ctx and ctx.__collected
  if collected then
    ctx.__collected = nil
    release_collected(collected)
  end
  state.drop(serial)
end


--- The certificate phase of a TLS handshake (C: sl_lua_certificate), before
-- any request: global configurations only, as Kong's ssl_certificate_by_lua;
-- handlers may not yield. An error is logged and the handshake goes on. The
-- ngx.ctx they see belongs to the handshake (serial) and is dropped after.
function _M.certificate(serial)
  for _, p in ipairs(plugins.ordered) do
    local h = p.handler
    if h.certificate then
      local conf = combos[p.name] and combos[p.name][key()]
      if conf then
        enter("certificate", p, conf)
        local ok, err = pcall(h.certificate, h, conf)
        if not ok then
          kong.log.err("error running ", p.name, " plugin's certificate ",
                       "handler: ", err)
        end
      end
    end
  end
  leave()
  phases.current = nil
  state.drop(serial)
end


_M.lookup = lookup
_M.EXIT = EXIT
local _ = select
return _M
