--- kong.service, kong.service.request, kong.service.response: the upstream
-- side of the request.
-- @module kong.service

local C = require "sluice.ffi.cdefs"
local phases = require "kong.pdk.private.phases"
local args = require "sluice.ngx.args"
local cjson = require "cjson.safe"
local state = require "sluice.runtime.state"


local type = type
local error = error
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local unpack = unpack
local setmetatable = setmetatable
local getmetatable = getmetatable
local lower = string.lower
local find = string.find
local check = phases.check
local PHASES = phases.phases


local SET, ADD, CLEAR = 0, 1, 2
local ACCESS = phases.new(PHASES.access)
local RA = phases.new(PHASES.rewrite, PHASES.access)
local RAB = phases.new(PHASES.rewrite, PHASES.access, PHASES.balancer)
local RESP = phases.new(PHASES.response, PHASES.header_filter,
                        PHASES.body_filter, PHASES.log)


local service = {}
local request = {}
local response = {}
service.request = request
service.response = response


--- Overrides the service's connect, write and read timeouts (ms).
-- @phases access
function service.set_timeouts(connect_timeout, write_timeout, read_timeout)
  check(ACCESS)
  for i, v in ipairs({ connect_timeout, write_timeout, read_timeout }) do
    local name = ({ "connect_timeout", "write_timeout", "read_timeout" })[i]
    if type(v) ~= "number" then
      error(name .. " must be an integer", 2)
    end
    if v < 1 or v > 2147483646 then
      error(name .. " must be an integer between 1 and 2147483646: " .. v, 2)
    end
  end
  C.sl_ffi_up_set_timeouts(connect_timeout, write_timeout, read_timeout)
end


--- Overrides the service's retries.
-- @phases access
function service.set_retries(retries)
  check(ACCESS)
  if type(retries) ~= "number" or retries % 1 ~= 0 then
    error("retries must be an integer", 2)
  end
  if retries < 0 or retries > 32767 then
    error("retries must be an integer between 0 and 32767: given " .. retries,
          2)
  end
  C.sl_ffi_up_set_retries(retries)
end


local function not_yet(name)
  return function()
    error(name .. " is not supported by Sluice yet", 2)
  end
end

service.set_upstream = not_yet("kong.service.set_upstream")
service.set_target = not_yet("kong.service.set_target")
service.set_tls_verify = not_yet("kong.service.set_tls_verify")


