-- resty.http_connect: how a resty.http client gets its connection
-- (lua-resty-http 0.17 API), written for Sluice on ngx.socket.tcp().
--
-- Provides the methods resty.http installs on its clients:
--   connect(options)                   the table form: TCP (or unix socket),
--                                      HTTP proxy (CONNECT tunnel for
--                                      https), TLS handshake; the default
--                                      pool name covers all of these
--   connect(host, port?, options?)     the older TCP-only form (deprecated)
--   connect_proxy(proxy_uri, scheme, host, port, proxy_authorization)
--   ssl_handshake(session, server_name, verify)          (deprecated)
--   set_proxy_options(opts), get_proxy_uri(scheme, host)
--
-- A pooled connection (getreusedtimes() > 0) already went through the
-- tunnel and the handshake, so neither is repeated for it.
-- Runtime failures return nil, err; the socket is closed first.

local lower = string.lower
local find = string.find
local sub = string.sub
local match = string.match
local gmatch = string.gmatch
local concat = table.concat
local type = type
local tostring = tostring
local tonumber = tonumber


local _M = {}


local DEFAULT_PORTS = { http = 80, https = 443 }


local function trim(s)
  return (match(s, "^%s*(.-)%s*$"))
end


-- Splits "http://host[:port][/...]" into host and port (80 by default).
-- Only http proxies are supported, as in lua-resty-http.
local function parse_proxy_uri(uri)
  if type(uri) ~= "string" then
    return nil, "bad proxy uri: " .. tostring(uri)
  end
  local scheme, rest = match(uri, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil, "bad proxy uri: " .. uri
  end
  if lower(scheme) ~= "http" then
    return nil, "protocol " .. scheme .. " not supported for proxy "
                .. "connections"
  end
  local authority = match(rest, "^([^/?#]*)")
  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  else
    host, port = match(authority, "^([^:@]+):?(%d*)$")
  end
  if not host or host == "" then
    return nil, "bad proxy uri: " .. uri
  end
  port = port ~= "" and tonumber(port) or 80
  return host, port
end


-- Whether `host` matches the comma-separated `no_proxy` list: "*" matches
-- everything, "example.com" (or ".example.com") matches example.com and
-- its subdomains.
local function no_proxy_match(no_proxy, host)
  if type(no_proxy) ~= "string" then
    return false
  end
  host = lower(host)
  for item in gmatch(no_proxy, "[^,]+") do
    item = lower(trim(item))
    if item == "*" then
      return true
    end
    if sub(item, 1, 1) == "." then
      item = sub(item, 2)
    end
    if item ~= "" then
      if host == item then
        return true
      end
      local n = #item
      if #host > n + 1 and sub(host, -n - 1) == "." .. item then
        return true
      end
    end
  end
  return false
end


--- Sets the HTTP proxy options used by later table-form connects:
-- http_proxy, http_proxy_authorization, https_proxy,
-- https_proxy_authorization, no_proxy.
function _M.set_proxy_options(self, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #1 to 'set_proxy_options' (table expected, got "
          .. type(opts) .. ")", 2)
  end
  self.proxy_opts = opts
end


--- The proxy URI to use for `scheme`://`host`, or nil.
function _M.get_proxy_uri(self, scheme, host, opts)
  opts = opts or self.proxy_opts
  if type(opts) ~= "table" then
    return nil
  end
  if host and no_proxy_match(opts.no_proxy, host) then
    return nil
  end
  if scheme == "https" then
    return opts.https_proxy
  end
  if scheme == "http" then
    return opts.http_proxy
  end
  return nil
end


-- Asks the proxy at the other end of `sock` for a tunnel to host:port.
local function tunnel(sock, host, port, authorization)
  local authority = (find(host, ":", 1, true) and "[" .. host .. "]" or host)
                    .. ":" .. port
  local req = {
    "CONNECT ", authority, " HTTP/1.1\r\n",
    "Host: ", authority, "\r\n",
  }
  if authorization then
    req[#req + 1] = "Proxy-Authorization: "
    req[#req + 1] = authorization
    req[#req + 1] = "\r\n"
  end
  req[#req + 1] = "\r\n"

  local ok, err = sock:send(concat(req))
  if not ok then
    return nil, err
  end
  local line
  line, err = sock:receive("*l")
  if not line then
    return nil, err
  end
  local status = tonumber(match(line, "^HTTP/%d%.%d%s+(%d%d%d)"))
  if not status then
    return nil, "bad status line from proxy: " .. line
  end
  -- the proxy's head; a 2xx CONNECT answer has no body
  for _ = 1, 200 do
    line, err = sock:receive("*l")
    if not line then
      return nil, err
    end
    if line == "" then
      break
    end
  end
  if status < 200 or status > 299 then
    return nil, "failed to establish a tunnel through a proxy: " .. status
  end
  return true
end


-- Resets the per-connection state of the client.
local function reset(self)
  self.keepalive = true
  self.unread = 0
  self.http_proxy_auth = nil
  self.path_prefix = nil
end


-- The table form of connect.
local function connect_table(self, options)
  local sock = self.sock
  local scheme = options.scheme
  local host = options.host
  if type(host) ~= "string" or host == "" then
    return nil, "no host given"
  end

  local unix = sub(host, 1, 5) == "unix:"
               or (scheme == nil and options.port == nil
                   and sub(host, 1, 1) == "/")
  if unix then
    local path = sub(host, 1, 5) == "unix:" and host or "unix:" .. host
    reset(self)
    self.host, self.port, self.scheme, self.ssl, self.unix =
      nil, nil, nil, false, true
    local ok, err = sock:connect(path, {
      pool = options.pool,
      pool_size = options.pool_size,
      backlog = options.backlog,
    })
    if not ok then
      return nil, err
    end
    return true
  end

  scheme = lower(scheme or "http")
  if not DEFAULT_PORTS[scheme] then
    return nil, "unsupported scheme: " .. scheme
  end
  local port = options.port or DEFAULT_PORTS[scheme]
  port = tonumber(port)
  if not port or port < 1 or port > 65535 or port % 1 ~= 0 then
    return nil, "invalid port: " .. tostring(options.port)
  end
  -- "[::1]" from a parsed URI: the brackets are not part of the address
  local addr = match(host, "^%[(.+)%]$") or host

  local ssl = scheme == "https"
  if ssl and (options.ssl_client_cert or options.ssl_client_priv_key)
     and not sock.setclientcert then
    return nil, "client certificates (mTLS) are not supported by Sluice yet"
  end
  local ssl_verify = options.ssl_verify ~= false
  local ssl_server_name = options.ssl_server_name or addr

  local proxy_uri = self:get_proxy_uri(scheme, addr, options.proxy_opts)
  local proxy_opts = options.proxy_opts or self.proxy_opts
  local proxy_host, proxy_port, proxy_auth
  if proxy_uri then
    proxy_host, proxy_port = parse_proxy_uri(proxy_uri)
    if not proxy_host then
      return nil, proxy_port
    end
    if ssl then
      proxy_auth = proxy_opts.https_proxy_authorization
    else
      proxy_auth = proxy_opts.http_proxy_authorization
    end
  end

  local pool = options.pool
  if not pool then
    local parts = { addr, ":", port }
    if ssl then
      parts[#parts + 1] = ":" .. tostring(ssl_server_name) .. ":"
                          .. tostring(ssl_verify)
    end
    if proxy_uri then
      parts[#parts + 1] = ":" .. proxy_uri .. ":"
      if proxy_auth then
        -- credentials are part of the key but not spelled out in it
        local md5 = ngx and ngx.md5
        parts[#parts + 1] = md5 and md5(proxy_auth) or proxy_auth
      end
    end
    pool = concat(parts)
  end

  reset(self)
  self.host, self.port, self.scheme, self.ssl, self.unix =
    addr, port, scheme, ssl, false

  local ok, err
  if proxy_host then
    ok, err = sock:connect(proxy_host, proxy_port, {
      pool = pool,
      pool_size = options.pool_size,
      backlog = options.backlog,
    })
  else
    ok, err = sock:connect(addr, port, {
      pool = pool,
      pool_size = options.pool_size,
      backlog = options.backlog,
    })
  end
  if not ok then
    return nil, err
  end

  local fresh = (sock:getreusedtimes() or 0) == 0

  if proxy_host and not ssl then
    -- plain http through the proxy: absolute-form request targets
    self.path_prefix = "http://" .. (find(addr, ":", 1, true)
                                       and "[" .. addr .. "]" or addr)
                       .. (port ~= 80 and ":" .. port or "")
    self.http_proxy_auth = proxy_auth
    return true
  end

  if proxy_host and fresh then
    ok, err = tunnel(sock, addr, port, proxy_auth)
    if not ok then
      sock:close()
      return nil, err
    end
  end

  local session
  if ssl then
    if fresh and (options.ssl_client_cert or options.ssl_client_priv_key)
    then
      ok, err = sock:setclientcert(options.ssl_client_cert,
                                   options.ssl_client_priv_key)
      if not ok then
        sock:close()
        return nil, "could not set client certificate: " .. tostring(err)
      end
    end
    if fresh then
      session, err = sock:sslhandshake(options.ssl_reused_session,
                                       ssl_server_name, ssl_verify,
                                       options.ssl_send_status_req)
      if not session then
        sock:close()
        return nil, err
      end
    end
  end

  return true, nil, session
end


--- connect(options) or, deprecated, connect(host, port?, options?) and
-- connect("unix:/path", options?).
-- @treturn true|nil ok
-- @treturn string|nil err
-- @treturn any ssl session (table form, on a fresh TLS connection)
function _M.connect(self, options, ...)
  if type(options) == "table" then
    return connect_table(self, options)
  end

  local host = options
  if type(host) ~= "string" then
    error("bad argument #1 to 'connect' (table or string expected, got "
          .. type(host) .. ")", 2)
  end
  reset(self)
  self.ssl = false
  self.scheme = nil
  if sub(host, 1, 5) == "unix:" then
    self.host, self.port, self.unix = nil, nil, true
    return self.sock:connect(host, ...)
  end
  local port = ...
  self.host, self.port, self.unix = host, tonumber(port), false
  return self.sock:connect(host, ...)
end


--- Deprecated: connects to `proxy_uri` and, for https, asks it for a tunnel
-- to host:port (then call ssl_handshake). For http, requests are sent with
-- absolute-form targets.
function _M.connect_proxy(self, proxy_uri, scheme, host, port,
                          proxy_authorization)
  local proxy_host, proxy_port = parse_proxy_uri(proxy_uri)
  if not proxy_host then
    return nil, proxy_port
  end
  scheme = lower(scheme or "http")
  port = tonumber(port) or DEFAULT_PORTS[scheme] or 80
  local sock = self.sock
  reset(self)
  self.host, self.port, self.scheme, self.ssl, self.unix =
    host, port, scheme, false, false
  local ok, err = sock:connect(proxy_host, proxy_port)
  if not ok then
    return nil, err
  end
  if scheme == "https" then
    if (sock:getreusedtimes() or 0) == 0 then
      ok, err = tunnel(sock, host, port, proxy_authorization)
      if not ok then
        sock:close()
        return nil, err
      end
    end
  else
    self.path_prefix = "http://" .. host .. (port ~= 80 and ":" .. port or "")
    self.http_proxy_auth = proxy_authorization
  end
  return 1
end


--- Deprecated: the TLS handshake after connect(host, port).
function _M.ssl_handshake(self, session, server_name, verify, ...)
  self.ssl = true
  self.scheme = "https"
  return self.sock:sslhandshake(session, server_name, verify, ...)
end


_M.parse_proxy_uri = parse_proxy_uri
_M.no_proxy_match = no_proxy_match


return _M
