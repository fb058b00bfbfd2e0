-- A small blocking HTTP/1.1 client on luasocket (luasec for https) for the
-- specs; the shape follows Kong's spec.helpers http_client (itself on
-- lua-resty-http).
--
--   local c = http_client.new{ host = "127.0.0.1", port = 9000,
--                              timeout = 10000, -- ms, per socket operation
--                              scheme = "https", ssl_verify = false,
--                              server_name = "example.com" }
--   local res, err = c:send{ method = "POST", path = "/x",
--                            query = { a = 1 } or "a=1",
--                            headers = { ["Content-Type"] = "..." },
--                            body = "..." or {table} or function }
--   res.status, res.reason, res.version, res.headers["content-type"]
--   res:read_body()       -- whole body (cached); nil, err on failure
--   res:body_reader()     -- iterator: returns the next piece or nil
--   res:discard_body()    -- reads and drops the body, returns its size
--   c:get/post/put/patch/delete/head/options(path, opts)
--   c:send_raw(bytes); c:receive_raw_response(timeout_ms)
--   c:read_response{ method = "GET" }   -- parse a response after send_raw
--   c:close()
--
-- A table body is encoded by Content-Type: JSON (the default, which also
-- sets the header), application/x-www-form-urlencoded or
-- multipart/form-data. A function body is sent chunked: it is called until
-- it returns nil. The connection is kept alive between requests; when the
-- previous response ended it (Connection: close, HTTP/1.0, close-delimited)
-- the next request reconnects. `c.connects` counts TCP connections.

local socket = require "socket"
local cjson = require "cjson"


local setmetatable = setmetatable
local tonumber = tonumber
local tostring = tostring
local type = type
local pairs = pairs
local ipairs = ipairs
local error = error
local string_format = string.format
local string_lower = string.lower
local string_match = string.match
local string_find = string.find
local string_gsub = string.gsub
local string_byte = string.byte
local string_sub = string.sub
local table_concat = table.concat
local table_sort = table.sort
local math_min = math.min


local _M = {}
local Client = {}
local Response = {}


local client_mt = { __index = Client }
local response_mt = { __index = Response }


local READ_SIZE = 65536
local MAX_HEADER_LINES = 1000
local DEFAULT_TIMEOUT = 10000


-- Headers: a table keyed by the names as received, looked up
-- case-insensitively; a repeated header becomes an array of values.
local function headers_new()
  local lower = {}
  return setmetatable({}, {
    __index = function(t, k)
      if type(k) ~= "string" then
        return nil
      end
      local name = lower[string_lower(k)]
      return name and rawget(t, name)
    end,
    __newindex = function(t, k, v)
      local lk = string_lower(k)
      local name = lower[lk]
      if name and name ~= k then
        rawset(t, name, nil)
      end
      lower[lk] = v ~= nil and k or nil
      rawset(t, k, v)
    end,
  })
end
_M.headers_new = headers_new


