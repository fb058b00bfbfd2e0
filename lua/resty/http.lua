-- resty.http: an HTTP/1.0 and 1.1 client with lua-resty-http's API (0.17),
-- written for Sluice on ngx.socket.tcp() cosockets. Kong plugins that
-- `require "resty.http"` run on it unchanged.
--
--   local httpc = require("resty.http").new()
--   httpc:set_timeout(5000)
--   local res, err = httpc:request_uri("http://127.0.0.1:8080/x", {
--     method = "POST", body = "a=1", headers = { ["X-A"] = "1" },
--   })
--
-- Provides: new, set_timeout(s), connect (table and legacy forms, from
-- resty.http_connect), set_proxy_options, get_proxy_uri, set_keepalive,
-- get_reused_times, close, request, request_uri, request_pipeline,
-- parse_uri, get_client_body_reader, proxy_request, proxy_response, and
-- the deprecated connect_proxy and ssl_handshake.
--
-- Response bodies: Content-Length, chunked (trailers kept for
-- res:read_trailers()) and read-until-close, streamed by res.body_reader
-- (a plain closure over the socket: no coroutine, so it yields only where
-- the cosocket does). HEAD, 1xx, 204 and 304 responses have no body.
-- Interim 1xx responses are skipped; `Expect: 100-continue` holds the body
-- back until the 100 (or a read timeout) and drops it on a final status.
--
-- Keep-alive: set_keepalive() pools the connection only when both sides
-- allow it (HTTP/1.0 without "Connection: keep-alive", "Connection: close",
-- a read-until-close body or any I/O error forbid it: the connection is
-- closed and 2, "connection must be closed" returned) and every response
-- sent on it has been read to its end (else it is closed and
-- nil, "response not fully read" returned).
--
-- Runtime failures return nil, err (the cosocket's "timeout", "closed",
-- "connection refused"..., or a message about a malformed message); misuse
-- raises. Differences with lua-resty-http are listed in docs/pdk.md.

local http_headers = require "resty.http_headers"
local http_connect = require "resty.http_connect"
local ngx_args = require "sluice.ngx.args"


local setmetatable = setmetatable
local rawget = rawget
local pairs = pairs
local ipairs = ipairs
local type = type
local tostring = tostring
local tonumber = tonumber
local pcall = pcall
local error = error
local floor = math.floor
local lower = string.lower
local find = string.find
local sub = string.sub
local match = string.match
local gmatch = string.gmatch
local format = string.format
local concat = table.concat


local VERSION = "0.17.2"

local _M = {
  _VERSION = VERSION,
  VERSION = VERSION,
}

local mt = { __index = _M }


local MAX_HEAD_LINES = 1000     -- header (or trailer) lines in one head
local MAX_INTERIM = 20          -- 1xx responses before the final one
local CLIENT_BODY_CHUNK = 65536 -- get_client_body_reader's default size
local TOKEN = "^[%w!#$%%&'*+.^_`|~-]+$"
local BAD_TARGET = "[%z\1-\32\127]"
local BAD_VALUE = "[%z\r\n]"

local HOP_BY_HOP = {
  ["connection"] = true,
  ["keep-alive"] = true,
  ["proxy-authenticate"] = true,
  ["proxy-authorization"] = true,
  ["proxy-connection"] = true,
  ["te"] = true,
  ["trailer"] = true,
  ["transfer-encoding"] = true,
  ["upgrade"] = true,
}

-- requests that get "Content-Length: 0" when sent without a body
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }


_M.connect = http_connect.connect
_M.connect_proxy = http_connect.connect_proxy
_M.ssl_handshake = http_connect.ssl_handshake
_M.set_proxy_options = http_connect.set_proxy_options
_M.get_proxy_uri = http_connect.get_proxy_uri


local function user_agent()
  local version = ngx and ngx.config and ngx.config.ngx_lua_version or 0
  return "lua-resty-http/" .. VERSION .. " (Lua) ngx_lua/" .. version
end

