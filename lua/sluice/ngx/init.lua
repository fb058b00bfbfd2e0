-- The `ngx` global: OpenResty's API as Kong plugins use it, over Sluice's
-- runtime. Request-bound parts (ctx, var, req, header, status, say/print/exit,
-- arg) act on the running request through the PDK; the rest comes from the
-- sluice.ngx.* modules. What is not implemented yet raises a clear error
-- instead of misbehaving (see docs/pdk.md).

local ffi = require "ffi"
local constants = require "sluice.ngx.constants"
local time = require "sluice.ngx.time"
local crypto = require "sluice.ngx.crypto"
local args = require "sluice.ngx.args"
local re = require "sluice.ngx.re"
local state = require "sluice.runtime.state"
local phases = require "kong.pdk.private.phases"
local core = require "sluice.core"


local type = type
local error = error
local select = select
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local lower = string.lower


local ngx = {}
constants.apply(ngx)

-- time
ngx.now = time.now
ngx.time = time.time
ngx.today = time.today
ngx.localtime = time.localtime
ngx.utctime = time.utctime
ngx.http_time = time.http_time
ngx.cookie_time = time.cookie_time
ngx.parse_http_time = time.parse_http_time
ngx.update_time = time.update_time

-- digests and encodings
ngx.md5 = crypto.md5
ngx.md5_bin = crypto.md5_bin
ngx.sha1_bin = crypto.sha1_bin
ngx.hmac_sha1 = crypto.hmac_sha1
ngx.crc32_short = crypto.crc32_short
ngx.crc32_long = crypto.crc32_long
ngx.encode_base64 = crypto.encode_base64
ngx.decode_base64 = crypto.decode_base64
ngx.escape_uri = args.escape_uri
ngx.unescape_uri = args.unescape_uri
ngx.encode_args = args.encode_args
ngx.decode_args = args.decode_args
ngx.quote_sql_str = function(s)
  return "'" .. tostring(s):gsub("\\", "\\\\"):gsub("'", "\\'")
         :gsub("%z", "\\0"):gsub("\n", "\\n"):gsub("\r", "\\r") .. "'"
end
ngx.re = re

-- logging
local function ngx_log(level, ...)
  if type(level) ~= "number" then
    error("bad argument #1 to 'log' (number expected, got " .. type(level)
          .. ")", 2)
  end
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    local v = select(i, ...)
    parts[i] = v == nil and "nil" or tostring(v)
  end
  local info = debug.getinfo(2, "Sl")
  local where = info and (info.short_src .. ":" .. (info.currentline or 0))
                or "?"
  core.log(level, "[lua] " .. where .. ": " .. concat(parts))
end
ngx.log = ngx_log
_G.print = function(...)
  local n = select("#", ...)
  local parts = {}
  for i = 1, n do
    parts[i] = tostring((select(i, ...)))
  end
  core.log(ngx.NOTICE, "[lua] " .. concat(parts, "\t"))
end

-- worker and config
ngx.worker = {
  id = function()
    return core.worker_info and core.worker_info().id or 0
  end,
  pid = function()
    return core.worker_info and core.worker_info().pid or 0
  end,
  count = function()
    return core.worker_info and core.worker_info().count or 1
  end,
  exiting = function()
    return false
  end,
}
ngx.config = {
  subsystem = "http",
  ngx_lua_version = 10025,
  nginx_version = 1022001,
  nginx_configure = function()
    return ""
  end,
  debug = false,
  is_console = false,
  prefix = function()
    return kong and kong.configuration and kong.configuration.prefix or ""
  end,
}

function ngx.get_phase()
  return phases.current or "init_worker"
end

function ngx.sleep(seconds)
  return core.sleep(seconds)
end

-- Timers: callbacks run in their own coroutine (they may ngx.sleep) with
-- `premature` first; a graceful exit runs pending ones with premature = true.
local function timer_callback(callback)
  return function(premature, ...)
    phases.current = "timer"
    return callback(premature, ...)
  end
end