local function headers_add(h, name, value)
  local old = h[name]
  if old == nil then
    h[name] = value
  elseif type(old) == "table" then
    old[#old + 1] = value
  else
    h[name] = { old, value }
  end
end


--- Case-insensitive lookup in a plain table: value, actual_key.
function _M.lookup(t, name)
  if type(t) ~= "table" then
    return nil
  end
  local v = t[name]
  if v ~= nil then
    return v, name
  end
  local ln = string_lower(name)
  for k, val in pairs(t) do
    if type(k) == "string" and string_lower(k) == ln then
      return val, k
    end
  end
  return nil
end
local lookup = _M.lookup


local function escape(s)
  return (string_gsub(tostring(s), "[^%w%-%._~]", function(c)
    return string_format("%%%02X", string_byte(c))
  end))
end
_M.escape = escape


--- Encodes a table as a query string (sorted keys; arrays repeat the key;
-- true gives a bare key; false is skipped).
function _M.encode_args(args)
  local keys = {}
  for k in pairs(args) do
    keys[#keys + 1] = tostring(k)
  end
  table_sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    local v = args[k]
    if v == nil then
      v = args[tonumber(k)]
    end
    local vals = type(v) == "table" and v or { v }
    for _, x in ipairs(vals) do
      if x == true then
        parts[#parts + 1] = escape(k)
      elseif x ~= false then
        parts[#parts + 1] = escape(k) .. "=" .. escape(x)
      end
    end
  end
  return table_concat(parts, "&")
end
local encode_args = _M.encode_args


local function encode_multipart(body, boundary)
  local keys = {}
  for k in pairs(body) do
    keys[#keys + 1] = tostring(k)
  end
  table_sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do
    parts[#parts + 1] = "--" .. boundary .. "\r\n"
      .. 'Content-Disposition: form-data; name="' .. k .. '"\r\n\r\n'
      .. tostring(body[k]) .. "\r\n"
  end
  parts[#parts + 1] = "--" .. boundary .. "--\r\n"
  return table_concat(parts)
end


-- Client ----------------------------------------------------------------


function _M.new(opts)
  if type(opts) ~= "table" then
    error("http_client.new expects an options table", 2)
  end
  local self = setmetatable({
    host = opts.host or "127.0.0.1",
    port = tonumber(opts.port),
    timeout = opts.timeout or DEFAULT_TIMEOUT,
    scheme = opts.scheme or "http",
    ssl_verify = opts.ssl_verify == true,
    server_name = opts.server_name,
    cafile = opts.cafile,
    connects = 0,
    requests = 0,
  }, client_mt)
  if not self.port then
    error("http_client.new: a port is required", 2)
  end
  local ok, err = self:connect()
  if not ok then
    return nil, err
  end
  return self
end


function Client:connect()
  self:close()
  local sock = socket.tcp()
  sock:settimeout(self.timeout / 1000)
  local ok, err = sock:connect(self.host, self.port)
  if not ok then
    sock:close()
    return nil, "failed to connect to " .. self.host .. ":" .. self.port
                .. ": " .. tostring(err)
  end
  sock:setoption("tcp-nodelay", true)

  if self.scheme == "https" then
    local ssl = require "ssl"
    local params = {
      mode = "client",
      protocol = "any",
      verify = self.ssl_verify and "peer" or "none",
      options = "all",
      cafile = self.cafile or
               (self.ssl_verify and "/etc/ssl/certs/ca-certificates.crt"),
    }
    local wrapped
    wrapped, err = ssl.wrap(sock, params)
    if not wrapped then
      sock:close()
      return nil, "ssl wrap failed: " .. tostring(err)
    end
    sock = wrapped
    local sni = self.server_name
    if not sni and not string_match(self.host, "^[%d%.]+$") then
      sni = self.host
    end
    if sni then
      sock:sni(sni)
    end
    sock:settimeout(self.timeout / 1000)
    ok, err = sock:dohandshake()
    if not ok then
      sock:close()
      return nil, "ssl handshake failed: " .. tostring(err)
    end
  end

  self.sock = sock
  self.connects = self.connects + 1
  self.pending = nil
  return true
end


function Client:close()
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
  self.pending = nil
  return true
end


function Client:set_timeout(ms)
  self.timeout = ms
  if self.sock then
    self.sock:settimeout(ms / 1000)
  end
end


-- Sends everything or fails. A peer may answer early (413, 400) and stop
-- reading: then the response, if one arrived, is kept in self.early.
function Client:_send(data)
  local ok, err = self.sock:send(data)
  if not ok then
    if err ~= "timeout" then
      self.sock:settimeout(0.5)
      local res = self:read_response({})
      if res then
        res.keepalive = false
        if self.sock then
          self.sock:settimeout(self.timeout / 1000)
        end
        self.early = res
        return nil, "send failed: " .. tostring(err)
      end
    end
    self:close()
    return nil, "send failed: " .. tostring(err)
  end
  return true
end


-- After a failed send: the early response, if any, else nil, err.
function Client:_early(err)
  local res = self.early
  self.early = nil
  if res then
    return res
  end
  return nil, err
end


local function default_port(scheme)
  return scheme == "https" and 443 or 80
end


function Client:build_request(opts)
  local method = opts.method or "GET"
  local path = opts.path or "/"
  local query = opts.query
  if type(query) == "table" then
    query = encode_args(query)
  elseif type(query) == "string" then
    query = string_gsub(query, "^%?", "")
  end
  if query and query ~= "" then
    path = path .. (string_find(path, "?", 1, true) and "&" or "?") .. query
  end

  local headers = {}
  local names = {}
  if opts.headers then
    for k, v in pairs(opts.headers) do
      headers[k] = v
      names[string_lower(k)] = k
    end
  end

  local function set_default(name, value)
    if not names[string_lower(name)] then
      headers[name] = value
      names[string_lower(name)] = name
    end
  end

  if self.port == default_port(self.scheme) then
    set_default("Host", self.host)
  else
    set_default("Host", self.host .. ":" .. self.port)
  end
  set_default("User-Agent", "sluice-spec-client/1.0")

  local body = opts.body
  local chunked = false
  if type(body) == "table" then
    local ct = headers[names["content-type"]] or ""
    if string_find(ct, "www-form-urlencoded", 1, true) then
      body = encode_args(body)
    elseif string_find(ct, "multipart/form-data", 1, true) then
      local boundary = string_match(ct, "boundary=([^;%s]+)")
      if not boundary then
        boundary = "sluice-spec-boundary"
        headers[names["content-type"]] = ct .. "; boundary=" .. boundary
      end
      body = encode_multipart(body, boundary)
    else
      set_default("Content-Type", "application/json")
      body = cjson.encode(body)
    end
  end

  if type(body) == "function" then
    chunked = true
    set_default("Transfer-Encoding", "chunked")
  elseif body ~= nil then
    body = tostring(body)
    set_default("Content-Length", #body)
  end

  local lines = {
    method .. " " .. path .. " HTTP/" .. (opts.version or "1.1"),
  }
  local hnames = {}
  for k in pairs(headers) do
    hnames[#hnames + 1] = k
  end
  table_sort(hnames)
  for _, k in ipairs(hnames) do
    local v = headers[k]
    if type(v) == "table" then
      for _, x in ipairs(v) do
        lines[#lines + 1] = k .. ": " .. tostring(x)
      end
    else
      lines[#lines + 1] = k .. ": " .. tostring(v)
    end
  end
  lines[#lines + 1] = "\r\n"
  local head = table_concat(lines, "\r\n")

  return head, body, chunked
end


--- Sends a request and reads the response head.
-- @return a response object, or nil, err
function Client:send(opts)
  opts = opts or {}

  if self.pending then
    local ok = self.pending:_drain()
    if not ok then
      self:close()
    end
  end

  if not self.sock then
    local ok, err = self:connect()
    if not ok then
      return nil, err
    end
  end

  local head, body, chunked = self:build_request(opts)

  self.early = nil
  if chunked then
    local ok, err = self:_send(head)
    if not ok then
      return self:_early(err)
    end
    for _ = 1, 1e7 do
      local chunk = body()
      if chunk == nil then
        break
      end
      chunk = tostring(chunk)
      if #chunk > 0 then
        ok, err = self:_send(string_format("%x\r\n", #chunk) .. chunk
                             .. "\r\n")
        if not ok then
          return self:_early(err)
        end
      end
    end
    ok, err = self:_send("0\r\n\r\n")
    if not ok then
      return self:_early(err)
    end

  else
    local ok, err = self:_send(body and head .. body or head)
    if not ok then
      return self:_early(err)
    end
  end

  self.requests = self.requests + 1
  return self:read_response({ method = opts.method or "GET" })
end


for _, m in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD",
                     "OPTIONS" }) do
  Client[string_lower(m)] = function(self, path, opts)
    local o = {}
    if opts then
      for k, v in pairs(opts) do
        o[k] = v
      end
    end
    o.method = m
    o.path = path
    return self:send(o)
  end
end


function Client:_receive(pattern)
  local data, err, partial = self.sock:receive(pattern)
  if not data then
    self:close()
    if partial and partial ~= "" then
      return nil, err, partial
    end
    return nil, err
  end
  return data
end


--- Reads one response head off the connection (skipping 1xx except 101).
-- opts.method = "HEAD" means no body follows.
function Client:read_response(opts)
  opts = opts or {}
  if not self.sock then
    return nil, "not connected"
  end

  local line, err, status, version, reason, headers
  for _ = 1, 100 do
    line, err = self:_receive("*l")
    if not line then
      return nil, "failed to read the status line: " .. tostring(err)
    end
    version, status, reason = string_match(line,
                                           "^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
    if not status then
      self:close()
      return nil, "bad status line: " .. line
    end
    status = tonumber(status)

    headers = headers_new()
    local last
    for _ = 1, MAX_HEADER_LINES + 1 do
      line, err = self:_receive("*l")
      if not line then
        return nil, "failed to read the headers: " .. tostring(err)
      end
      if line == "" then
        break
      end
      if string_match(line, "^[ \t]") and last then
        local v = headers[last]
        if type(v) == "table" then
          v[#v] = v[#v] .. " " .. string_match(line, "^%s*(.-)%s*$")
        else
          headers[last] = v .. " " .. string_match(line, "^%s*(.-)%s*$")
        end
      else
        local name, value = string_match(line, "^([^:]+):%s*(.-)%s*$")
        if not name then
          self:close()
          return nil, "bad header line: " .. line
        end
        headers_add(headers, name, value)
        last = name
      end
    end

    if status >= 200 or status == 101 then
      break
    end
  end

  local res = setmetatable({
    status = status,
    reason = reason,
    version = version,
    headers = headers,
    client = self,
  }, response_mt)

  local function hval(name)
    local v = headers[name]
    if type(v) == "table" then
      return string_lower(table_concat(v, ", "))
    end
    return v and string_lower(v)
  end

  local conn = hval("connection") or ""
  local keepalive
  if version == "1.0" then
    keepalive = string_find(conn, "keep-alive", 1, true) ~= nil
  else
    keepalive = string_find(conn, "close", 1, true) == nil
  end

  local te = hval("transfer-encoding")
  local cl = hval("content-length")

  if opts.method == "HEAD" or status < 200 or status == 204
     or status == 304
  then
    res.has_body = false
    res.framing = "none"
  elseif te and string_find(te, "chunked", 1, true) then
    res.framing = "chunked"
    res.chunk_left = 0
  elseif cl then
    local n = tonumber(string_match(cl, "^%s*(%d+)"))
    if not n then
      self:close()
      return nil, "bad Content-Length: " .. cl
    end
    res.framing = "length"
    res.remaining = n
  else
    res.framing = "close"
    keepalive = false
  end
  if res.has_body == nil then
    res.has_body = true
  end
  res.keepalive = keepalive

  if res.framing == "none" or (res.framing == "length"
                               and res.remaining == 0) then
    res.done = true
    res.body = ""
    if not keepalive then
      self:close()
    end
  else
    self.pending = res
  end

  return res
end


-- Response ----------------------------------------------------------------


function Response:_finish()
  self.done = true
  local c = self.client
  if c.pending == self then
    c.pending = nil
  end
  if not self.keepalive then
    c:close()
  end
end


function Response:_fail(err)
  self.done = true
  self.err = err
  local c = self.client
  if c.pending == self then
    c.pending = nil
  end
  c:close()
  return nil, err
end


--- Next piece of the body (at most `max` bytes), or nil at the end, or
-- nil, err.
function Response:read_chunk(max)
  if self.done then
    return nil, self.err
  end
  max = max or READ_SIZE
  local c = self.client
  if not c.sock or c.pending ~= self then
    return self:_fail("connection no longer holds this response")
  end

  if self.framing == "length" then
    local n = math_min(self.remaining, max)
    local data, err = c:_receive(n)
    if not data then
      return self:_fail("failed to read the body: " .. tostring(err))
    end
    self.remaining = self.remaining - #data
    if self.remaining == 0 then
      self:_finish()
    end
    return data

  elseif self.framing == "chunked" then
    if self.chunk_left == 0 then
      local line, err = c:_receive("*l")
      if not line then
        return self:_fail("failed to read a chunk size: " .. tostring(err))
      end
      local size = tonumber(string_match(line, "^%s*(%x+)"), 16)
      if not size then
        return self:_fail("bad chunk size line: " .. line)
      end
      if size == 0 then
        self.trailers = headers_new()
        for _ = 1, MAX_HEADER_LINES do
          line, err = c:_receive("*l")
          if not line then
            return self:_fail("failed to read the trailers: "
                              .. tostring(err))
          end
          if line == "" then
            break
          end
          local name, value = string_match(line, "^([^:]+):%s*(.-)%s*$")
          if name then
            headers_add(self.trailers, name, value)
          end
        end
        self:_finish()
        return nil
      end
      self.chunk_left = size
    end
    local n = math_min(self.chunk_left, max)
    local data, err = c:_receive(n)
    if not data then
      return self:_fail("failed to read a chunk: " .. tostring(err))
    end
    self.chunk_left = self.chunk_left - #data
    if self.chunk_left == 0 then
      local crlf
      crlf, err = c:_receive("*l")
      if crlf ~= "" then
        return self:_fail("missing CRLF after a chunk: "
                          .. tostring(crlf or err))
      end
    end
    return data

  else -- close-delimited
    local data, err, partial = c.sock:receive(max)
    if data then
      return data
    end
    if err == "closed" then
      self:_finish()
      c:close()
      if partial and partial ~= "" then
        return partial
      end
      return nil
    end
    return self:_fail("failed to read the body: " .. tostring(err))
  end
end


--- Iterator over the body pieces: `for piece in res:body_reader() do`.
function Response:body_reader(max)
  return function()
    local data, err = self:read_chunk(max)
    if not data and err then
      error(err, 2)
    end
    return data
  end
end


--- Reads the whole body (cached: later calls return the same string).
function Response:read_body()
  if self.body then
    return self.body
  end
  if self.done then
    return nil, self.err or "body already consumed"
  end
  local parts = {}
  for _ = 1, 1e9 do
    local data, err = self:read_chunk(READ_SIZE)
    if not data then
      if err then
        self.body_err = err
        return nil, err
      end
      break
    end
    parts[#parts + 1] = data
  end
  self.body = table_concat(parts)
  return self.body
end


--- Reads and drops the body; returns the number of bytes read.
function Response:discard_body()
  local n = 0
  for _ = 1, 1e9 do
    local data, err = self:read_chunk(READ_SIZE)
    if not data then
      if err then
        return nil, err, n
      end
      break
    end
    n = n + #data
  end
  self.body_size = n
  return n
end


function Response:_drain()
  if self.done then
    return true
  end
  local body, err = self:read_body()
  return body ~= nil, err
end


-- Raw access -------------------------------------------------------------


--- Sends bytes as they are (connecting first when needed). Whatever
-- response was in flight is abandoned.
function Client:send_raw(data)
  if self.pending then
    self:close()
  end
  if not self.sock then
    local ok, err = self:connect()
    if not ok then
      return nil, err
    end
  end
  return self:_send(data)
end


-- True when buf holds at least one whole HTTP response.
local function complete_response(buf)
  local head_end = string_find(buf, "\r\n\r\n", 1, true)
  if not head_end then
    return false
  end
  local head = string_lower(string_sub(buf, 1, head_end))
  local status = tonumber(string_match(head, "^http/%d%.%d (%d%d%d)"))
  if not status then
    return false
  end
  if status < 200 or status == 204 or status == 304 then
    return status >= 200
  end
  local body = string_sub(buf, head_end + 4)
  if string_find(head, "\ntransfer%-encoding:[^\n]*chunked") then
    return string_find(body, "\r?\n?0\r\n\r\n$") ~= nil
  end
  local cl = tonumber(string_match(head, "\ncontent%-length:%s*(%d+)"))
  if cl then
    return #body >= cl
  end
  return false
end


--- Reads whatever comes back: until the peer closes, a whole response is
-- buffered, nothing new arrives for `opts.idle` ms (default 300) after the
-- first byte, or `timeout` ms pass (default: the client's timeout).
-- @return data (possibly ""), and how it ended: "closed", "complete",
--         "idle" or "timeout"
function Client:receive_raw_response(timeout, opts)
  opts = opts or {}
  local sock = self.sock
  if not sock then
    return "", "closed"
  end
  local deadline = socket.gettime() + (timeout or self.timeout) / 1000
  local idle = (opts.idle or 300) / 1000
  local parts = {}
  local buf = ""
  local last_data = socket.gettime()
  local how = "timeout"
  while true do
    local now = socket.gettime()
    if now >= deadline then
      how = "timeout"
      break
    end
    if #buf > 0 and now - last_data >= idle then
      how = "idle"
      break
    end
    sock:settimeout(math_min(0.05, deadline - now))
    local data, err, partial = sock:receive(READ_SIZE)
    data = data or partial
    if data and #data > 0 then
      parts[#parts + 1] = data
      buf = table_concat(parts)
      parts = { buf }
      last_data = socket.gettime()
      if not opts.no_parse and complete_response(buf) then
        how = "complete"
        break
      end
    end
    if err == "closed" then
      how = "closed"
      break
    elseif err and err ~= "timeout" and err ~= "wantread" then
      how = err
      break
    end
  end
  if self.sock then
    self.sock:settimeout(self.timeout / 1000)
  end
  if how ~= "complete" and how ~= "idle" and how ~= "timeout" then
    self:close()
  end
  return buf, how
end


return _M
