-- ngx.socket.tcp: OpenResty's cosocket API over the C primitives of
-- core/lua/sl_lua_socket.c. Operations that must wait yield the running
-- coroutine (rewrite/access handlers, Admin API handlers, ngx.timer
-- callbacks) and raise "API disabled in the current context" elsewhere
-- (header_filter, body_filter, log), as OpenResty does.

local core = require "sluice.core"

local type = type
local tostring = tostring
local tonumber = tonumber
local concat = table.concat
local floor = math.floor
local error = error
local setmetatable = setmetatable

local sock_new = core.sock_new
local sock_connect = core.sock_connect
local sock_sslhandshake = core.sock_sslhandshake
local sock_send = core.sock_send
local sock_receive = core.sock_receive
local sock_receiveuntil = core.sock_receiveuntil
local sock_setkeepalive = core.sock_setkeepalive
local sock_close = core.sock_close
local sock_reused = core.sock_reused
local sock_settimeouts = core.sock_settimeouts


local _M = {}

local methods = {}

-- per-socket Lua-side state (timeouts as set), keyed weakly by the socket
local timeouts = setmetatable({}, { __mode = "k" })


local function check_timeout(v, name)
  v = tonumber(v)
  if not v or v < 0 then
    error("bad " .. name .. " argument", 3)
  end
  return floor(v)
end


local function get_timeouts(self)
  local t = timeouts[self]
  if not t then
    t = { 60000, 60000, 60000 }
    timeouts[self] = t
  end
  return t
end


function methods:settimeout(ms)
  ms = check_timeout(ms or 0, "timeout")
  local t = get_timeouts(self)
  t[1], t[2], t[3] = ms, ms, ms
  sock_settimeouts(self, ms, ms, ms)
end


function methods:settimeouts(connect, send, read)
  local t = get_timeouts(self)
  t[1] = check_timeout(connect or t[1], "connect timeout")
  t[2] = check_timeout(send or t[2], "send timeout")
  t[3] = check_timeout(read or t[3], "read timeout")
  sock_settimeouts(self, t[1], t[2], t[3])
end


--- connect(host, port, opts) or connect("unix:/path", opts).
function methods:connect(host, port, opts)
  if type(host) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got "
          .. type(host) .. ")", 2)
  end
  local unix = host:sub(1, 5) == "unix:"
  if unix and type(port) == "table" then
    opts = port
    port = nil
  end
  if not unix then
    port = tonumber(port)
    if not port or port < 1 or port > 65535 or port % 1 ~= 0 then
      return nil, "bad port number: " .. tostring(port)
    end
  end
  local pool = opts and opts.pool
  if pool ~= nil and type(pool) ~= "string" then
    error("bad \"pool\" option type: " .. type(pool), 2)
  end
  local key = pool or (unix and host or (host .. ":" .. port))
  return sock_connect(self, host, port, key)
end


--- sslhandshake(reused_session, server_name, ssl_verify, send_status_req)
-- Returns a truthy session value on success (Sluice does not resume TLS
-- sessions across connections; a pooled connection keeps its TLS layer).
function methods:sslhandshake(reused_session, server_name, ssl_verify)
  if server_name ~= nil and type(server_name) ~= "string" then
    error("bad server_name argument", 2)
  end
  local ok, err = sock_sslhandshake(self, server_name, ssl_verify and true or false)
  if not ok then
    return nil, err
  end
  if reused_session == false then
    return true
  end
  return true
end


-- flattens a (nested) array of strings/numbers/booleans as OpenResty does
local function flatten(t, out)
  for i = 1, #t do
    local v = t[i]
    local tv = type(v)
    if tv == "table" then
      flatten(v, out)
    elseif tv == "string" or tv == "number" then
      out[#out + 1] = v
    elseif tv == "boolean" then
      out[#out + 1] = tostring(v)
    elseif v == nil then
      out[#out + 1] = "nil"
    else
      error("bad argument #1 to 'send' (bad data type " .. tv .. " found)", 3)
    end
  end
  return out
end


function methods:send(data)
  local td = type(data)
  if td == "table" then
    data = concat(flatten(data, {}))
  elseif td == "number" or td == "boolean" then
    data = tostring(data)
  elseif td == "nil" then
    data = "nil"
  elseif td ~= "string" then
    error("bad argument #1 to 'send' (bad data type " .. td .. " found)", 2)
  end
  return sock_send(self, data)
end


--- receive("*l" | "*a" | n), default "*l"
function methods:receive(pattern)
  if pattern == nil or pattern == "*l" or pattern == "l" then
    return sock_receive(self, "l")
  end
  if pattern == "*a" or pattern == "a" then
    return sock_receive(self, "a")
  end
  local n = tonumber(pattern)
  if not n then
    error("bad argument #1 to 'receive' (bad pattern argument)", 2)
  end
  if n == 0 then
    return ""
  end
  return sock_receive(self, "n", n)
end


function methods:receiveany(max)
  max = tonumber(max)
  if not max or max < 1 then
    error("bad argument #1 to 'receiveany' (bad max argument)", 2)
  end
  return sock_receive(self, "any", max)
end


--- receiveuntil(pattern, { inclusive = bool }) -> iterator(size)
-- Without size the iterator returns the data before the next occurrence of
-- pattern (and consumes the pattern). With size it returns chunks of at most
-- size bytes, then nil (no error) once the pattern is consumed.
function methods:receiveuntil(pattern, opts)
  if type(pattern) ~= "string" or pattern == "" then
    error("bad argument #1 to 'receiveuntil' (pattern is empty)", 2)
  end
  local inclusive = opts and opts.inclusive and true or false
  return function(size)
    if size ~= nil then
      size = tonumber(size)
      if not size or size < 0 then
        error("bad size argument", 2)
      end
      if size == 0 then
        size = nil
      end
    end
    local data, err, partial = sock_receiveuntil(self, pattern, inclusive, size)
    if data == nil then
      return nil, err, partial
    end
    return data
  end
end


function methods:setkeepalive(timeout, size)
  if timeout ~= nil then
    timeout = check_timeout(timeout, "timeout")
    if timeout == 0 then
      timeout = -1  -- 0: kept until the worker exits
    end
  end
  if size ~= nil then
    size = tonumber(size)
    if not size or size < 1 then
      error("bad \"pool_size\" option value: " .. tostring(size), 2)
    end
  end
  return sock_setkeepalive(self, timeout or 60000, size)
end


function methods:getreusedtimes()
  return sock_reused(self)
end


function methods:close()
  return sock_close(self)
end


function methods:setoption()
  return true
end


function methods:getfd()
  return nil, "not supported"
end


core.cosocket_mt.__index = methods
core.cosocket_mt.__tostring = function()
  return "tcp socket"
end


function _M.tcp()
  return sock_new()
end


--- ngx.socket.connect(host, port, opts): tcp() + connect()
function _M.connect(host, port, opts)
  local sock = sock_new()
  local ok, err = sock:connect(host, port, opts)
  if not ok then
    return nil, err
  end
  return sock
end


_M.methods = methods

return _M