_M._USER_AGENT = "lua-resty-http/" .. VERSION .. " (Lua)"


local function trim(s)
  return (match(s, "^[ \t]*(.-)[ \t]*$"))
end


-- A header value as one lower-case string (arrays joined), or "".
local function joined_lower(value)
  if type(value) == "table" then
    local parts = {}
    for i, v in ipairs(value) do
      parts[i] = tostring(v)
    end
    value = concat(parts, ", ")
  end
  return value ~= nil and lower(tostring(value)) or ""
end


-- Whether the comma-separated header value holds `token` (lower case).
local function has_token(value, token)
  for item in gmatch(joined_lower(value), "[^,]+") do
    if trim(item) == token then
      return true
    end
  end
  return false
end


-- Adds `value` under `name`, turning repeated names into arrays.
local function add_header(headers, name, value)
  local existing = headers[name]
  if existing == nil then
    headers[name] = value
  elseif type(existing) == "table" then
    existing[#existing + 1] = value
  else
    headers[name] = { existing, value }
  end
end


-- Constructors -------------------------------------------------------------


--- A new client over a new `ngx.socket.tcp()` (which raises where cosockets
-- are disabled, as in OpenResty).
-- @treturn table|nil client
-- @treturn string|nil err
function _M.new()
  local sock, err = ngx.socket.tcp()
  if not sock then
    return nil, err
  end
  return setmetatable({ sock = sock, keepalive = true, unread = 0 }, mt)
end


function _M.set_timeout(self, timeout)
  return self.sock:settimeout(timeout)
end


function _M.set_timeouts(self, connect_timeout, send_timeout, read_timeout)
  return self.sock:settimeouts(connect_timeout, send_timeout, read_timeout)
end


function _M.get_reused_times(self)
  return self.sock:getreusedtimes()
end


function _M.close(self)
  self.unread = 0
  return self.sock:close()
end


--- Pools the connection when that is safe, else closes it.
-- @treturn 1|2|nil 1 pooled; 2 closed because the protocol demands it
-- @treturn string|nil err ("connection must be closed" with 2)
function _M.set_keepalive(self, ...)
  if self.keepalive == true and (self.unread or 0) == 0 then
    return self.sock:setkeepalive(...)
  end
  local must_close = self.keepalive ~= true
  self.unread = 0
  self.sock:close()
  if must_close then
    return 2, "connection must be closed"
  end
  return nil, "response not fully read"
end


-- Body readers -------------------------------------------------------------
--
-- Each is a closure over the socket with its own state; `finish(ok,
-- trailers, closed)` is called once, when the body has been read to its
-- end (ok = true) or reading it failed. A reader returns a string, nil at
-- the end, or nil, err.


local function size_arg(size)
  if type(size) == "number" and size >= 1 then
    return floor(size)
  end
  return nil
end


local function no_body_reader()
  return nil
end


local function length_reader(sock, length, default_size, finish)
  local left = length
  local done = false
  if left == 0 then
    done = true
    finish(true)
  end

  return function(size)
    if done then
      return nil
    end
    size = size_arg(size) or default_size
    local n = (size and size < left) and size or left
    local data, err = sock:receive(n)
    if not data then
      done = true
      finish(false)
      return nil, err
    end
    left = left - n
    if left == 0 then
      done = true
      finish(true)
    end
    return data
  end
end


-- Reads header-like lines up to an empty one: an array of { name, value },
-- or nil, err.
local function receive_fields(sock, what)
  local fields = {}
  local n = 0
  while true do
    local line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    if line == "" then
      return fields
    end
    if n >= MAX_HEAD_LINES then
      return nil, "too many " .. what .. " lines"
    end
    local first = sub(line, 1, 1)
    if (first == " " or first == "\t") and n > 0 then
      -- obsolete line folding: continues the previous value
      local prev = fields[n]
      prev[2] = prev[2] .. " " .. trim(line)
    else
      local name, value = match(line, "^([^:%s]+)[ \t]*:(.*)$")
      if not name then
        return nil, "bad " .. what .. " line: " .. sub(line, 1, 80)
      end
      n = n + 1
      fields[n] = { name, trim(value) }
    end
  end
end


local function chunked_reader(sock, default_size, finish)
  local left = 0      -- bytes still to read in the current chunk
  local done = false

  local function fail(err)
    done = true
    finish(false)
    return nil, err
  end

  return function(size)
    if done then
      return nil
    end
    size = size_arg(size) or default_size

    if left == 0 then
      local line, err = sock:receive("*l")
      if not line then
        return fail(err)
      end
      local hex, ext = match(line, "^[ \t]*(%x+)[ \t]*(.*)$")
      if not hex or #hex > 12 or (ext ~= "" and sub(ext, 1, 1) ~= ";") then
        return fail("bad chunk size line: " .. sub(line, 1, 80))
      end
      left = tonumber(hex, 16)
      if left == 0 then
        local trailers
        trailers, err = receive_fields(sock, "trailer")
        if not trailers then
          return fail(err)
        end
        done = true
        finish(true, trailers[1] and trailers or nil)
        return nil
      end
    end

    local n = (size and size < left) and size or left
    local data, err = sock:receive(n)
    if not data then
      return fail(err)
    end
    left = left - n
    if left == 0 then
      local crlf
      crlf, err = sock:receive("*l")
      if not crlf then
        return fail(err)
      end
      if crlf ~= "" then
        return fail("bad chunk terminator")
      end
    end
    return data
  end
end


-- The body ends when the server closes the connection.
local function close_reader(sock, default_size, finish)
  local done = false

  return function(size)
    if done then
      return nil
    end
    size = size_arg(size) or default_size
    if size then
      local data, err, partial = sock:receive(size)
      if data then
        return data
      end
      done = true
      if err == "closed" then
        finish(true, nil, true)
        if partial and partial ~= "" then
          return partial
        end
        return nil
      end
      finish(false)
      return nil, err
    end

    local data, err = sock:receive("*a")
    done = true
    if not data then
      finish(false)
      return nil, err
    end
    finish(true, nil, true)
    if data == "" then
      return nil
    end
    return data
  end
end


-- Responses ----------------------------------------------------------------


local function res_read_body(res)
  local reader = res.body_reader
  if not reader then
    return nil, "no body to be read"
  end
  local chunks = {}
  local n = 0
  while true do
    local chunk, err = reader()
    if err then
      return nil, err
    end
    if not chunk then
      break
    end
    n = n + 1
    chunks[n] = chunk
  end
  return concat(chunks)
end


local function res_read_trailers(res)
  local trailers = rawget(res, "_trailers")
  if not trailers then
    return
  end
  res._trailers = nil
  for _, field in ipairs(trailers) do
    add_header(res.headers, field[1], field[2])
  end
end


-- Status line: status, reason, version (a number) or nil, err.
local function receive_status(sock)
  local line, err = sock:receive("*l")
  if not line then
    return nil, err
  end
  local major, minor, status, rest =
    match(line, "^HTTP/(%d)%.(%d)[ \t]+(%d%d%d)(.*)$")
  if not status or (rest ~= "" and not find(rest, "^[ \t]")) then
    return nil, "bad status line: " .. sub(line, 1, 80)
  end
  return tonumber(status), trim(rest), tonumber(major .. "." .. minor)
end


-- A whole head: { status, reason, version, headers } or nil, err.
local function receive_head(sock)
  local status, reason, version = receive_status(sock)
  if not status then
    return nil, reason
  end
  local fields, err = receive_fields(sock, "header")
  if not fields then
    return nil, err
  end
  local headers = http_headers.new()
  for _, field in ipairs(fields) do
    add_header(headers, field[1], field[2])
  end
  return { status = status, reason = reason, version = version,
           headers = headers }
end


-- Reads one response to a `method` request (its head unless `head` was
-- already read) into `res` (a new table by default) and sets up its body
-- reader. One unread response is accounted for in self.unread until its
-- body has been read to the end.
local function read_response(self, method, head, res)
  local sock = self.sock
  local err
  local interim = 0
  while true do
    if not head then
      head, err = receive_head(sock)
      if not head then
        self.keepalive = false
        return nil, err
      end
    end
    -- interim responses (100 Continue, 103 Early Hints...) are skipped
    if head.status >= 200 or head.status == 101 then
      break
    end
    interim = interim + 1
    if interim > MAX_INTERIM then
      self.keepalive = false
      return nil, "too many interim responses"
    end
    head = nil
  end

  local status, headers = head.status, head.headers
  local connection = headers["Connection"]
  if head.version < 1.1 then
    if not has_token(connection, "keep-alive") then
      self.keepalive = false
    end
  elseif has_token(connection, "close") then
    self.keepalive = false
  end
  if status == 101 then
    self.keepalive = false
  end

  res = res or {}
  res.status = status
  res.reason = head.reason
  res.headers = headers
  res.read_body = res_read_body
  res.read_trailers = res_read_trailers

  local completed = false
  local function finish(ok, trailers, closed)
    if completed then
      return
    end
    completed = true
    if ok then
      self.unread = self.unread - 1
    else
      self.keepalive = false
    end
    if closed then
      self.keepalive = false
    end
    if trailers then
      res._trailers = trailers
    end
  end

  local has_body = method ~= "HEAD" and status ~= 204 and status ~= 304
                   and status >= 200
  res.has_body = has_body

  if not has_body then
    res.body_reader = no_body_reader
    finish(true)
    return res
  end

  local te = headers["Transfer-Encoding"]
  if te ~= nil then
    if find(joined_lower(te), "chunked[ \t]*$") then
      res.body_reader = chunked_reader(sock, nil, finish)
    else
      self.keepalive = false
      res.body_reader = close_reader(sock, nil, finish)
    end
    return res
  end

  local cl = headers["Content-Length"]
  if cl ~= nil then
    if type(cl) == "table" then
      for i = 2, #cl do
        if trim(cl[i]) ~= trim(cl[1]) then
          self.keepalive = false
          return nil, "conflicting Content-Length headers"
        end
      end
      cl = cl[1]
    end
    local digits = match(cl, "^[ \t]*(%d+)[ \t]*$")
    if not digits or #digits > 15 then
      self.keepalive = false
      return nil, "bad Content-Length: " .. sub(cl, 1, 40)
    end
    res.body_reader = length_reader(sock, tonumber(digits), nil, finish)
    return res
  end

  self.keepalive = false
  res.body_reader = close_reader(sock, nil, finish)
  return res
end


-- Requests -----------------------------------------------------------------


local function check_header_value(name, value)
  local t = type(value)
  if t == "string" then
    if find(value, BAD_VALUE) then
      return nil, "bad value for header " .. name
    end
    return true
  end
  if t == "number" or t == "boolean" then
    return true
  end
  if t == "table" then
    for _, v in ipairs(value) do
      local vt = type(v)
      if vt ~= "string" and vt ~= "number" and vt ~= "boolean" then
        return nil, "bad value for header " .. name
      end
      if vt == "string" and find(v, BAD_VALUE) then
        return nil, "bad value for header " .. name
      end
    end
    return true
  end
  return nil, "bad value for header " .. name
end


local function body_length(body)
  local len = 0
  for i, item in ipairs(body) do
    local t = type(item)
    if t ~= "string" and t ~= "number" then
      return nil, "bad body: item " .. i .. " is a " .. t
    end
    len = len + #tostring(item)
  end
  return len
end


-- The host part of a Host header or an absolute URI.
local function host_authority(host, port, ssl)
  if find(host, ":", 1, true) and sub(host, 1, 1) ~= "[" then
    host = "[" .. host .. "]"
  end
  if port and port ~= (ssl and 443 or 80) then
    host = host .. ":" .. port
  end
  return host
end


-- Validates `params` and serializes the head. Returns
-- { head (array of strings), body, chunked, method, expect, keep } or
-- nil, err.
local function build_request(self, params)
  if type(params) ~= "table" then
    return nil, "params must be a table"
  end

  local version = params.version or 1.1
  if version ~= 1.0 and version ~= 1.1 then
    return nil, "unsupported HTTP version: " .. tostring(version)
  end

  local method = params.method or "GET"
  if type(method) ~= "string" or not find(method, TOKEN) then
    return nil, "bad method: " .. tostring(method)
  end

  local path = params.path or "/"
  if type(path) ~= "string" then
    return nil, "bad path: " .. tostring(path)
  end
  if path == "" then
    path = "/"
  end
  if find(path, BAD_TARGET) then
    return nil, "bad path: " .. sub(path, 1, 80)
  end

  local query = params.query
  if type(query) == "table" then
    query = ngx_args.encode_args(query)
  elseif query ~= nil and type(query) ~= "string" then
    return nil, "bad query: " .. tostring(query)
  end
  if query then
    if sub(query, 1, 1) == "?" then
      query = sub(query, 2)
    end
    if find(query, BAD_TARGET) then
      return nil, "bad query: " .. sub(query, 1, 80)
    end
    if query ~= "" then
      path = path .. (find(path, "?", 1, true) and "&" or "?") .. query
    end
  end
  if self.path_prefix and sub(path, 1, 1) == "/" then
    path = self.path_prefix .. path
  end

  local headers = http_headers.new()
  local given = params.headers
  if given ~= nil and type(given) ~= "table" then
    return nil, "headers must be a table"
  end
  if given then
    for name, value in pairs(given) do
      if type(name) ~= "string" or not find(name, TOKEN) then
        return nil, "bad header name: " .. tostring(name)
      end
      local ok, err = check_header_value(name, value)
      if not ok then
        return nil, err
      end
      headers[name] = value
    end
  end

  local body = params.body
  local btype = type(body)
  local chunked = false
  local te = headers["Transfer-Encoding"]
  if btype == "string" or btype == "table" then
    if headers["Content-Length"] == nil and te == nil then
      local len, err
      if btype == "string" then
        len = #body
      else
        len, err = body_length(body)
      end
      if not len then
        return nil, err
      end
      headers["Content-Length"] = len
    elseif btype == "table" then
      local ok, err = body_length(body)
      if not ok then
        return nil, err
      end
    end
    if btype == "table" then
      -- plain strings for the socket (numbers allowed in the array)
      local parts = {}
      for i, item in ipairs(body) do
        parts[i] = tostring(item)
      end
      body = parts
    end
  elseif btype == "function" then
    if te ~= nil then
      chunked = find(joined_lower(te), "chunked", 1, true) ~= nil
    elseif headers["Content-Length"] == nil then
      if version == 1.0 then
        return nil, "a body iterator needs a Content-Length with HTTP/1.0"
      end
      headers["Transfer-Encoding"] = "chunked"
      chunked = true
    end
  elseif body == nil then
    if BODY_METHODS[method] and headers["Content-Length"] == nil
       and te == nil then
      headers["Content-Length"] = 0
    end
  else
    return nil, "bad body: " .. btype
  end

  local host = headers["Host"]
  if host == nil then
    if self.unix then
      return nil, "Unable to generate a useful Host header for a unix "
                  .. "domain socket. Please provide one."
    end
    if not self.host then
      return nil, "no Host header given and no host connected"
    end
    host = host_authority(self.host, self.port, self.ssl)
  end

  if headers["User-Agent"] == nil then
    headers["User-Agent"] = user_agent()
  end
  if self.http_proxy_auth and headers["Proxy-Authorization"] == nil then
    headers["Proxy-Authorization"] = self.http_proxy_auth
  end

  local keep
  if version == 1.0 then
    keep = has_token(headers["Connection"], "keep-alive")
  else
    keep = not has_token(headers["Connection"], "close")
  end

  local expect = body ~= nil and version == 1.1
                 and joined_lower(headers["Expect"]) == "100-continue"

  local out = {
    method, " ", path, version == 1.0 and " HTTP/1.0\r\n" or " HTTP/1.1\r\n",
    "Host: ", tostring(type(host) == "table" and host[1] or host), "\r\n",
  }
  local n = #out
  for name, value in pairs(headers) do
    if lower(name) ~= "host" then
      if type(value) == "table" then
        for _, v in ipairs(value) do
          out[n + 1], out[n + 2], out[n + 3], out[n + 4] =
            name, ": ", tostring(v), "\r\n"
          n = n + 4
        end
      else
        out[n + 1], out[n + 2], out[n + 3], out[n + 4] =
          name, ": ", tostring(value), "\r\n"
        n = n + 4
      end
    end
  end
  out[n + 1] = "\r\n"

  return {
    head = out,
    body = body,
    chunked = chunked,
    method = method,
    expect = expect,
    keep = keep,
  }
end


-- Sends req.body (not yet sent with the head).
local function send_body(sock, req)
  local body = req.body
  if body == nil then
    return true
  end
  if type(body) ~= "function" then
    return sock:send(body)
  end
  while true do
    local chunk, err = body()
    if chunk == nil then
      if err then
        return nil, err
      end
      if req.chunked then
        return sock:send("0\r\n\r\n")
      end
      return true
    end
    local ct = type(chunk)
    if ct == "number" then
      chunk = tostring(chunk)
    elseif ct ~= "string" then
      return nil, "body iterator returned a " .. ct
    end
    if #chunk > 0 then
      local ok
      if req.chunked then
        ok, err = sock:send({ format("%x\r\n", #chunk), chunk, "\r\n" })
      else
        ok, err = sock:send(chunk)
      end
      if not ok then
        return nil, err
      end
    end
  end
end


-- Sends the head and, unless it must wait for a 100, the body.
local function send_request(self, req, hold_body)
  local sock = self.sock
  if not req.keep then
    self.keepalive = false
  end
  local out = req.head
  local body = req.body
  local ok, err
  if not hold_body and type(body) == "string" then
    out[#out + 1] = body
    ok, err = sock:send(out)
  elseif not hold_body and type(body) == "table" then
    for _, item in ipairs(body) do
      out[#out + 1] = item
    end
    ok, err = sock:send(out)
  else
    ok, err = sock:send(out)
    if ok and not hold_body then
      ok, err = send_body(sock, req)
    end
  end
  if not ok then
    self.keepalive = false
    return nil, err
  end
  self.unread = self.unread + 1
  return true
end


--- Sends one request on the connected socket and reads the response head.
-- @tparam table params version, method, path, query, headers, body
-- @treturn table|nil res: status, reason, headers, has_body, body_reader,
--   read_body, read_trailers
-- @treturn string|nil err
function _M.request(self, params)
  if (self.unread or 0) > 0 then
    return nil, "the previous response has not been read to its end"
  end
  local req, err = build_request(self, params or {})
  if not req then
    return nil, err
  end

  if not req.expect then
    local ok
    ok, err = send_request(self, req, false)
    if not ok then
      return nil, err
    end
    return read_response(self, req.method)
  end

  -- Expect: 100-continue
  local ok
  ok, err = send_request(self, req, true)
  if not ok then
    return nil, err
  end
  local sock = self.sock
  local head
  while true do
    head, err = receive_head(sock)
    if not head then
      if err ~= "timeout" then
        self.keepalive = false
        return nil, err
      end
      break             -- no 100 in time: send the body anyway
    end
    if head.status == 100 then
      head = nil
      break
    end
    if head.status >= 200 or head.status == 101 then
      -- a final answer: the body is not sent, the connection not reused
      self.keepalive = false
      return read_response(self, req.method, head)
    end
  end
  ok, err = send_body(sock, req)
  if not ok then
    self.keepalive = false
    return nil, err
  end
  return read_response(self, req.method)
end


--- Sends every request of `requests` at once, then returns lazily read
-- responses: a response's head is read on first access to one of its
-- fields; earlier responses are read (and their unread bodies discarded)
-- first. A failed read leaves `status` nil on that and later responses.
function _M.request_pipeline(self, requests)
  if type(requests) ~= "table" then
    error("bad argument #1 to 'request_pipeline' (table expected, got "
          .. type(requests) .. ")", 2)
  end
  if (self.unread or 0) > 0 then
    return nil, "the previous response has not been read to its end"
  end
  local reqs = {}
  for i, params in ipairs(requests) do
    local req, err = build_request(self, params)
    if not req then
      return nil, err
    end
    reqs[i] = req
  end
  for _, req in ipairs(reqs) do
    local ok, err = send_request(self, req, false)
    if not ok then
      return nil, err
    end
  end

  local responses = {}
  local loaded = 0
  local failed = false

  local function load(i)
    while loaded < i do
      local j = loaded + 1
      if j > 1 and not failed then
        local reader = rawget(responses[j - 1], "body_reader")
        if reader then
          repeat
            local chunk, err = reader()
            if err then
              failed = true
            end
          until not chunk
        end
      end
      if not failed then
        -- fields are plain assignments: the proxies have no __newindex
        if not read_response(self, reqs[j].method, nil, responses[j]) then
          failed = true
        end
      end
      loaded = j
    end
  end

  for i = 1, #reqs do
    responses[i] = setmetatable({}, {
      __index = function(t, k)
        load(i)
        return rawget(t, k)
      end,
    })
  end
  return responses
end


--- Splits a URI: { scheme, host, port, path } (query_in_path, the
-- default) or { scheme, host, port, path, query }. "//host/..." takes the
-- current request's scheme. IPv6 hosts keep their brackets.
function _M.parse_uri(_, uri, query_in_path)
  if query_in_path == nil then
    query_in_path = true
  end
  if type(uri) ~= "string" then
    return nil, "bad uri: " .. tostring(uri)
  end
  local scheme, rest = match(uri, "^(%a[%w+.-]*)://(.*)$")
  if scheme then
    scheme = lower(scheme)
    if scheme ~= "http" and scheme ~= "https" then
      return nil, "bad uri: " .. uri
    end
  else
    rest = match(uri, "^//(.*)$")
    if not rest then
      return nil, "bad uri: " .. uri
    end
    local ok, s = pcall(function()
      return ngx.var.scheme
    end)
    scheme = ok and (s == "https" and "https" or "http") or "http"
  end

  local authority, tail = match(rest, "^([^/?#]*)(.*)$")
  local host, port_part
  if sub(authority, 1, 1) == "[" then
    host, port_part = match(authority, "^(%[[^%]]+%])(.*)$")
  else
    host, port_part = match(authority, "^([^:@]*)(.*)$")
  end
  if not host or host == "" then
    return nil, "bad uri: " .. uri
  end
  local port
  if port_part == "" then
    port = scheme == "https" and 443 or 80
  else
    port = tonumber(match(port_part, "^:(%d+)$"))
    if not port or port < 1 or port > 65535 then
      return nil, "bad uri: " .. uri
    end
  end

  local path = match(tail, "^([^?#]*)")
  local query = match(tail, "^[^?#]*%?([^#]*)") or ""
  if path == "" then
    path = "/"
  end
  if query_in_path then
    if query ~= "" then
      path = path .. "?" .. query
    end
    return { scheme, host, port, path }
  end
  return { scheme, host, port, path, query }
end


--- The single-shot interface: connect, request, read the whole body (and
-- trailers, merged into res.headers), then pool or close the connection.
-- params: anything connect() and request() take, plus keepalive (false to
-- close), keepalive_timeout (ms), keepalive_pool. The URI gives the
-- scheme, host and port; params.path and params.query override its own.
-- @treturn table|nil res with status, reason, headers, body
-- @treturn string|nil err
function _M.request_uri(self, uri, params)
  local opts = {}
  if params ~= nil then
    if type(params) ~= "table" then
      error("bad argument #2 to 'request_uri' (table expected, got "
            .. type(params) .. ")", 2)
    end
    for k, v in pairs(params) do
      opts[k] = v
    end
  end

  local parsed, err = self:parse_uri(uri, false)
  if not parsed then
    return nil, err
  end
  local path, query
  opts.scheme, opts.host, opts.port, path, query =
    parsed[1], parsed[2], parsed[3], parsed[4], parsed[5]
  opts.path = opts.path or path
  if opts.query == nil and query ~= "" then
    opts.query = query
  end

  local ok
  ok, err = self:connect(opts)
  if not ok then
    return nil, err
  end

  local res
  res, err = self:request(opts)
  if not res then
    self:close()
    return nil, err
  end

  local body
  body, err = res:read_body()
  if not body then
    self:close()
    return nil, err
  end
  res.body = body
  res:read_trailers()

  if opts.keepalive == false then
    self:close()
  else
    self:set_keepalive(opts.keepalive_timeout, opts.keepalive_pool)
  end
  return res
end


-- Downstream helpers -------------------------------------------------------


--- An iterator over the client's request body, read from ngx.req.socket()
-- (or `sock`) by `chunksize` bytes (65536). nil when the request has no
-- body; nil, err when the request socket is not available (Sluice does not
-- provide ngx.req.socket yet).
function _M.get_client_body_reader(_, chunksize, sock)
  chunksize = size_arg(chunksize) or CLIENT_BODY_CHUNK
  if not sock then
    local req = ngx and ngx.req
    if not (req and req.socket) then
      return nil, "ngx.req.socket is not available"
    end
    local ok, s, err = pcall(req.socket)
    if not ok then
      return nil, tostring(s)
    end
    if not s then
      return nil, err
    end
    sock = s
  end
  local headers = ngx.req.get_headers()
  local te = headers["transfer-encoding"]
  local cl = headers["content-length"]
  local function finish()
  end
  if te ~= nil and find(joined_lower(te), "chunked", 1, true) then
    return chunked_reader(sock, chunksize, finish)
  end
  if type(cl) == "table" then
    cl = cl[1]
  end
  cl = tonumber(cl)
  if cl then
    return length_reader(sock, cl, chunksize, finish)
  end
  return nil
end


--- Sends the current client request (method, raw URI, headers minus
-- hop-by-hop ones, body) on the connected socket. The body is streamed
-- from ngx.req.socket() when available, else taken from the buffered
-- body (ngx.req.read_body / get_body_data).
function _M.proxy_request(self, chunksize)
  local req = ngx.req
  local headers = {}
  for name, value in pairs(req.get_headers()) do
    if not HOP_BY_HOP[lower(name)] then
      headers[name] = value
    end
  end

  local body = self:get_client_body_reader(chunksize)
  if not body then
    local cl = tonumber(headers["content-length"])
    headers["content-length"] = nil
    req.read_body()
    body = req.get_body_data()
    if body == nil and cl and cl > 0 then
      return nil, "the client request body is not available"
    end
  end

  return self:request({
    method = req.get_method(),
    path = ngx.var.request_uri,
    headers = headers,
    body = body,
  })
end


--- Copies `res` to the current response: status, headers (minus
-- hop-by-hop ones and Content-Length), body through ngx.print. In
-- Sluice's rewrite/access, the output is sent by a following
-- ngx.exit(ngx.OK).
function _M.proxy_response(_, res, chunksize)
  if not res then
    ngx.log(ngx.ERR, "no response provided")
    return
  end
  ngx.status = res.status
  for name, value in pairs(res.headers) do
    local lname = lower(name)
    if not HOP_BY_HOP[lname] and lname ~= "content-length" then
      ngx.header[name] = value
    end
  end
  local reader = res.body_reader
  while true do
    local chunk, err = reader(chunksize)
    if err then
      ngx.log(ngx.ERR, err)
      break
    end
    if not chunk then
      break
    end
    local ok, perr = ngx.print(chunk)
    if not ok then
      ngx.log(ngx.ERR, perr)
      break
    end
  end
end


return _M
