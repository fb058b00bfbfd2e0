--- kong.request: the client's request, read-only.
-- Every getter reads the C request through the FFI (lua/sluice/ffi/cdefs.lua).
-- @module kong.request

local ffi = require "ffi"
local C = require "sluice.ffi.cdefs"
local phases = require "kong.pdk.private.phases"
local args = require "sluice.ngx.args"
local cjson = require "cjson.safe"


local ffi_string = ffi.string
local lower = string.lower
local sub = string.sub
local find = string.find
local type = type
local error = error
local tonumber = tonumber
local check = phases.check
local PHASES = phases.phases


local REQ = PHASES.request
local BODY_PHASES = phases.new(PHASES.rewrite, PHASES.access, PHASES.response,
                               PHASES.error, PHASES.admin_api)

local pp = ffi.new("const char *[1]")
local pn = ffi.new("size_t[1]")
local pp2 = ffi.new("const char *[1]")
local pn2 = ffi.new("size_t[1]")


local function str(fn)
  if fn(pp, pn) ~= 0 then
    return nil
  end
  return ffi_string(pp[0], pn[0])
end


local _M = {}


--- The scheme of the request: "http" or "https".
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_scheme()
  check(REQ)
  return C.sl_ffi_req_scheme_is_https() ~= 0 and "https" or "http"
end


--- The host the client asked for, lower-cased, without the port.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_host()
  check(REQ)
  local h = str(C.sl_ffi_req_host) or ""
  if sub(h, 1, 1) == "[" then
    local e = find(h, "]", 1, true)
    return lower(e and sub(h, 1, e) or h)
  end
  local colon = find(h, ":", 1, true)
  if colon then
    h = sub(h, 1, colon - 1)
  end
  return lower(h)
end


--- The port the request came in on.
-- @phases certificate, rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_port()
  phases.check_not(PHASES.init_worker)
  return C.sl_ffi_req_server_port()
end


local function forwarded(name, fallback)
  if C.sl_ffi_req_peer_trusted() ~= 0 then
    local v = _M.get_header(name)
    if v then
      return v
    end
  end
  return fallback()
end


--- X-Forwarded-Proto from a trusted peer, else the scheme.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_forwarded_scheme()
  check(REQ)
  return lower(forwarded("x-forwarded-proto", _M.get_scheme))
end


--- X-Forwarded-Host from a trusted peer, else the host.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_forwarded_host()
  check(REQ)
  local h = forwarded("x-forwarded-host", _M.get_host)
  local colon = find(h, ":", 1, true)
  return lower(colon and sub(h, 1, colon - 1) or h)
end


--- X-Forwarded-Port from a trusted peer, else the port.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_forwarded_port()
  check(REQ)
  return tonumber(forwarded("x-forwarded-port", _M.get_port))
end


--- X-Forwarded-Path from a trusted peer, else the path.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_forwarded_path()
  check(REQ)
  return forwarded("x-forwarded-path", _M.get_path)
end


--- X-Forwarded-Prefix from a trusted peer, else nil.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_forwarded_prefix()
  check(REQ)
  if C.sl_ffi_req_peer_trusted() ~= 0 then
    return _M.get_header("x-forwarded-prefix")
  end
  return nil
end


--- The HTTP version as a number: 1.0 or 1.1.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_http_version()
  check(REQ)
  local minor = C.sl_ffi_req_http_minor()
  return minor == 0 and 1.0 or 1.1
end


--- The request method, upper-cased as sent.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_method()
  check(REQ)
  return str(C.sl_ffi_req_method)
end


--- The normalized path (after routing: the router's normalization; before it,
-- the path as received).
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_path()
  check(REQ)
  return str(C.sl_ffi_req_norm_path) or str(C.sl_ffi_req_raw_path)
end


--- The path as received, without the query.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_raw_path()
  check(REQ)
  return str(C.sl_ffi_req_raw_path)
end


--- The path as received with "?query" when there is one.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_path_with_query()
  check(REQ)
  local p = str(C.sl_ffi_req_raw_path)
  local q = str(C.sl_ffi_req_raw_query)
  if q and q ~= "" then
    return p .. "?" .. q
  end
  return p
end


--- The query string as received, without "?".
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_raw_query()
  check(REQ)
  return str(C.sl_ffi_req_raw_query) or ""
end


--- The query arguments as a table (repeated names give arrays, a name
-- without a value gives true).
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_query(max_args)
  check(REQ)
  if max_args ~= nil then
    if type(max_args) ~= "number" then
      error("max_args must be a number", 2)
    end
    if max_args < 1 then
      error("max_args must be >= 1", 2)
    end
    if max_args > 1000 then
      error("max_args must be <= 1000", 2)
    end
  end
  return args.decode_args(_M.get_raw_query(), max_args or 100)
end


--- One query argument (the first when repeated).
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_query_arg(name)
  check(REQ)
  if type(name) ~= "string" then
    error("query argument name must be a string", 2)
  end
  local v = _M.get_query()[name]
  if type(v) == "table" then
    return v[1]
  end
  return v
