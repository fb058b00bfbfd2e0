-- What the function-platform plugins (azure-functions, openfaas, openwhisk)
-- share, as pre-function/_handler.lua is shared by post-function:
--
--   local upstream = require "kong.plugins.azure-functions._upstream"
--
-- - path_suffix(): the request path after the part the route matched;
--   target_path(base, forward): base with it appended when asked;
-- - forward_headers(): the client's headers without hop-by-hop ones;
-- - read_body(): the raw request body, or a 413 answer; request_body():
--   the same, nil when empty on a method that carries none;
-- - raw_query(): the client's query string, nil when empty;
-- - call(opts): one HTTP exchange over resty.http (cosockets: the worker
--   never blocks), returning { status, headers, body } or nil, err;
-- - fail(what, err): logs and answers 504 on a timeout, else 502, with
--   Kong's JSON messages;
-- - relay(status, headers, body, via): answers with the platform's
--   response, hop-by-hop and framing headers dropped, Via added when
--   kong.conf `headers` has it;
-- - invoke(conf, opts, what): call() with conf's connection settings,
--   then relay() with VIA, or fail().

local http = require "resty.http"
local meta = require "kong.meta"


local kong = kong
local ngx = ngx
local type = type
local pairs = pairs
local ipairs = ipairs
local tostring = tostring
local lower = string.lower
local find = string.find
local sub = string.sub
local gsub = string.gsub
local byte = string.byte
local format = string.format
local concat = table.concat


local _M = {}


_M.SERVER_TOKENS = meta._SERVER_TOKENS
_M.VIA = "1.1 " .. meta._SERVER_TOKENS


-- RFC 9110 7.6.1 and the list OpenFaaS drops; plus what the gateway sets
-- itself on the platform request (host, framing, expect)
local HOP_BY_HOP = {
  ["connection"] = true,
  ["keep-alive"] = true,
  ["proxy-connection"] = true,
  ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true,
  ["te"] = true,
  ["trailer"] = true,
  ["transfer-encoding"] = true,
  ["upgrade"] = true,
}
_M.HOP_BY_HOP = HOP_BY_HOP

local SKIP_REQUEST = {
  ["host"] = true,
  ["content-length"] = true,
  ["expect"] = true,
}

local SKIP_RESPONSE = {
  ["content-length"] = true,
}


--- Is the Via header enabled by kong.conf `headers` (server_tokens or Via)?
function _M.via_enabled()
  local h = kong.configuration.headers
  if h == nil then
    return true
  end
  if type(h) ~= "table" then
    h = { h }
  end
  for _, item in pairs(h) do
    for name in tostring(item):gmatch("[^,%s]+") do
      name = lower(name)
      if name == "server_tokens" or name == "via" then
        return true
      end
    end
  end
  return false
end


-- bytes outside RFC 3986 pchar and "/" are escaped; "%" stays (the
-- normalized path keeps reserved characters as %XX)
local function escape_byte(c)
  return format("%%%02X", byte(c))
end

function _M.escape_path(p)
  return (gsub(p, "[^%w%-%._~!%$&'%(%)%*%+,;=:@/%%]", escape_byte))
end