ngx.timer = {
  at = function(delay, callback, ...)
    if type(delay) ~= "number" then
      error("bad argument #1 to 'at' (number expected, got " .. type(delay)
            .. ")", 2)
    end
    if delay < 0 then
      error("bad argument #1 to 'at' (delay must be >= 0)", 2)
    end
    if type(callback) ~= "function" then
      error("bad argument #2 to 'at' (function expected, got "
            .. type(callback) .. ")", 2)
    end
    return core.timer(delay, 0, timer_callback(callback), ...)
  end,
  every = function(delay, callback, ...)
    if type(delay) ~= "number" then
      error("bad argument #1 to 'every' (number expected, got "
            .. type(delay) .. ")", 2)
    end
    if delay <= 0 then
      error("bad argument #1 to 'every' (delay must be > 0)", 2)
    end
    if type(callback) ~= "function" then
      error("bad argument #2 to 'every' (function expected, got "
            .. type(callback) .. ")", 2)
    end
    return core.timer(delay, delay, timer_callback(callback), ...)
  end,
  running_count = function()
    local running = core.timer_counts()
    return running
  end,
  pending_count = function()
    local _, pending = core.timer_counts()
    return pending
  end,
}

local function unsupported(name)
  return function()
    error(name .. " is not supported by Sluice yet", 2)
  end
end
ngx.location = { capture = unsupported("ngx.location.capture"),
                 capture_multi = unsupported("ngx.location.capture_multi") }
ngx.thread = { spawn = unsupported("ngx.thread.spawn"),
               wait = unsupported("ngx.thread.wait"),
               kill = unsupported("ngx.thread.kill") }
-- cosockets (lua/sluice/ngx/socket.lua): their C side exists in workers only
ngx.socket = {
  tcp = function()
    return require("sluice.ngx.socket").tcp()
  end,
  connect = function(...)
    return require("sluice.ngx.socket").connect(...)
  end,
  udp = unsupported("ngx.socket.udp"),
}
ngx.socket.stream = ngx.socket.tcp


-- ngx.var: the nginx variables plugins read most
local VARS = {
  request_uri = function()
    return kong.request.get_path_with_query()
  end,
  uri = function()
    return kong.request.get_path()
  end,
  args = function()
    local q = kong.request.get_raw_query()
    return q ~= "" and q or nil
  end,
  query_string = function()
    local q = kong.request.get_raw_query()
    return q ~= "" and q or nil
  end,
  is_args = function()
    return kong.request.get_raw_query() ~= "" and "?" or ""
  end,
  host = function()
    return kong.request.get_host()
  end,
  scheme = function()
    return kong.request.get_scheme()
  end,
  https = function()
    return kong.request.get_scheme() == "https" and "on" or ""
  end,
  request_method = function()
    return kong.request.get_method()
  end,
  server_port = function()
    return tostring(kong.request.get_port())
  end,
  remote_addr = function()
    return kong.client.get_forwarded_ip()
  end,
  realip_remote_addr = function()
    return kong.client.get_ip()
  end,
  remote_port = function()
    return tostring(kong.client.get_port())
  end,
  binary_remote_addr = function()
    return kong.client.get_forwarded_ip()
  end,
  server_protocol = function()
    return "HTTP/" .. string.format("%.1f", kong.request.get_http_version())
  end,
  request_id = function()
    return require("kong.pdk.request").str(require("sluice.ffi.cdefs")
                                           .sl_ffi_req_id)
  end,
  ssl_server_name = function()
    return require("kong.pdk.request").str(require("sluice.ffi.cdefs")
                                           .sl_ffi_req_sni)
  end,
  status = function()
    return tostring(kong.response.get_status())
  end,
  content_type = function()
    return kong.request.get_header("content-type")
  end,
  content_length = function()
    return kong.request.get_header("content-length")
  end,
  hostname = function()
    return kong.node.get_hostname()
  end,
  pid = function()
    return tostring(ngx.worker.pid())
  end,
  msec = function()
    return string.format("%.3f", ngx.now())
  end,
  request_time = function()
    return string.format("%.3f", ngx.now()
                         - kong.request.get_start_time() / 1000)
  end,
}