end


local function norm_name(name)
  return (lower(name):gsub("_", "-"))
end


--- One request header, case-insensitive ("_" matches "-"); the first value.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_header(name)
  check(REQ)
  if type(name) ~= "string" then
    error("header name must be a string", 2)
  end
  local want = norm_name(name)
  local n = C.sl_ffi_req_header_count()
  for i = 0, n - 1 do
    C.sl_ffi_req_header(i, pp, pn, pp2, pn2)
    if lower(ffi_string(pp[0], pn[0])) == want then
      return ffi_string(pp2[0], pn2[0])
    end
  end
  return nil
end


local function headers_table(max)
  local t = {}
  local n = C.sl_ffi_req_header_count()
  if max and n > max then
    n = max
  end
  for i = 0, n - 1 do
    C.sl_ffi_req_header(i, pp, pn, pp2, pn2)
    local k = lower(ffi_string(pp[0], pn[0]))
    local v = ffi_string(pp2[0], pn2[0])
    local old = t[k]
    if old == nil then
      t[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      t[k] = { old, v }
    end
  end
  -- lookups with any case and "_" for "-", as ngx.req.get_headers
  return setmetatable(t, {
    __index = function(tbl, key)
      if type(key) == "string" then
        local nk = norm_name(key)
        if nk ~= key then
          return rawget(tbl, nk)
        end
      end
    end,
  })
end
_M._headers_table = headers_table


--- All request headers (lower-cased names; repeated ones as arrays).
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_headers(max_headers)
  check(REQ)
  if max_headers ~= nil then
    if type(max_headers) ~= "number" then
      error("max_headers must be a number", 2)
    end
    if max_headers < 1 then
      error("max_headers must be >= 1", 2)
    end
    if max_headers > 1000 then
      error("max_headers must be <= 1000", 2)
    end
  end
  return headers_table(max_headers or 100)
end


local SIZE_UNITS = { k = 1024, m = 1024 * 1024, g = 1024 * 1024 * 1024 }

local function size_bytes(v)
  if type(v) == "number" then
    return v
  end
  if type(v) ~= "string" then
    return nil
  end
  local n, unit = v:lower():match("^%s*(%d+)%s*([kmg]?)%s*$")
  if not n then
    return nil
  end
  return tonumber(n) * (SIZE_UNITS[unit] or 1)
end


local TOO_BIG = "request body did not fit into client body buffer, "
                .. "consider raising 'client_body_buffer_size'"

--- The request body (read once, then kept for the upstream). Bodies over
-- client_body_buffer_size give nil and Kong's error, unless max_file_size
-- (bytes) allows more.
-- @phases rewrite, access, response, admin_api
function _M.get_raw_body(max_file_size)
  check(BODY_PHASES)
  local limit = size_bytes(kong.configuration.client_body_buffer_size) or 8192
  if type(max_file_size) == "number" and max_file_size > limit then
    limit = max_file_size
  end
  local core = require "sluice.core"
  while true do
    local body, err = core.read_body(limit)
    if body then
      return body
    end
    if err == "too big" then
      return nil, TOO_BIG
    elseif err then
      return nil, "failed to read the request body (" .. tostring(err) .. ")"
    end
    -- resumed after waiting for more of the body: read again
  end
end


--- The decoded request body (see get_raw_body).
-- @phases rewrite, access, response, admin_api
function _M.get_body(mimetype)
  check(BODY_PHASES)
  local raw, err = _M.get_raw_body()
  if not raw then
    return nil, err
  end
  local ct = mimetype or _M.get_header("content-type")
  if not ct then
    return nil, "missing content type"
  end
  if find(ct, "application/json", 1, true) then
    local t = cjson.decode(raw)
    if type(t) ~= "table" then
      return nil, "invalid json body"
    end
    return t, nil, ct
  end
  if find(ct, "application/x-www-form-urlencoded", 1, true) then
    return args.decode_args(raw), nil, ct
  end
  return nil, "unsupported content type '" .. ct .. "'"
end


--- When the request started, in milliseconds since the epoch.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_start_time()
  check(REQ)
  return math.floor(C.sl_ffi_req_start_time() * 1000)
end


--- The captures of a regex route: { unnamed = {...}, named = {...} }.
-- @phases rewrite, access, header_filter, response, body_filter, log, admin_api
function _M.get_uri_captures()
  check(REQ)
  local unnamed, named = {}, {}
  local n = C.sl_ffi_req_capture_count()
  for i = 0, n - 1 do
    C.sl_ffi_req_capture(i, pp, pn, pp2, pn2)
    local v = pp2[0] ~= nil and ffi_string(pp2[0], pn2[0]) or false
    if pn[0] > 0 then
      named[ffi_string(pp[0], pn[0])] = v
    end
    unnamed[i] = v
  end
  return { unnamed = unnamed, named = named }
end


_M.str = str


return _M