--- The part of `path` after what one of `paths` (a route's paths: prefixes,
-- or "~regex" anchored at the start) matched; the longest match wins, as
-- the router's. The whole path when nothing matches (no paths).
-- @return suffix ("" or starting anywhere), or nil, err for a suffix with
--   dot segments
function _M.suffix_of(path, paths)
  local best = 0
  if type(paths) == "table" then
    for _, p in ipairs(paths) do
      if type(p) == "string" then
        if sub(p, 1, 1) == "~" then
          local from, to = ngx.re.find(path, sub(p, 2), "ajo")
          if from and to > best then
            best = to
          end
        elseif sub(path, 1, #p) == p and #p > best then
          best = #p
        end
      end
    end
  end
  local suffix = sub(path, best + 1)
  for seg in (suffix .. "/"):gmatch("([^/]*)/") do
    if seg == "." or seg == ".." then
      return nil, "dot segment in the path suffix"
    end
  end
  return suffix
end


--- The request's path suffix after the matched route path (escaped).
function _M.path_suffix()
  local route = kong.router.get_route()
  local suffix, err = _M.suffix_of(kong.request.get_path(),
                                   route and route.paths)
  if not suffix then
    return nil, err
  end
  return _M.escape_path(suffix)
end


--- base .. "/" .. suffix with exactly one slash between (none when the
-- suffix is empty or only slashes).
function _M.join_path(base, suffix)
  suffix = gsub(suffix or "", "^/+", "")
  if suffix == "" then
    return base
  end
  if sub(base, -1) == "/" then
    return base .. suffix
  end
  return base .. "/" .. suffix
end


--- The path to call: `base`, with the request's path suffix joined when
-- `forward` (a plugin's forward_path).
-- @return the path, or nil, err for a suffix with dot segments
function _M.target_path(base, forward)
  if not forward then
    return base
  end
  local suffix, err = _M.path_suffix()
  if not suffix then
    return nil, err
  end
  return _M.join_path(base, suffix)
end


--- The client's request headers (lower-case names, arrays for repeated
-- ones) minus hop-by-hop ones, those named by Connection, Host,
-- Content-Length and Expect.
function _M.forward_headers()
  local src = kong.request.get_headers(1000)
  local drop = {}
  local conn = src["connection"]
  if conn then
    if type(conn) ~= "table" then
      conn = { conn }
    end
    for _, v in ipairs(conn) do
      for token in tostring(v):gmatch("[^,%s]+") do
        drop[lower(token)] = true
      end
    end
  end
  local out = {}
  for name, value in pairs(src) do
    if not HOP_BY_HOP[name] and not SKIP_REQUEST[name] and not drop[name]
    then
      out[name] = value
    end
  end
  return out
end


--- The raw request body; on a body too large for client_body_buffer_size
-- the request ends with 413.
function _M.read_body()
  local body, err = kong.request.get_raw_body()
  if not body then
    kong.log.warn("could not read the request body: ", err)
    return kong.response.error(413, err)
  end
  return body
end


-- methods whose empty body is still sent
local BODY_METHODS = {
  POST = true,
  PUT = true,
  PATCH = true,
}


--- The body to send for `method`: read_body(), nil when it is empty and
-- the method is not POST, PUT or PATCH.
function _M.request_body(method)
  local body = _M.read_body()
  if body == "" and not BODY_METHODS[method] then
    return nil
  end
  return body
end


--- The client's raw query string; nil when empty.
function _M.raw_query()
  local query = kong.request.get_raw_query()
  if query == "" then
    return nil
  end
  return query
end


--- The Host header value for host:port under scheme (no port when it is
-- the scheme's default; IPv6 literals bracketed).
function _M.host_header(host, port, https)
  if find(host, ":", 1, true) then
    host = "[" .. host .. "]"
  end
  if port == (https and 443 or 80) then
    return host
  end
  return host .. ":" .. port
end


--- One exchange with the platform.
-- opts: https, host, port, ssl_verify, timeout (ms), keepalive (ms),
--       method, path, query (string|table|nil), headers, body
-- @return { status, headers, body }, or nil, err, stage ("connect" |
--   "request" | "read")
function _M.call(opts)
  local httpc = http.new()
  httpc:set_timeouts(opts.timeout, opts.timeout, opts.timeout)
  local ok, err = httpc:connect({
    scheme = opts.https and "https" or "http",
    host = opts.host,
    port = opts.port,
    ssl_verify = opts.ssl_verify == true,
    ssl_server_name = opts.host,
  })
  if not ok then
    return nil, err, "connect"
  end

  local headers = opts.headers or {}
  headers["Host"] = _M.host_header(opts.host, opts.port, opts.https)
  local res
  res, err = httpc:request({
    method = opts.method,
    path = opts.path,
    query = opts.query,
    headers = headers,
    body = opts.body,
  })
  if not res then
    httpc:close()
    return nil, err, "request"
  end

  local body = ""
  if res.has_body ~= false and opts.method ~= "HEAD" then
    body, err = res:read_body()
    if not body then
      httpc:close()
      return nil, err, "read"
    end
  end

  ok, err = httpc:set_keepalive(opts.keepalive)
  if not ok then
    kong.log.warn("could not keep the connection alive: ", err)
  end
  return { status = res.status, headers = res.headers, body = body }
end


local function is_timeout(err)
  return type(err) == "string" and find(err, "timeout", 1, true) ~= nil
end
_M.is_timeout = is_timeout


--- Logs `what: err` and answers 504 for a timeout, else 502.
function _M.fail(what, err)
  kong.log.err(what, ": ", err)
  if is_timeout(err) then
    return kong.response.error(504)
  end
  return kong.response.error(502)
end


--- The platform's headers to relay: hop-by-hop and Content-Length dropped.
function _M.response_headers(headers)
  local out = {}
  for name, value in pairs(headers or {}) do
    local l = lower(name)
    if not HOP_BY_HOP[l] and not SKIP_RESPONSE[l] then
      out[name] = value
    end
  end
  return out
end


--- Answers with the platform's response. via: the Via value to add
-- ("1.1 kong/x" appended to the platform's, or set) when enabled.
function _M.relay(status, headers, body, via)
  local out = _M.response_headers(headers)
  if via and _M.via_enabled() then
    local old
    for name, value in pairs(out) do
      if lower(name) == "via" then
        old = type(value) == "table" and concat(value, ", ") or value
        out[name] = nil
      end
    end
    out["Via"] = old and (old .. ", " .. via) or via
  end
  return kong.response.exit(status, body, out)
end


--- One exchange as call(opts), with https, ssl_verify, timeout and
-- keepalive from the plugin's conf (https, https_verify, timeout,
-- keepalive); answers with the platform's response (Via: VIA), or as
-- fail(what, err) does.
function _M.invoke(conf, opts, what)
  opts.https = conf.https
  opts.ssl_verify = conf.https_verify
  opts.timeout = conf.timeout
  opts.keepalive = conf.keepalive
  local res, err = _M.call(opts)
  if not res then
    return _M.fail(what, err)
  end
  return _M.relay(res.status, res.headers, res.body, _M.VIA)
end


return _M
