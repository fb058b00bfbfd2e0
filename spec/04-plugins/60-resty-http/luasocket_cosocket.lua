-- OpenResty's ngx.socket.tcp() API over LuaSocket + LuaSec, blocking, for
-- running resty.http in the spec process against real servers (the nginx
-- mock upstream, spec.helpers.tcp_server). Not a model of Sluice's
-- cosockets: it only lets the HTTP layer be checked on real sockets.
--
-- Supported: settimeout(ms), settimeouts(c, s, r), connect(host, port,
-- { pool }) (pools are per process, keyed as OpenResty does),
-- sslhandshake(session, sni, verify), send(string | array), receive("*l" |
-- "*a" | n), setkeepalive(), getreusedtimes(), close(). Errors use
-- OpenResty's words: "timeout", "closed", "connection refused".

local socket = require "socket"
local ssl = require "ssl"


local _M = {}


local pools = {}   -- name -> array of { sock, reused }


local function flatten(data, out)
  if type(data) == "table" then
    for _, v in ipairs(data) do
      flatten(v, out)
    end
  else
    out[#out + 1] = tostring(data)
  end
  return out
end


local Sock = {}
Sock.__index = Sock


local function seconds(ms)
  return ms and ms / 1000 or 60
end


function Sock:settimeout(ms)
  self.timeouts = { ms, ms, ms }
end


function Sock:settimeouts(c, s, r)
  self.timeouts = { c, s, r }
end


function Sock:connect(host, port, opts)
  if type(port) ~= "number" then
    return nil, "unix sockets are not supported by the LuaSocket adapter"
  end
  local name = opts and opts.pool or (host .. ":" .. port)
  self.name = name
  local pool = pools[name]
  if pool and #pool > 0 then
    local entry = table.remove(pool)
    self.sock, self.reused = entry.sock, entry.reused + 1
    return 1
  end
  local sock = socket.tcp()
  sock:settimeout(seconds(self.timeouts[1]))
  local ok, err = sock:connect(host, port)
  if not ok then
    sock:close()
    return nil, err
  end
  self.sock, self.reused = sock, 0
  return 1
end


function Sock:getreusedtimes()
  if not self.sock then
    return nil, "closed"
  end
  return self.reused
end


function Sock:sslhandshake(_, sni, verify)
  if not self.sock then
    return nil, "closed"
  end
  local conn, err = ssl.wrap(self.sock, {
    mode = "client",
    protocol = "any",
    verify = verify and "peer" or "none",
    cafile = verify and "/etc/ssl/certs/ca-certificates.crt" or nil,
    options = { "all" },
  })
  if not conn then
    return nil, err
  end
  if sni then
    conn:sni(sni)
  end
  conn:settimeout(seconds(self.timeouts[1]))
  local ok
  ok, err = conn:dohandshake()
  if not ok then
    return nil, "handshake failed: " .. tostring(err)
  end
  self.sock = conn
  return true
end


function Sock:send(data)
  if not self.sock then
    return nil, "closed"
  end
  self.sock:settimeout(seconds(self.timeouts[2]))
  local s = table.concat(flatten(data, {}))
  local n, err = self.sock:send(s)
  if not n then
    self:close()
    return nil, err
  end
  return n
end


function Sock:receive(pat)
  if not self.sock then
    return nil, "closed"
  end
  self.sock:settimeout(seconds(self.timeouts[3]))
  local data, err, partial = self.sock:receive(pat or "*l")
  if not data and err ~= "timeout" then
    self:close()
  end
  if err == "wantread" then
    err = "timeout"
  end
  return data, err, partial
end


function Sock:setkeepalive()
  if not self.sock then
    return nil, "closed"
  end
  if self.sock.dirty and self.sock:dirty() then
    self:close()
    return nil, "unread data in buffer"
  end
  pools[self.name] = pools[self.name] or {}
  table.insert(pools[self.name], { sock = self.sock, reused = self.reused })
  self.sock = nil
  return 1
end


function Sock:close()
  if not self.sock then
    return nil, "closed"
  end
  self.sock:close()
  self.sock = nil
  return 1
end


function _M.tcp()
  return setmetatable({ timeouts = {} }, Sock)
end


--- Closes every pooled connection.
function _M.drain()
  for name, pool in pairs(pools) do
    for _, entry in ipairs(pool) do
      entry.sock:close()
    end
    pools[name] = nil
  end
end


return _M