ngx.var = setmetatable({}, {
  __index = function(_, name)
    local f = VARS[name]
    if f then
      return f()
    end
    if type(name) ~= "string" then
      return nil
    end
    local h = name:match("^http_(.+)$")
    if h then
      return kong.request.get_header(h)
    end
    local sh = name:match("^sent_http_(.+)$")
    if sh then
      return kong.response.get_header(sh)
    end
    local a = name:match("^arg_(.+)$")
    if a then
      local v = kong.request.get_query_arg(a)
      return v ~= true and v or ""
    end
    local ck = name:match("^cookie_(.+)$")
    if ck then
      local cookie = kong.request.get_header("cookie")
      if cookie then
        for k, v in cookie:gmatch("([^=;%s]+)=([^;]*)") do
          if k == ck then
            return v
          end
        end
      end
    end
    return nil
  end,
  __newindex = function(_, name, value)
    if name == "upstream_uri" then
      kong.service.request.set_path(value)
      return
    end
    if name == "args" then
      kong.service.request.set_raw_query(value or "")
      return
    end
    error("variable \"" .. tostring(name) .. "\" not changeable", 2)
  end,
})


-- ngx.req
local METHOD_NAMES = {
  [ngx.HTTP_GET] = "GET", [ngx.HTTP_HEAD] = "HEAD", [ngx.HTTP_POST] = "POST",
  [ngx.HTTP_PUT] = "PUT", [ngx.HTTP_DELETE] = "DELETE",
  [ngx.HTTP_OPTIONS] = "OPTIONS", [ngx.HTTP_PATCH] = "PATCH",
}
ngx.req = {
  get_headers = function(max, raw)
    local t = require("kong.pdk.request")._headers_table(max or 100)
    return t
  end,
  get_method = function()
    return kong.request.get_method()
  end,
  get_uri_args = function(max)
    return kong.request.get_query(max)
  end,
  get_post_args = function()
    return nil, "request body is not buffered by Sluice yet"
  end,
  http_version = function()
    return kong.request.get_http_version()
  end,
  start_time = function()
    return kong.request.get_start_time() / 1000
  end,
  read_body = function()
    local ctx = state.ngx_ctx()
    if ctx and ctx.__body == nil then
      local body = kong.request.get_raw_body()
      ctx.__body = body or false
    end
  end,
  discard_body = function() end,
  get_body_data = function()
    local ctx = state.ngx_ctx()
    local body = ctx and ctx.__body
    return body or nil
  end,
  get_body_file = function()
    return nil
  end,
  set_header = function(name, value)
    if value == nil then
      return kong.service.request.clear_header(name)
    end
    return kong.service.request.set_header(name, value)
  end,
  clear_header = function(name)
    return kong.service.request.clear_header(name)
  end,
  set_uri = function(uri)
    return kong.service.request.set_path(uri)
  end,
  set_uri_args = function(a)
    if type(a) == "table" then
      return kong.service.request.set_query(a)
    end
    return kong.service.request.set_raw_query(tostring(a))
  end,
  set_method = function(m)
    local name = METHOD_NAMES[m]
    if not name then
      error("unsupported HTTP method: " .. tostring(m), 2)
    end
    return kong.service.request.set_method(name)
  end,
  set_body_data = unsupported("ngx.req.set_body_data"),
  socket = unsupported("ngx.req.socket"),
  raw_header = function()
    local lines = { kong.request.get_method() .. " "
                    .. kong.request.get_path_with_query() .. " HTTP/"
                    .. string.format("%.1f", kong.request.get_http_version()) }
    for k, v in pairs(kong.request.get_headers()) do
      if type(v) == "table" then
        for _, x in ipairs(v) do
          lines[#lines + 1] = k .. ": " .. x
        end
      else
        lines[#lines + 1] = k .. ": " .. v
      end
    end
    return concat(lines, "\r\n") .. "\r\n\r\n"
  end,
}

ngx.resp = {
  get_headers = function(max)
    return kong.response.get_headers(max)
  end,
}


-- ngx.header: the response headers
ngx.header = setmetatable({}, {
  __index = function(_, name)
    return kong.response.get_header(name)
  end,
  __newindex = function(_, name, value)
    name = tostring(name):gsub("_", "-")
    if value == nil then
      return kong.response.clear_header(name)
    end
    return kong.response.set_header(name, value)
  end,
})


-- ngx.say / ngx.print / ngx.exit: output is gathered and sent by ngx.exit
-- (or when the phase ends) as the response, like a content handler would.
local function out_buffer()
  local ctx = state.ngx_ctx()
  if not ctx then
    error("API disabled in the context of " .. ngx.get_phase(), 3)
  end
  local b = ctx.__ngx_out
  if not b then
    b = {}
    ctx.__ngx_out = b
  end
  return b
end

local function flatten(v, out)
  if type(v) == "table" then
    for _, x in ipairs(v) do
      flatten(x, out)
    end
  elseif v == nil then
    out[#out + 1] = "nil"
  elseif v == ngx.null then
    out[#out + 1] = "null"
  else
    out[#out + 1] = tostring(v)
  end
end

function ngx.print(...)
  local b = out_buffer()
  for i = 1, select("#", ...) do
    flatten((select(i, ...)), b)
  end
  return 1
end

function ngx.say(...)
  ngx.print(...)
  local b = out_buffer()
  b[#b + 1] = "\n"
  return 1
end

function ngx.flush()
  return 1
end

function ngx.eof()
  return 1
end

function ngx.exit(status)
  if type(status) ~= "number" then
    error("bad argument #1 to 'exit' (number expected)", 2)
  end
  local ctx = state.ngx_ctx()
  local body = ctx and ctx.__ngx_out and concat(ctx.__ngx_out) or nil
  if ctx then
    ctx.__ngx_out = nil
  end
  if status >= 400 and body == nil then
    -- nginx would render its error page: Kong's error body
    return kong.response.error(status)
  end
  if status >= 200 then
    return kong.response.exit(status, body)
  end
  if status == 0 and body then
    return kong.response.exit(ctx.__ngx_status or 200, body)
  end
  -- ngx.OK / ngx.DECLINED without output: leave this handler only
  return require("sluice.runtime").leave_handler()
end

function ngx.redirect(uri, status)
  status = status or 302
  return kong.response.exit(status, nil, { Location = uri })
end


-- ngx.arg in body_filter: [1] the chunk, [2] eof
ngx.arg = setmetatable({}, {
  __index = function(_, i)
    local resp = require "kong.pdk.response"
    if i == 1 then
      return resp._chunk
    elseif i == 2 then
      return resp._eof
    end
  end,
  __newindex = function(_, i, v)
    local resp = require "kong.pdk.response"
    if i == 1 then
      resp._chunk = v == nil and "" or tostring(v)
    elseif i == 2 then
      resp._eof = v and true or false
    end
  end,
})


-- ngx.ctx and ngx.status are per request
setmetatable(ngx, {
  __index = function(_, k)
    if k == "ctx" then
      return state.ngx_ctx() or {}
    elseif k == "status" then
      local ctx = state.ngx_ctx()
      if not ctx then
        return 0
      end
      local s = require("sluice.ffi.cdefs").sl_ffi_resp_status()
      return s > 0 and s or (ctx.__ngx_status or 0)
    elseif k == "shared" then
      local shdict = require "sluice.ngx.shdict"
      local shared = shdict.init(ffi.C)
      rawset(ngx, "shared", shared)
      return shared
    end
  end,
  __newindex = function(t, k, v)
    if k == "status" then
      local ctx = state.ngx_ctx()
      if ctx then
        ctx.__ngx_status = v
      end
      return kong.response.set_status(v)
    elseif k == "ctx" then
      local ctx = state.ngx_ctx()
      if ctx and type(v) == "table" then
        for kk, vv in pairs(v) do
          ctx[kk] = vv
        end
      end
      return
    end
    rawset(t, k, v)
  end,
})

local _ = lower
local __ = tonumber
return ngx