local function up_header(name, value, mode)
  name = tostring(name)
  if value == nil then
    C.sl_ffi_up_header(name, #name, nil, 0, mode)
    return
  end
  value = tostring(value)
  C.sl_ffi_up_header(name, #name, value, #value, mode)
end


local function check_header(name, value)
  if type(name) ~= "string" then
    error("header name must be a string", 3)
  end
  local tv = type(value)
  if tv ~= "string" and tv ~= "number" and tv ~= "boolean" and tv ~= "table" then
    error("invalid header value for \"" .. name .. "\": got " .. tv
          .. ", expected string, number, boolean or array of strings", 3)
  end
end


--- Sets a header of the upstream request (replacing the client's).
-- @phases rewrite, access, balancer
function request.set_header(name, value)
  check(RAB)
  check_header(name, value)
  if type(value) == "table" then
    up_header(name, nil, CLEAR)
    for _, v in ipairs(value) do
      up_header(name, v, ADD)
    end
    return
  end
  up_header(name, value, SET)
end


--- Adds a header to the upstream request.
-- @phases rewrite, access
function request.add_header(name, value)
  check(RA)
  check_header(name, value)
  if type(value) == "table" then
    for _, v in ipairs(value) do
      up_header(name, v, ADD)
    end
    return
  end
  up_header(name, value, ADD)
end


--- Removes a header from the upstream request.
-- @phases rewrite, access
function request.clear_header(name)
  check(RA)
  if type(name) ~= "string" then
    error("header name must be a string", 2)
  end
  up_header(name, nil, CLEAR)
end


--- Sets several upstream request headers.
-- @phases rewrite, access
function request.set_headers(headers)
  check(RA)
  if type(headers) ~= "table" then
    error("headers must be a table", 2)
  end
  for k, v in pairs(headers) do
    check_header(k, v)
  end
  for k, v in pairs(headers) do
    request.set_header(k, v)
  end
end


--- Sets the path of the upstream request (no query; it must start with "/").
-- @phases rewrite, access, balancer
function request.set_path(path)
  check(RAB)
  if type(path) ~= "string" then
    error("path must be a string", 2)
  end
  if path:sub(1, 1) ~= "/" then
    error("path must start with /", 2)
  end
  C.sl_ffi_up_set_path(path, #path)
end


--- Sets the raw query string of the upstream request (without "?").
-- @phases rewrite, access
function request.set_raw_query(query)
  check(RA)
  if type(query) ~= "string" then
    error("query must be a string", 2)
  end
  C.sl_ffi_up_set_query(query, #query)
end


--- Sets the upstream query from a table.
-- @phases rewrite, access
function request.set_query(tbl)
  check(RA)
  if type(tbl) ~= "table" then
    error("query must be a table", 2)
  end
  local q = args.encode_args(tbl)
  C.sl_ffi_up_set_query(q, #q)
end


--- Removes one query argument from the upstream request.
-- @phases rewrite, access
function request.clear_query_arg(name)
  check(RA)
  if type(name) ~= "string" then
    error("query argument name must be a string", 2)
  end
  local q = kong.request.get_query()
  q[name] = nil
  local s = args.encode_args(q)
  C.sl_ffi_up_set_query(s, #s)
end


local METHODS = {
  GET = true, HEAD = true, PUT = true, POST = true, DELETE = true,
  OPTIONS = true, MKCOL = true, COPY = true, MOVE = true, PROPFIND = true,
  PROPPATCH = true, LOCK = true, UNLOCK = true, PATCH = true, TRACE = true,
}

--- Sets the method of the upstream request.
-- @phases rewrite, access
function request.set_method(method)
  check(RA)
  if type(method) ~= "string" then
    error("method must be a string", 2)
  end
  if not METHODS[method] then
    error("invalid method: " .. method, 2)
  end
  C.sl_ffi_up_set_method(method, #method)
end


--- Sets the scheme of the upstream request: only the service's scheme is
-- supported for now.
-- @phases rewrite, access, balancer
function request.set_scheme(scheme)
  check(RAB)
  if type(scheme) ~= "string" then
    error("scheme must be a string", 2)
  end
  if scheme ~= "http" and scheme ~= "https" then
    error("invalid scheme: " .. scheme, 2)
  end
end


--- Turns on buffered proxying for this request: the whole upstream response
-- is read before anything is sent, the plugins' `response` handlers run on
-- it, and kong.service.response.get_raw_body/get_body return its body.
-- Upgrade (WebSocket) requests are never buffered. Bodies over 64 MiB are
-- answered with 502.
-- @function kong.service.request.enable_buffering
-- @phases rewrite, access, balancer
-- @treturn nil
-- @usage
-- kong.service.request.enable_buffering()
function request.enable_buffering()
  check(RAB)
  local ctx = state.ngx_ctx()
  if ctx then
    ctx.buffered_proxying = true
  end
end

--- Replaces the body sent upstream (Content-Length follows it).
-- @phases rewrite, access, balancer
function request.set_raw_body(body)
  check(RAB)
  if type(body) ~= "string" then
    error("body must be a string", 2)
  end
  if C.sl_ffi_up_set_body(body, #body) < 0 then
    error("the request is already on its way to the upstream", 2)
  end
end


--- Encodes a table as the upstream body: JSON, form or multipart after the
-- mimetype (or the request's Content-Type).
-- @phases rewrite, access
function request.set_body(args_tbl, mimetype)
  check(RA)
  if type(args_tbl) ~= "table" then
    error("args must be a table", 2)
  end
  local ct = mimetype or kong.request.get_header("content-type")
             or "application/json"
  local body
  if find(ct, "application/json", 1, true) then
    body = require("cjson.safe").encode(args_tbl)
  elseif find(ct, "application/x-www-form-urlencoded", 1, true) then
    body = args.encode_args(args_tbl)
  elseif find(ct, "multipart/form-data", 1, true) then
    local boundary = ct:match("boundary=([^;]+)") or "sluice-boundary"
    local parts = {}
    for k, v in pairs(args_tbl) do
      parts[#parts + 1] = "--" .. boundary .. "\r\nContent-Disposition: "
                          .. "form-data; name=\"" .. k .. "\"\r\n\r\n"
                          .. tostring(v) .. "\r\n"
    end
    body = table.concat(parts) .. "--" .. boundary .. "--\r\n"
    if not ct:find("boundary", 1, true) then
      ct = "multipart/form-data; boundary=" .. boundary
    end
  else
    return nil, "unsupported content type '" .. ct .. "'"
  end
  request.set_header("Content-Type", ct)
  request.set_raw_body(body)
  return true
end


-- the request's buffered response (sluice.runtime.response), or nil
local function buffered()
  local ctx = state.ngx_ctx()
  return ctx, ctx and ctx.buffered_headers ~= nil
end


local MIN_HEADERS, MAX_HEADERS = 1, 1000


--- The upstream's status code (with buffered proxying: as it answered,
-- whatever the response phase set since).
-- @function kong.service.response.get_status
-- @phases response, header_filter, body_filter, log
-- @treturn number|nil
-- @usage
-- local status = kong.service.response.get_status()
function response.get_status()
  check(RESP)
  local ctx, is_buffered = buffered()
  if is_buffered then
    return ctx.buffered_status
  end
  return kong.response.get_status()
end


--- The upstream's response headers (lower-case names, repeated ones as
-- arrays; "_" may stand for "-" when reading). With buffered proxying these
-- are the headers the upstream sent, not the ones Sluice or plugins added.
-- @function kong.service.response.get_headers
-- @phases response, header_filter, body_filter, log
-- @tparam[opt] number max_headers 1..1000 (default 100)
-- @treturn table
-- @usage
-- local h = kong.service.response.get_headers()
function response.get_headers(max)
  check(RESP)
  if max ~= nil then
    if type(max) ~= "number" then
      error("max_headers must be a number", 2)
    elseif max < MIN_HEADERS then
      error("max_headers must be >= " .. MIN_HEADERS, 2)
    elseif max > MAX_HEADERS then
      error("max_headers must be <= " .. MAX_HEADERS, 2)
    end
  end
  local ctx, is_buffered = buffered()
  if is_buffered then
    local out = setmetatable({}, getmetatable(ctx.buffered_headers))
    local n = 0
    for k, v in pairs(ctx.buffered_headers) do
      n = n + 1
      if n > (max or 100) then
        break
      end
      out[k] = type(v) == "table" and { unpack(v) } or v
    end
    return out
  end
  return kong.response.get_headers(max)
end


--- One upstream response header (the first value).
-- @function kong.service.response.get_header
-- @phases response, header_filter, body_filter, log
-- @tparam string name case-insensitive
-- @treturn string|nil
-- @usage
-- local ct = kong.service.response.get_header("Content-Type")
function response.get_header(name)
  check(RESP)
  if type(name) ~= "string" then
    error("name must be a string", 2)
  end
  local ctx, is_buffered = buffered()
  if is_buffered then
    local v = ctx.buffered_headers[name]
    if type(v) == "table" then
      return v[1]
    end
    return v
  end
  return kong.response.get_header(name)
end


local NO_BUFFER = "service body is only available with buffered proxying "
                  .. "(see: kong.service.request.enable_buffering function)"


--- The upstream's body, as received (buffered proxying only: raises Kong's
-- error otherwise). "" before the body arrived (e.g. on an error page).
-- @function kong.service.response.get_raw_body
-- @phases response, header_filter, body_filter, log
-- @treturn string
-- @usage
-- local body = kong.service.response.get_raw_body()
function response.get_raw_body()
  check(RESP)
  local ctx = state.ngx_ctx()
  if not (ctx and ctx.buffered_proxying) then
    error(NO_BUFFER, 2)
  end
  return ctx.buffered_body or ""
end


--- The upstream's body decoded after mimetype or its Content-Type:
-- application/json (a table, else "invalid json body") and
-- application/x-www-form-urlencoded. Returns body, err, mimetype.
-- @function kong.service.response.get_body
-- @phases response, header_filter, body_filter, log
-- @tparam[opt] string mimetype
-- @tparam[opt] number max_args 1..1000 (default 100, forms only)
-- @treturn table|nil
-- @treturn string|nil err
-- @treturn string mimetype
-- @usage
-- local body, err = kong.service.response.get_body()
function response.get_body(mimetype, max_args)
  check(RESP)
  local ctx = state.ngx_ctx()
  if not (ctx and ctx.buffered_proxying) then
    error(NO_BUFFER, 2)
  end
  local ct = mimetype or response.get_header("Content-Type")
  if not ct then
    return nil, "missing content type"
  end
  local ctl = lower(ct)
  local semi = find(ctl, ";", 1, true)
  if semi then
    ctl = ctl:sub(1, semi - 1)
  end
  local body = ctx.buffered_body or ""
  if find(ctl, "application/x-www-form-urlencoded", 1, true) == 1 then
    if max_args ~= nil then
      if type(max_args) ~= "number" then
        error("max_args must be a number", 2)
      elseif max_args < 1 then
        error("max_args must be >= 1", 2)
      elseif max_args > 1000 then
        error("max_args must be <= 1000", 2)
      end
    end
    return args.decode_args(body, max_args or 100), nil,
           "application/x-www-form-urlencoded"
  elseif find(ctl, "application/json", 1, true) == 1 then
    local t = cjson.decode(body)
    if type(t) ~= "table" then
      return nil, "invalid json body", "application/json"
    end
    return t, nil, "application/json"
  end
  return nil, "unsupported content type '" .. ct .. "'", ctl
end

local _ = lower
_ = find

return service
