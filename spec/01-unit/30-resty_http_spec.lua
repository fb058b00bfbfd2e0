-- resty.http, resty.http_headers, resty.http_connect (lua-resty-http 0.17
-- API) against a scripted fake of OpenResty's cosocket API, in plain
-- luajit: `ngx` is a stub set around each test, `ngx.socket.tcp` its fake.
--
-- The fake network: each connection that does not come from a pool takes
-- the next script of `net.scripts`:
--   { input = { segments }, idle = bool, refuse = err, handshake = err,
--     send_error = err }
-- A segment is a string (bytes the server sends), { timeout = true } (the
-- read waiting for it times out once), or { after = s, data = d } (d is
-- sent once the client has sent bytes containing s; until then reads time
-- out). After the last segment a read gets "closed" (or "timeout" with
-- idle = true). setkeepalive() pools the connection under its pool name;
-- connect() with that name takes it back (reused times + 1). Everything the
-- client sends is recorded per connection and parsed back with a small
-- independent HTTP parser (parse_requests).

local cjson = require "cjson"


local fmt = string.format
local concat = table.concat


-- Fake cosockets ------------------------------------------------------------


-- send() takes a string or an array of strings (all the client needs)
local function flatten(data, out)
  if type(data) == "table" then
    for _, v in ipairs(data) do
      assert(type(v) == "string", "fake socket: send() got a " .. type(v))
      out[#out + 1] = v
    end
  else
    assert(type(data) == "string", "fake socket: send() got a "
                                   .. type(data))
    out[#out + 1] = data
  end
  return out
end


local function new_net()
  local net = {
    scripts = {},    -- for the next fresh connections, in order
    conns = {},      -- every connection made, in order
    pools = {},      -- name -> array of idle connections
    sockets = {},
    yields = false,  -- when true, receive() yields before each read
  }

  local function fill(conn)
    local seg = conn.script.input and conn.script.input[conn.pos]
    if seg == nil then
      return nil, conn.script.idle and "timeout" or "closed"
    end
    if type(seg) == "string" then
      conn.pos = conn.pos + 1
      conn.buf = conn.buf .. seg
      return true
    end
    if seg.timeout then
      conn.pos = conn.pos + 1
      return nil, "timeout"
    end
    if seg.after then
      if concat(conn.sent):find(seg.after, 1, true) then
        conn.pos = conn.pos + 1
        conn.buf = conn.buf .. seg.data
        return true
      end
      return nil, "timeout"
    end
    error("bad segment")
  end

  local Sock = {}
  Sock.__index = Sock

  function Sock:settimeout(ms)
    self.timeout = ms
  end

  function Sock:settimeouts(c, s, r)
    self.timeouts = { c, s, r }
  end

  function Sock:connect(host, port, opts)
    if type(port) == "table" or port == nil then
      opts = port
      port = nil
    end
    self.connect_args = { host = host, port = port, opts = opts }
    local name = opts and opts.pool
                 or (port and host .. ":" .. port or host)
    local pool = net.pools[name]
    if pool and #pool > 0 then
      local conn = table.remove(pool)
      conn.reused = conn.reused + 1
      self.conn = conn
      return 1
    end
    local script = table.remove(net.scripts, 1)
    assert(script, "fake net: no script left for a connection to " .. name)
    if script.refuse then
      return nil, script.refuse
    end
    local conn = { script = script, pos = 1, buf = "", sent = {},
                   reused = 0, name = name, host = host, port = port,
                   opts = opts, handshakes = {} }
    net.conns[#net.conns + 1] = conn
    self.conn = conn
    return 1
  end

  function Sock:getreusedtimes()
    if not self.conn then
      return nil, "closed"
    end
    return self.conn.reused
  end

  function Sock:sslhandshake(session, sni, verify, status_req)
    local conn = self.conn
    if not conn then
      return nil, "closed"
    end
    conn.handshakes[#conn.handshakes + 1] = {
      session = session, sni = sni, verify = verify, status_req = status_req,
      at = #conn.sent,
    }
    if conn.script.handshake then
      return nil, conn.script.handshake
    end
    return { session = true }
  end

  function Sock:send(data)
    local conn = self.conn
    if not conn then
      return nil, "closed"
    end
    if conn.script.send_error then
      self.conn = nil
      return nil, conn.script.send_error
    end
    local s = concat(flatten(data, {}))
    conn.sent[#conn.sent + 1] = s
    return #s
  end

  function Sock:receive(pat)
    local conn = self.conn
    if not conn then
      return nil, "closed"
    end
    if net.yields then
      coroutine.yield("io")
    end
    pat = pat or "*l"
    while true do
      if pat == "*l" then
        local i = conn.buf:find("\n", 1, true)
        if i then
          local line = conn.buf:sub(1, i - 1):gsub("\r", "")
          conn.buf = conn.buf:sub(i + 1)
          return line
        end
      elseif type(pat) == "number" then
        if #conn.buf >= pat then
          local data = conn.buf:sub(1, pat)
          conn.buf = conn.buf:sub(pat + 1)
          return data
        end
      elseif pat ~= "*a" then
        error("fake socket: unsupported pattern " .. tostring(pat))
      end
      local ok, err = fill(conn)
      if not ok then
        if err == "closed" then
          local partial = conn.buf
          conn.buf = ""
          conn.eof = true
          self.conn = nil
          if pat == "*a" then
            return partial
          end
          return nil, "closed", partial
        end
        return nil, err, ""
      end
    end
  end

  function Sock:setkeepalive(idle, size)
    local conn = self.conn
    if not conn then
      return nil, "closed"
    end
    if #conn.buf > 0 then
      return nil, "unread data in buffer"
    end
    conn.keepalive_args = { idle, size }
    conn.pooled = (conn.pooled or 0) + 1
    net.pools[conn.name] = net.pools[conn.name] or {}
    table.insert(net.pools[conn.name], conn)
    self.conn = nil
    return 1
  end

  function Sock:close()
    local conn = self.conn
    if not conn then
      return nil, "closed"
    end
    conn.closed = true
    self.conn = nil
    return 1
  end

  function net.tcp()
    local sock = setmetatable({}, Sock)
    net.sockets[#net.sockets + 1] = sock
    return sock
  end

  -- everything sent on connection i
  function net.sent(i)
    return concat(net.conns[i or #net.conns].sent)
  end

  return net
end


-- An independent parser for what the client sent ---------------------------


local function dechunk(s)
  local out, pos = {}, 1
  while true do
    local line_end = assert(s:find("\r\n", pos, true), "chunk size line")
    local size = tonumber(s:sub(pos, line_end - 1):match("^%x+"), 16)
    pos = line_end + 2
    if size == 0 then
      assert(s:sub(pos, pos + 1) == "\r\n", "end of chunked body")
      return concat(out), pos + 2
    end
    out[#out + 1] = s:sub(pos, pos + size - 1)
    assert(s:sub(pos + size, pos + size + 1) == "\r\n", "chunk terminator")
    pos = pos + size + 2
  end
end


-- All requests in `raw`: { method, target, version, headers (lower name ->
-- array of values), names (as sent, in order), body, raw_body }.
local function parse_requests(raw)
  local list, pos = {}, 1
  while pos <= #raw do
    local head_end = assert(raw:find("\r\n\r\n", pos, true), "end of head")
    local head = raw:sub(pos, head_end - 1)
    pos = head_end + 4
    local lines = {}
    for line in (head .. "\r\n"):gmatch("(.-)\r\n") do
      lines[#lines + 1] = line
    end
    local method, target, version =
      lines[1]:match("^(%S+) (%S+) HTTP/(%d%.%d)$")
    assert(method, "request line: " .. lines[1])
    local req = { method = method, target = target, version = version,
                  headers = {}, names = {} }
    for i = 2, #lines do
      local name, value = lines[i]:match("^([^:]+): (.*)$")
      assert(name, "header line: " .. lines[i])
      req.names[#req.names + 1] = name
      local l = name:lower()
      req.headers[l] = req.headers[l] or {}
      table.insert(req.headers[l], value)
    end
    local te = req.headers["transfer-encoding"]
    local cl = req.headers["content-length"]
    if te and te[1]:lower():find("chunked") then
      local body, next_pos = dechunk(raw:sub(pos))
      req.raw_body = raw:sub(pos, pos + next_pos - 2)
      req.body = body
      pos = pos + next_pos - 1
    elseif cl then
      local n = tonumber(cl[1])
      req.body = raw:sub(pos, pos + n - 1)
      req.raw_body = req.body
      pos = pos + n
    else
      req.body = ""
    end
    list[#list + 1] = req
  end
  return list
end


local function header(req, name)
  local v = req.headers[name:lower()]
  return v and v[1]
end


-- A response in wire format.
local function response(status, headers, body, version)
  local out = { fmt("HTTP/%s %d X\r\n", version or "1.1", status) }
  for _, h in ipairs(headers or {}) do
    out[#out + 1] = h .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body or ""
  return concat(out)
end


local function chunked(parts, trailers)
  local out = {}
  for _, p in ipairs(parts) do
    out[#out + 1] = fmt("%x\r\n%s\r\n", #p, p)
  end
  out[#out + 1] = "0\r\n"
  for _, t in ipairs(trailers or {}) do
    out[#out + 1] = t .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  return concat(out)
end


-- The tests -----------------------------------------------------------------


describe("resty.http", function()
  local http, http_headers, http_connect
  local net, saved_ngx, logged

  local function install_ngx(extra)
    logged = {}
    local stub = {
      socket = { tcp = function() return net.tcp() end },
      config = { ngx_lua_version = 10025 },
      var = {},
      req = {},
      ERR = 4,
      log = function(_, ...)
        logged[#logged + 1] = concat({ ... })
      end,
      md5 = function(s)
        return "md5(" .. s .. ")"
      end,
    }
    for k, v in pairs(extra or {}) do
      stub[k] = v
    end
    _G.ngx = stub
  end

  setup(function()
    saved_ngx = _G.ngx
  end)

  teardown(function()
    _G.ngx = saved_ngx
  end)

  before_each(function()
    net = new_net()
    install_ngx()
    package.loaded["resty.http"] = nil
    package.loaded["resty.http_headers"] = nil
    package.loaded["resty.http_connect"] = nil
    http = require "resty.http"
    http_headers = require "resty.http_headers"
    http_connect = require "resty.http_connect"
  end)

  -- connects a new client to host:port (table form) with one script
  local function client(script, opts)
    net.scripts[#net.scripts + 1] = script
    local httpc = assert(http.new())
    local o = { scheme = "http", host = "example.com", port = 80 }
    for k, v in pairs(opts or {}) do
      o[k] = v
    end
    assert(httpc:connect(o))
    return httpc
  end

  -- one request on a fresh connection answered with `resp`
  local function exchange(resp, params, opts)
    local httpc = client({ input = { resp } }, opts)
    local res, err = httpc:request(params or {})
    return res, err, httpc
  end


  describe("module", function()
    it("has lua-resty-http's version fields", function()
      assert.equal("0.17.2", http.VERSION)
      assert.equal("0.17.2", http._VERSION)
    end)

    it("new() returns nil, err when the socket cannot be made", function()
      ngx.socket.tcp = function()
        return nil, "no memory"
      end
      local httpc, err = http.new()
      assert.is_nil(httpc)
      assert.equal("no memory", err)
    end)

    it("new() raises where cosockets raise (as OpenResty in log)", function()
      ngx.socket.tcp = function()
        error("API disabled in the context of log_by_lua*", 2)
      end
      assert.has_error(function() http.new() end,
                       "API disabled in the context of log_by_lua*")
    end)

    it("set_timeout(s) and get_reused_times reach the socket", function()
      local httpc = assert(http.new())
      httpc:set_timeout(1234)
      httpc:set_timeouts(1, 2, 3)
      assert.equal(1234, httpc.sock.timeout)
      assert.same({ 1, 2, 3 }, httpc.sock.timeouts)
      assert.same({ nil, "closed" }, { httpc:get_reused_times() })
    end)
  end)


  describe("resty.http_headers", function()
    it("looks names up ignoring case, with _ as -", function()
      local h = http_headers.new()
      h["Content-Type"] = "text/plain"
      for _, name in ipairs({ "Content-Type", "content-type",
                              "CONTENT-TYPE", "content_type" }) do
        assert.equal("text/plain", h[name], name)
      end
      assert.equal("text/plain", h.content_type)
      assert.is_nil(h["Content-Length"])
      assert.is_nil(h[1])
    end)

    it("keeps the first spelling as the key and replaces the value",
       function()
      local h = http_headers.new()
      h["X-Foo"] = "1"
      h["x-foo"] = "2"
      h.X_FOO = "3"
      local keys = {}
      for k, v in pairs(h) do
        keys[#keys + 1] = k .. "=" .. v
      end
      assert.same({ "X-Foo=3" }, keys)
    end)

    it("removes with nil under any spelling, and can set again", function()
      local h = http_headers.new()
      h["X-Foo"] = "1"
      h["x-FOO"] = nil
      assert.is_nil(h["X-Foo"])
      assert.is_nil(next(h))
      h["X-Bar"] = "1"
      h["X-Bar"] = nil          -- raw key: no metamethod
      assert.is_nil(h.x_bar)
      h["x-bar"] = "2"
      assert.equal("2", h["X-BAR"])
      local n = 0
      for _ in pairs(h) do
        n = n + 1
      end
      assert.equal(1, n)
    end)

    it("stores non-string keys as they are", function()
      local h = http_headers.new()
      h[1] = "one"
      assert.equal("one", h[1])
    end)
  end)


  describe("parse_uri", function()
    local cases = {
      -- uri, query_in_path, expected
      { "http://example.com", false, { "http", "example.com", 80, "/", "" } },
      { "http://example.com/", false, { "http", "example.com", 80, "/", "" } },
      { "https://example.com/foo/bar", false,
        { "https", "example.com", 443, "/foo/bar", "" } },
      { "https://example.com/foo/bar?a=1&b=2", false,
        { "https", "example.com", 443, "/foo/bar", "a=1&b=2" } },
      { "http://example.com?a=1&b=2", false,
        { "http", "example.com", 80, "/", "a=1&b=2" } },
      { "HTTP://Example.com:8080/x#frag", false,
        { "http", "Example.com", 8080, "/x", "" } },
      { "http://h:1/p?q=1#frag", false, { "http", "h", 1, "/p", "q=1" } },
      { "//example.com/foo?a=1", false,
        { "http", "example.com", 80, "/foo", "a=1" } },
      { "http://[::1]", false, { "http", "[::1]", 80, "/", "" } },
      { "https://[::1]:8443/foo?a=1", false,
        { "https", "[::1]", 8443, "/foo", "a=1" } },
      { "https://example.com/foo/bar?a=1&b=2", nil,
        { "https", "example.com", 443, "/foo/bar?a=1&b=2" } },
      { "http://example.com", true, { "http", "example.com", 80, "/" } },
      { "http://example.com?a=1", true,
        { "http", "example.com", 80, "/?a=1" } },
    }
    for _, case in ipairs(cases) do
      it(fmt("%s (query_in_path=%s)", case[1], tostring(case[2])),
         function()
        local httpc = assert(http.new())
        assert.same(case[3], httpc:parse_uri(case[1], case[2]))
      end)
    end

    it("takes the request's scheme for //host URIs", function()
      ngx.var.scheme = "https"
      local httpc = assert(http.new())
      assert.same({ "https", "h", 443, "/", "" },
                  httpc:parse_uri("//h", false))
    end)

    for _, uri in ipairs({ "http:///example.com", "ftp://example.com/",
                           "example.com/foo", "http://h:0/", "http://h:x/",
                           "http://h:70000/", "http://user@h/", "",
                           "http://h:/" }) do
      it("rejects " .. uri, function()
        local httpc = assert(http.new())
        assert.same({ nil, "bad uri: " .. uri },
                    { httpc:parse_uri(uri) })
      end)
    end
  end)


  describe("request serialization", function()
    local OK = response(200, { "Content-Length: 0" })

    it("a default GET: request line, Host, User-Agent, nothing else",
       function()
      local res = assert(exchange(OK, {}))
      assert.equal(200, res.status)
      local req = parse_requests(net.sent())[1]
      assert.equal("GET", req.method)
      assert.equal("/", req.target)
      assert.equal("1.1", req.version)
      assert.same({ "Host", "User-Agent" }, req.names)
      assert.equal("example.com", header(req, "Host"))
      assert.equal("lua-resty-http/0.17.2 (Lua) ngx_lua/10025",
                   header(req, "User-Agent"))
      assert.equal("", req.body)
    end)

    local host_cases = {
      { { scheme = "http", host = "h", port = 80 }, "h" },
      { { scheme = "http", host = "h", port = 8080 }, "h:8080" },
      { { scheme = "https", host = "h", port = 443 }, "h" },
      { { scheme = "https", host = "h", port = 80 }, "h:80" },
      { { scheme = "http", host = "::1", port = 8080 }, "[::1]:8080" },
      { { scheme = "http", host = "[::1]", port = 80 }, "[::1]" },
    }
    for _, case in ipairs(host_cases) do
      it("Host header " .. case[2], function()
        local httpc = client({ input = { OK } }, case[1])
        assert(httpc:request({}))
        assert.equal(case[2], header(parse_requests(net.sent())[1], "host"))
      end)
    end

    it("a given Host (any case) and User-Agent are kept, sent once",
       function()
      assert(exchange(OK, { headers = { host = "other:1",
                                        ["user-agent"] = "me" } }))
      local req = parse_requests(net.sent())[1]
      assert.same({ "other:1" }, req.headers.host)
      assert.same({ "me" }, req.headers["user-agent"])
    end)

    local target_cases = {
      { { path = "/a/b" }, "/a/b" },
      { { path = "" }, "/" },
      { { path = "/a", query = "x=1&y=2" }, "/a?x=1&y=2" },
      { { path = "/a", query = "?x=1" }, "/a?x=1" },
      { { path = "/a", query = "" }, "/a" },
      { { path = "/a?x=1", query = "y=2" }, "/a?x=1&y=2" },
      { { path = "/a", query = { x = "a b" } }, "/a?x=a%20b" },
      { { path = "/a", query = { x = { "1", "2" } } }, "/a?x=1&x=2" },
      { { path = "/a", query = {} }, "/a" },
    }
    for _, case in ipairs(target_cases) do
      it("request target " .. case[2], function()
        assert(exchange(OK, case[1]))
        assert.equal(case[2], parse_requests(net.sent())[1].target)
      end)
    end

    it("HTTP/1.0 on request", function()
      assert(exchange(OK, { version = 1.0, method = "DELETE" }))
      local req = parse_requests(net.sent())[1]
      assert.equal("1.0", req.version)
      assert.equal("DELETE", req.method)
    end)

    it("an array header value is sent as repeated lines", function()
      assert(exchange(OK, { headers = { ["X-Multi"] = { "a", "b" },
                                        ["X-Num"] = 5 } }))
      local req = parse_requests(net.sent())[1]
      assert.same({ "a", "b" }, req.headers["x-multi"])
      assert.same({ "5" }, req.headers["x-num"])
    end)

    it("a string body gets its Content-Length", function()
      assert(exchange(OK, { method = "POST", body = "hello=1" }))
      local req = parse_requests(net.sent())[1]
      assert.same({ "7" }, req.headers["content-length"])
      assert.equal("hello=1", req.body)
    end)

    it("a table body is sent whole, its length summed", function()
      assert(exchange(OK, { method = "PUT", body = { "ab", "cde", 12 } }))
      local req = parse_requests(net.sent())[1]
      assert.same({ "7" }, req.headers["content-length"])
      assert.equal("abcde12", req.body)
    end)

    it("an iterator body is sent chunked, empty chunks skipped", function()
      local parts = { "abc", "", "defgh", "i" }
      local i = 0
      local function iter()
        i = i + 1
        return parts[i]
      end
      assert(exchange(OK, { method = "POST", body = iter }))
      local req = parse_requests(net.sent())[1]
      assert.same({ "chunked" }, req.headers["transfer-encoding"])
      assert.is_nil(req.headers["content-length"])
      assert.equal("abcdefghi", req.body)
      assert.equal("3\r\nabc\r\n5\r\ndefgh\r\n1\r\ni\r\n0\r\n\r\n",
                   req.raw_body)
    end)

    it("an iterator body with a Content-Length is sent raw", function()
      local parts = { "abc", "de" }
      local i = 0
      assert(exchange(OK, { method = "POST",
                            headers = { ["Content-Length"] = 5 },
                            body = function()
                              i = i + 1
                              return parts[i]
                            end }))
      local req = parse_requests(net.sent())[1]
      assert.is_nil(req.headers["transfer-encoding"])
      assert.equal("abcde", req.body)
    end)

    it("an iterator error stops the request", function()
      local httpc = client({ input = { OK } })
      local res, err = httpc:request({ method = "POST", body = function()
        return nil, "client went away"
      end })
      assert.is_nil(res)
      assert.equal("client went away", err)
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
    end)

    it("POST, PUT, PATCH without a body say Content-Length: 0", function()
      for _, m in ipairs({ "POST", "PUT", "PATCH", "GET", "DELETE" }) do
        assert(exchange(OK, { method = m }))
        local req = parse_requests(net.sent())[1]
        if m == "GET" or m == "DELETE" then
          assert.is_nil(req.headers["content-length"], m)
        else
          assert.same({ "0" }, req.headers["content-length"], m)
        end
      end
    end)

    local bad_cases = {
      { { version = 2 }, "unsupported HTTP version: 2" },
      { { method = "GE T" }, "bad method: GE T" },
      { { method = 2 }, "bad method: 2" },
      { { path = "/a b" }, "bad path: /a b" },
      { { path = "/a\r\nX: y" }, "bad path: /a\r\nX: y" },
      { { query = "a=1 HTTP/1.1\r\n" }, "bad query: a=1 HTTP/1.1\r\n" },
      { { headers = { ["X-A"] = "1\r\nX-B: 2" } }, "bad value for header X-A" },
      { { headers = { ["X-A"] = { "1", "2\n" } } },
        "bad value for header X-A" },
      { { headers = { ["X A"] = "1" } }, "bad header name: X A" },
      { { headers = { ["X-A"] = function() end } },
        "bad value for header X-A" },
      { { headers = "x" }, "headers must be a table" },
      { { body = true }, "bad body: boolean" },
      { { body = { "a", {} } }, "bad body: item 2 is a table" },
      { { version = 1.0, body = function() end },
        "a body iterator needs a Content-Length with HTTP/1.0" },
    }
    for _, case in ipairs(bad_cases) do
      it("refuses, sending nothing: " .. case[2]:gsub("[\r\n]", "."),
         function()
        local httpc = client({ input = { OK } })
        assert.same({ nil, case[2] }, { httpc:request(case[1]) })
        assert.equal("", net.sent())
      end)
    end

    it("a unix socket needs a Host header", function()
      net.scripts[1] = { input = { OK } }
      local httpc = assert(http.new())
      assert(httpc:connect("unix:/tmp/x.sock"))
      assert.same({ nil, "Unable to generate a useful Host header for a "
                         .. "unix domain socket. Please provide one." },
                  { httpc:request({}) })
      local res = assert(httpc:request({ headers = { Host = "local" } }))
      assert.equal(200, res.status)
      assert.equal("local", header(parse_requests(net.sent())[1], "host"))
    end)
  end)


  describe("responses", function()
    it("status, reason, case-insensitive headers, repeated ones as arrays",
       function()
      local res = assert(exchange(
        "HTTP/1.1 201 Created Here\r\nContent-Type: text/plain\r\n"
        .. "Set-Cookie: a=1\r\nset-cookie: b=2\r\nX-Sp:   padded  \r\n"
        .. "X-Folded: one\r\n  two\r\nContent-Length: 5\r\n\r\nhello"))
      assert.equal(201, res.status)
      assert.equal("Created Here", res.reason)
      assert.equal("text/plain", res.headers["content-type"])
      assert.equal("text/plain", res.headers.Content_Type)
      assert.same({ "a=1", "b=2" }, res.headers["Set-Cookie"])
      assert.equal("padded", res.headers["x-sp"])
      assert.equal("one two", res.headers["x-folded"])
      assert.is_true(res.has_body)
      assert.equal("hello", res:read_body())
    end)

    it("a status line without a reason", function()
      local res = assert(exchange("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"))
      assert.equal(200, res.status)
      assert.equal("", res.reason)
    end)

    it("Content-Length body by body_reader(size): slices of at most size",
       function()
      local body = ("0123456789"):rep(10)
      local res = assert(exchange(response(200, { "Content-Length: 100" },
                                           body)))
      local sizes, parts = {}, {}
      repeat
        local chunk, err = res.body_reader(30)
        assert.is_nil(err)
        if chunk then
          sizes[#sizes + 1] = #chunk
          parts[#parts + 1] = chunk
        end
      until not chunk
      assert.same({ 30, 30, 30, 10 }, sizes)
      assert.equal(body, concat(parts))
      assert.is_nil(res.body_reader())      -- stays at the end
    end)

    it("Content-Length body without size: in one piece", function()
      local res = assert(exchange(response(200, { "Content-Length: 3" },
                                           "abc")))
      assert.equal("abc", res.body_reader())
      assert.is_nil(res.body_reader())
    end)

    it("chunked: one chunk per call, extensions ignored, trailers kept",
       function()
      local wire = response(200, { "Transfer-Encoding: chunked",
                                   "Trailer: X-Sum" })
                   .. "5;ext=1\r\nhello\r\n"
                   .. "6\r\n world\r\n"
                   .. chunked({}, { "X-Sum: 42", "X-Other: a" })
      local res = assert(exchange(wire))
      assert.equal("hello", res.body_reader())
      assert.equal(" world", res.body_reader())
      assert.is_nil(res.body_reader())
      assert.is_nil(res.headers["X-Sum"])
      res:read_trailers()
      assert.equal("42", res.headers["x-sum"])
      assert.equal("a", res.headers["X-Other"])
      assert.equal("chunked", res.headers["Transfer-Encoding"])
    end)

    it("chunked with size: never more than size, never across chunks",
       function()
      local res = assert(exchange(response(200, {
        "Transfer-Encoding: gzip, chunked" }) .. chunked({ "abcdefg", "hi" })))
      local got = {}
      repeat
        local c = res.body_reader(3)
        got[#got + 1] = c
      until not c
      assert.same({ "abc", "def", "g", "hi" }, got)
    end)

    it("a chunked body over several reads of the socket", function()
      local wire = response(200, { "Transfer-Encoding: chunked" })
                   .. chunked({ "abcdef", "gh" })
      local segments = {}
      for i = 1, #wire, 4 do
        segments[#segments + 1] = wire:sub(i, i + 3)
      end
      net.scripts[1] = { input = segments }
      local httpc = assert(http.new())
      assert(httpc:connect({ scheme = "http", host = "h" }))
      local res = assert(httpc:request({}))
      assert.equal("abcdefgh", res:read_body())
      assert.equal(1, httpc:set_keepalive())
    end)

    it("read-until-close: no size reads all; the connection is not reused",
       function()
      local res, _, httpc = exchange(response(200, {}, ("x"):rep(70000)),
                                     nil)
      assert.equal(("x"):rep(70000), res:read_body())
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
      assert.is_nil(net.pools["example.com:80"])
    end)

    it("read-until-close with size: pieces, then the partial rest",
       function()
      local res = assert(exchange(response(200, {}, ("y"):rep(25)),
                                  { version = 1.0 }))
      local sizes = {}
      repeat
        local c = res.body_reader(10)
        sizes[#sizes + 1] = c and #c
      until not c
      assert.same({ 10, 10, 5 }, sizes)
    end)

    it("an unknown transfer coding is read until close", function()
      local res, _, httpc = exchange(response(200, {
        "Transfer-Encoding: gzip", "Content-Length: 2" }, "abcd"))
      assert.equal("abcd", res:read_body())
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
    end)

    -- no body: the next response on the connection must still parse
    local no_body_cases = {
      { "HEAD", 200, { "Content-Length: 10" } },
      { "GET", 204, { "Content-Length: 10" } },
      { "GET", 304, { "Transfer-Encoding: chunked" } },
    }
    for _, case in ipairs(no_body_cases) do
      it(fmt("%s -> %d has no body", case[1], case[2]), function()
        local httpc = client({ input = {
          response(case[2], case[3]),
          { after = "/second", data = response(200, { "Content-Length: 2" },
                                               "ok") },
        } })
        local res = assert(httpc:request({ method = case[1] }))
        assert.is_false(res.has_body)
        assert.is_nil(res.body_reader())
        assert.equal("", res:read_body())
        res = assert(httpc:request({ path = "/second" }))
        assert.equal("ok", res:read_body())
        assert.equal(1, httpc:set_keepalive())
      end)
    end

    it("interim 1xx responses are skipped", function()
      local res = assert(exchange(
        "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
        .. "HTTP/1.1 100 Continue\r\n\r\n"
        .. response(200, { "Content-Length: 2" }, "ok")))
      assert.equal(200, res.status)
      assert.is_nil(res.headers.link)
      assert.equal("ok", res:read_body())
    end)

    it("at most 20 interim responses", function()
      local res, err = exchange(("HTTP/1.1 102 Processing\r\n\r\n"):rep(21)
                                .. response(200, { "Content-Length: 0" }))
      assert.is_nil(res)
      assert.equal("too many interim responses", err)
    end)

    it("101 Switching Protocols: no body, connection not pooled",
       function()
      local res, _, httpc = exchange(response(101, { "Upgrade: websocket",
                                                     "Connection: Upgrade" }))
      assert.equal(101, res.status)
      assert.is_false(res.has_body)
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
    end)

    local broken_cases = {
      { "garbage\r\n\r\n", "bad status line: garbage" },
      { "HTTP/1.1 2000 X\r\n\r\n", "bad status line: HTTP/1.1 2000 X" },
      { "HTTP/1.1 200 OK\r\nno colon\r\n\r\n", "bad header line: no colon" },
      { response(200, { "Content-Length: -1" }), "bad Content-Length: -1" },
      { response(200, { "Content-Length: 12abc" }),
        "bad Content-Length: 12abc" },
      { response(200, { "Content-Length: 1", "Content-Length: 2" }),
        "conflicting Content-Length headers" },
      { "HTTP/1.1 200 OK\r\nX: y", "closed" },
      { "", "closed" },
    }
    for _, case in ipairs(broken_cases) do
      it("a broken head: " .. case[2], function()
        local httpc = client({ input = { case[1] } })
        assert.same({ nil, case[2] }, { httpc:request({}) })
        assert.same({ 2, "connection must be closed" },
                    { httpc:set_keepalive() })
      end)
    end

    it("equal repeated Content-Lengths are accepted", function()
      local res = assert(exchange(response(200, {
        "Content-Length: 2", "Content-Length: 2" }, "ok")))
      assert.equal("ok", res:read_body())
    end)

    local broken_bodies = {
      { response(200, { "Content-Length: 10" }, "short"), "closed" },
      { response(200, { "Transfer-Encoding: chunked" }) .. "zz\r\n",
        "bad chunk size line: zz" },
      { response(200, { "Transfer-Encoding: chunked" }) .. "2\r\nabX\r\n",
        "bad chunk terminator" },
      { response(200, { "Transfer-Encoding: chunked" }) .. "5\r\nab",
        "closed" },
      { response(200, { "Transfer-Encoding: chunked" })
        .. "1234567890abc\r\n", "bad chunk size line: 1234567890abc" },
    }
    for _, case in ipairs(broken_bodies) do
      it("a broken body: " .. case[2], function()
        local res, _, httpc = exchange(case[1])
        assert.same({ nil, case[2] }, { res:read_body() })
        assert.is_nil(res.body_reader())      -- done after an error
        assert.same({ 2, "connection must be closed" },
                    { httpc:set_keepalive() })
      end)
    end

    it("a read timeout in the head is returned", function()
      local httpc = client({ input = {}, idle = true })
      assert.same({ nil, "timeout" }, { httpc:request({}) })
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
    end)

    it("a read timeout in the body is returned", function()
      local res = assert(exchange(response(200, { "Content-Length: 10" },
                                           "abc"), nil))
      net.conns[1].script.idle = true
      assert.same({ nil, "timeout" }, { res.body_reader() })
    end)

    it("a send error is returned", function()
      local httpc = client({ input = {}, send_error = "broken pipe" })
      assert.same({ nil, "broken pipe" }, { httpc:request({}) })
    end)
  end)


  describe("keep-alive", function()
    -- request version, request Connection, response version, response
    -- Connection -> pooled?
    local cases = {
      { 1.1, nil, "1.1", nil, true },
      { 1.1, nil, "1.1", "close", false },
      { 1.1, nil, "1.1", "Keep-Alive, CLOSE", false },
      { 1.1, nil, "1.1", "closed-token", true },
      { 1.1, "close", "1.1", nil, false },
      { 1.1, nil, "1.0", nil, false },
      { 1.1, nil, "1.0", "keep-alive", true },
      { 1.0, nil, "1.0", "keep-alive", false },
      { 1.0, "Keep-Alive", "1.0", "Keep-Alive", true },
      { 1.0, "keep-alive", "1.1", nil, true },
    }
    for _, c in ipairs(cases) do
      it(fmt("request %s%s, response %s%s: %s", c[1],
             c[2] and " " .. c[2] or "", c[3], c[4] and " " .. c[4] or "",
             c[5] and "pooled" or "closed"), function()
        local headers = { "Content-Length: 2" }
        if c[4] then
          headers[2] = "Connection: " .. c[4]
        end
        local res, _, httpc = exchange(response(200, headers, "ok", c[3]), {
          version = c[1], headers = { Connection = c[2] } })
        assert.equal("ok", res:read_body())
        local ok, err = httpc:set_keepalive(1000, 7)
        if c[5] then
          assert.same({ 1, nil }, { ok, err })
          assert.equal(1, net.conns[1].pooled)
          assert.same({ 1000, 7 }, net.conns[1].keepalive_args)
        else
          assert.same({ 2, "connection must be closed" }, { ok, err })
          assert.is_true(net.conns[1].closed)
          assert.is_nil(net.conns[1].pooled)
        end
      end)
    end

    it("an unread body: closed, nil + error, and no new request",
       function()
      local res, _, httpc = exchange(response(200, { "Content-Length: 4" },
                                              "body"))
      assert.equal(200, res.status)
      assert.same({ nil, "the previous response has not been read to its "
                         .. "end" }, { httpc:request({}) })
      assert.same({ nil, "response not fully read" },
                  { httpc:set_keepalive() })
      assert.is_true(net.conns[1].closed)
    end)

    it("a body read to its last byte is enough (no extra call)", function()
      local res, _, httpc = exchange(response(200, { "Content-Length: 4" },
                                              "body"))
      assert.equal("body", res.body_reader(4))
      assert.equal(1, httpc:set_keepalive())
    end)

    it("two requests on one connection, then reuse from the pool",
       function()
      local httpc = client({ input = {
        response(200, { "Content-Length: 1" }, "a"),
        { after = "/two", data = response(200, {
          "Transfer-Encoding: chunked" }) .. chunked({ "b" }) },
        { after = "/three", data = response(200, {
          "Content-Length: 1" }, "c") },
      } })
      assert.equal("a", assert(httpc:request({ path = "/one" })):read_body())
      assert.equal("b", assert(httpc:request({ path = "/two" })):read_body())
      assert.equal(0, httpc:get_reused_times())
      assert.equal(1, httpc:set_keepalive())

      local again = assert(http.new())
      assert(again:connect({ scheme = "http", host = "example.com" }))
      assert.equal(1, again:get_reused_times())
      assert.equal("c",
                   assert(again:request({ path = "/three" })):read_body())
      assert.equal(1, #net.conns)
      local reqs = parse_requests(net.sent())
      assert.equal(3, #reqs)
      assert.equal("/three", reqs[3].target)
    end)

    it("an instance connects again after set_keepalive", function()
      net.scripts = {
        { input = { response(200, { "Content-Length: 1" }, "a") } },
      }
      local httpc = assert(http.new())
      local res = assert(httpc:request_uri("http://h:81/x"))
      assert.equal("a", res.body)
      assert.equal(0, net.conns[1].reused)
      net.conns[1].script.input[2] = {
        after = "/y", data = response(200, { "Content-Length: 1" }, "b") }
      res = assert(httpc:request_uri("http://h:81/y"))
      assert.equal("b", res.body)
      assert.equal(1, net.conns[1].reused)
      assert.equal(1, #net.conns)
    end)
  end)


  describe("request_uri", function()
    it("connects, requests, reads, pools", function()
      net.scripts[1] = { input = {
        response(200, { "Content-Type: text/plain",
                        "Transfer-Encoding: chunked" })
        .. chunked({ "hel", "lo" }, { "X-T: 1" }),
      } }
      local httpc = assert(http.new())
      local res = assert(httpc:request_uri("http://api.test:8080/p?a=1", {
        method = "POST", body = "data", headers = { ["X-A"] = "b" },
        keepalive_timeout = 5000, keepalive_pool = 3,
      }))
      assert.equal(200, res.status)
      assert.equal("hello", res.body)
      assert.equal("1", res.headers["x-t"])   -- trailers merged
      local conn = net.conns[1]
      assert.equal("api.test", conn.host)
      assert.equal(8080, conn.port)
      assert.equal("api.test:8080", conn.opts.pool)
      assert.same({ 5000, 3 }, conn.keepalive_args)
      local req = parse_requests(net.sent())[1]
      assert.equal("POST", req.method)
      assert.equal("/p?a=1", req.target)
      assert.equal("api.test:8080", header(req, "host"))
      assert.equal("b", header(req, "x-a"))
      assert.equal("data", req.body)
    end)

    it("params.path and params.query replace the URI's", function()
      net.scripts[1] = { input = { response(204, {}) } }
      local httpc = assert(http.new())
      assert(httpc:request_uri("http://h/p?a=1", { path = "/q",
                                                   query = { b = "2" } }))
      assert.equal("/q?b=2", parse_requests(net.sent())[1].target)
    end)

    it("does not change the caller's params", function()
      net.scripts[1] = { input = { response(204, {}) } }
      local params = { method = "GET" }
      assert(assert(http.new()):request_uri("http://h/p?a=1", params))
      assert.same({ method = "GET" }, params)
    end)

    it("keepalive = false closes", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      local httpc = assert(http.new())
      assert(httpc:request_uri("http://h/", { keepalive = false }))
      assert.is_true(net.conns[1].closed)
      assert.is_nil(net.conns[1].pooled)
    end)

    it("HEAD: body is the empty string", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 9" }) } }
      local res = assert(assert(http.new()):request_uri("http://h/", {
        method = "HEAD" }))
      assert.equal("", res.body)
      assert.equal("9", res.headers["content-length"])
      assert.equal(1, net.conns[1].pooled)
    end)

    it("https: handshake with SNI and verify, not again on reuse",
       function()
      net.scripts[1] = { input = {
        response(200, { "Content-Length: 1" }, "a"),
        { after = "/2", data = response(200, { "Content-Length: 1" }, "b") },
      } }
      local res = assert(assert(http.new()):request_uri(
        "https://secure.test/1"))
      assert.equal("a", res.body)
      local conn = net.conns[1]
      assert.equal(443, conn.port)
      assert.equal(1, #conn.handshakes)
      assert.same({ sni = "secure.test", verify = true, at = 0 },
                  conn.handshakes[1])
      assert.equal("secure.test:443:secure.test:true", conn.opts.pool)
      assert.equal("secure.test", header(parse_requests(net.sent())[1],
                                         "host"))

      res = assert(assert(http.new()):request_uri("https://secure.test/2"))
      assert.equal("b", res.body)
      assert.equal(1, #net.conns)
      assert.equal(1, #conn.handshakes)
    end)

    it("https options: ssl_verify, ssl_server_name, pool, pool_size",
       function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      assert(assert(http.new()):request_uri("https://10.0.0.1:8443/", {
        ssl_verify = false, ssl_server_name = "name.test",
        ssl_send_status_req = true, pool_size = 4, backlog = 2,
      }))
      local conn = net.conns[1]
      assert.same({ sni = "name.test", verify = false, status_req = true,
                    at = 0 }, conn.handshakes[1])
      assert.equal("10.0.0.1:8443:name.test:false", conn.opts.pool)
      assert.equal(4, conn.opts.pool_size)
      assert.equal(2, conn.opts.backlog)
      -- verify on and off never share a pool
      assert.not_equal("10.0.0.1:8443:name.test:true", conn.opts.pool)
    end)

    it("a custom pool name is used as is", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      assert(assert(http.new()):request_uri("https://h/", { pool = "mine" }))
      assert.equal("mine", net.conns[1].opts.pool)
    end)

    it("errors: bad uri, refused, handshake, mTLS", function()
      local httpc = assert(http.new())
      assert.same({ nil, "bad uri: nope" }, { httpc:request_uri("nope") })

      net.scripts[1] = { refuse = "connection refused" }
      assert.same({ nil, "connection refused" },
                  { httpc:request_uri("http://h/") })

      net.scripts[1] = { handshake = "certificate verify failed" }
      assert.same({ nil, "certificate verify failed" },
                  { httpc:request_uri("https://h/") })
      assert.is_true(net.conns[1].closed)

      local res, err = httpc:request_uri("https://h/", {
        ssl_client_cert = "c", ssl_client_priv_key = "k" })
      assert.is_nil(res)
      assert.equal("client certificates (mTLS) are not supported by "
                   .. "Sluice yet", err)
      assert.equal(1, #net.conns)        -- none made for it (refused: none)
    end)

    it("a broken response closes the connection", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 5" },
                                            "ab") } }
      local httpc = assert(http.new())
      assert.same({ nil, "closed" }, { httpc:request_uri("http://h/") })
      assert.is_nil(net.conns[1].pooled)
    end)
  end)


  describe("Expect: 100-continue", function()
    local function expect_request(script)
      local httpc = client(script)
      return httpc:request({ method = "POST", body = "PAYLOAD",
                             headers = { Expect = "100-continue" } })
    end

    it("the body waits for the 100, then goes", function()
      local res = assert(expect_request({ input = {
        "HTTP/1.1 100 Continue\r\n\r\n",
        { after = "PAYLOAD", data = response(200, { "Content-Length: 2" },
                                             "ok") },
      } }))
      assert.equal(200, res.status)
      assert.equal("ok", res:read_body())
      local sent = net.conns[1].sent
      assert.equal(2, #sent)                      -- head, then body
      assert.is_nil(sent[1]:find("PAYLOAD", 1, true))
      assert.equal("PAYLOAD", sent[2])
    end)

    it("a final status instead: no body sent, connection not kept",
       function()
      local httpc = client({ input = {
        response(417, { "Content-Length: 4" }, "nope") } })
      local res = assert(httpc:request({ method = "PUT", body = "PAYLOAD",
        headers = { expect = "100-Continue" } }))
      assert.equal(417, res.status)
      assert.equal("nope", res:read_body())
      assert.is_nil(net.sent():find("PAYLOAD", 1, true))
      assert.same({ 2, "connection must be closed" },
                  { httpc:set_keepalive() })
    end)

    it("no answer before the read timeout: the body is sent anyway",
       function()
      local res = assert(expect_request({ input = {
        { timeout = true },
        { after = "PAYLOAD", data = response(201, { "Content-Length: 0" }) },
      } }))
      assert.equal(201, res.status)
      assert.equal("PAYLOAD", net.conns[1].sent[2])
    end)

    it("not used for HTTP/1.0 or without a body", function()
      local httpc = client({ input = { response(200, {
        "Content-Length: 0" }) } })
      assert(httpc:request({ version = 1.0, body = "x",
                             headers = { Expect = "100-continue" } }))
      assert.equal(1, #net.conns[1].sent)
    end)
  end)


  describe("request_pipeline", function()
    it("sends all, then reads responses in order, lazily", function()
      local httpc = client({ input = {
        response(200, { "Content-Length: 1" }, "a"),
        response(404, { "Transfer-Encoding: chunked" }) .. chunked({ "bb" }),
        response(200, { "Content-Length: 1" }, "c"),
      } })
      local responses = assert(httpc:request_pipeline({
        { path = "/a" }, { path = "/b", method = "HEAD" }, { path = "/c" },
      }))
      -- every request is out before any response is read
      local reqs = parse_requests(net.sent())
      assert.same({ "/a", "/b", "/c" },
                  { reqs[1].target, reqs[2].target, reqs[3].target })
      assert.equal(1, net.conns[1].pos)

      assert.equal(200, responses[1].status)
      assert.equal("a", responses[1]:read_body())
      -- a HEAD answer has no body even if framed as chunked
      assert.equal(404, responses[2].status)
      assert.is_false(responses[2].has_body)
    end)

    it("an unread body is skipped to reach the next response", function()
      local httpc = client({ input = {
        response(200, { "Content-Length: 3" }, "aaa"),
        response(201, { "Content-Length: 1" }, "b"),
      } })
      local responses = assert(httpc:request_pipeline({ {}, {} }))
      assert.equal(201, responses[2].status)
      assert.equal("b", responses[2]:read_body())
      assert.equal(200, responses[1].status)
      assert.equal(1, httpc:set_keepalive())
    end)

    it("a read failure leaves status nil there and after", function()
      local httpc = client({ input = {
        response(200, { "Content-Length: 1" }, "a"), "junk\r\n" } })
      local responses = assert(httpc:request_pipeline({ {}, {}, {} }))
      assert.equal(200, responses[1].status)
      assert.is_nil(responses[2].status)
      assert.is_nil(responses[3].status)
    end)

    it("a bad request sends nothing", function()
      local httpc = client({ input = {} })
      assert.same({ nil, "bad path: a b" },
                  { httpc:request_pipeline({ {}, { path = "a b" } }) })
      assert.equal("", net.sent())
    end)
  end)


  describe("proxies", function()
    it("get_proxy_uri and no_proxy", function()
      local httpc = assert(http.new())
      assert.is_nil(httpc:get_proxy_uri("http", "example.com"))
      local cases = {
        -- scheme, host, no_proxy, expected
        { "http", "example.com", nil, "http://hp" },
        { "https", "example.com", nil, "http://hsp" },
        { "http", "example.com", "*", nil },
        { "http", "example.com", "example.com", nil },
        { "http", "sub.example.com", "example.com", nil },
        { "http", "example.com", "example.org, example.com", nil },
        { "http", "example.com", ".example.com", nil },
        { "http", "EXAMPLE.com", "example.COM", nil },
        { "http", "notexample.com", "example.com", "http://hp" },
        { "http", "example.com.evil", "example.com", "http://hp" },
        { "ftp", "example.com", nil, nil },
      }
      for _, c in ipairs(cases) do
        httpc:set_proxy_options({ http_proxy = "http://hp",
                                  https_proxy = "http://hsp",
                                  no_proxy = c[3] })
        assert.equal(c[4], httpc:get_proxy_uri(c[1], c[2]),
                     c[1] .. " " .. c[2] .. " " .. tostring(c[3]))
      end
      httpc:set_proxy_options({ https_proxy = "http://hsp" })
      assert.is_nil(httpc:get_proxy_uri("http", "example.com"))
    end)

    it("http through a proxy: absolute-form target, Proxy-Authorization",
       function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 2" },
                                            "ok") } }
      local httpc = assert(http.new())
      httpc:set_proxy_options({ http_proxy = "http://proxy.test:3128",
                                http_proxy_authorization = "Basic eHg=" })
      local res = assert(httpc:request_uri("http://target.test:8080/p?q=1"))
      assert.equal("ok", res.body)
      local conn = net.conns[1]
      assert.equal("proxy.test", conn.host)
      assert.equal(3128, conn.port)
      local req = parse_requests(net.sent())[1]
      assert.equal("http://target.test:8080/p?q=1", req.target)
      assert.equal("target.test:8080", header(req, "host"))
      assert.equal("Basic eHg=", header(req, "proxy-authorization"))
      assert.equal(
        "target.test:8080:http://proxy.test:3128:md5(Basic eHg=)",
        conn.opts.pool)
    end)

    it("a given Proxy-Authorization wins; default port left out", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      local httpc = assert(http.new())
      assert(httpc:request_uri("http://target.test/", {
        proxy_opts = { http_proxy = "http://p",
                       http_proxy_authorization = "A" },
        headers = { ["Proxy-Authorization"] = "B" },
      }))
      assert.equal(80, net.conns[1].port)
      local req = parse_requests(net.sent())[1]
      assert.equal("http://target.test/", req.target)
      assert.same({ "B" }, req.headers["proxy-authorization"])
    end)

    it("https through a proxy: CONNECT tunnel, then TLS, then request",
       function()
      net.scripts[1] = { input = {
        "HTTP/1.1 200 Connection established\r\nX-P: 1\r\n\r\n",
        { after = "GET /s", data = response(200, { "Content-Length: 2" },
                                            "ok") },
      } }
      local httpc = assert(http.new())
      httpc:set_proxy_options({ https_proxy = "http://proxy.test",
                                https_proxy_authorization = "Basic cHc=" })
      local res = assert(httpc:request_uri("https://secure.test/s"))
      assert.equal("ok", res.body)
      local conn = net.conns[1]
      assert.equal("proxy.test", conn.host)
      assert.equal(80, conn.port)
      local connect = conn.sent[1]
      assert.equal("CONNECT secure.test:443 HTTP/1.1\r\n"
                   .. "Host: secure.test:443\r\n"
                   .. "Proxy-Authorization: Basic cHc=\r\n\r\n", connect)
      assert.equal(1, #conn.handshakes)
      assert.equal(1, conn.handshakes[1].at)   -- after the CONNECT
      assert.equal("secure.test", conn.handshakes[1].sni)
      local req = parse_requests(conn.sent[2])[1]
      assert.equal("/s", req.target)
      assert.is_nil(req.headers["proxy-authorization"])
    end)

    it("the CONNECT carries only https_proxy_authorization", function()
      net.scripts[1] = { input = {
        "HTTP/1.1 200 OK\r\n\r\n",
        { after = "GET /", data = response(200, { "Content-Length: 0" }) },
      } }
      local httpc = assert(http.new())
      assert(httpc:request_uri("https://s.test/", { proxy_opts = {
        https_proxy = "http://p:1", http_proxy_authorization = "Basic no" } }))
      local conn = net.conns[1]
      assert.equal("CONNECT s.test:443 HTTP/1.1\r\nHost: s.test:443\r\n\r\n",
                   conn.sent[1])
      assert.is_nil(parse_requests(conn.sent[2])[1]
                    .headers["proxy-authorization"])
    end)

    it("a refused tunnel is an error; the socket is closed", function()
      net.scripts[1] = { input = {
        "HTTP/1.1 407 Proxy Authentication Required\r\n"
        .. "Content-Length: 0\r\n\r\n" } }
      local httpc = assert(http.new())
      assert.same({ nil, "failed to establish a tunnel through a proxy: 407" },
                  { httpc:request_uri("https://s.test/", {
                      proxy_opts = { https_proxy = "http://p:1" } }) })
      assert.is_true(net.conns[1].closed)
    end)

    it("proxy URIs other than http:// are refused", function()
      local httpc = assert(http.new())
      assert.same({ nil, "protocol https not supported for proxy "
                         .. "connections" },
                  { httpc:request_uri("http://s.test/", {
                      proxy_opts = { http_proxy = "https://p:1" } }) })
      assert.same({ nil, "bad proxy uri: p:1" },
                  { httpc:request_uri("http://s.test/", {
                      proxy_opts = { http_proxy = "p:1" } }) })
    end)

    it("no_proxy hosts connect directly", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      local httpc = assert(http.new())
      assert(httpc:request_uri("http://in.corp/x", { proxy_opts = {
        http_proxy = "http://p:1", no_proxy = "corp" } }))
      assert.equal("in.corp", net.conns[1].host)
      assert.equal("/x", parse_requests(net.sent())[1].target)
    end)

    it("deprecated connect_proxy + ssl_handshake", function()
      net.scripts[1] = { input = {
        "HTTP/1.0 200 OK\r\n\r\n",
        { after = "GET /", data = response(200, { "Content-Length: 0" }) },
      } }
      local httpc = assert(http.new())
      assert.equal(1, httpc:connect_proxy("http://p:8888", "https", "s.test",
                                          443, "Basic z"))
      assert(httpc:ssl_handshake(nil, "s.test", false))
      assert(httpc:request({}))
      local conn = net.conns[1]
      assert.equal("p", conn.host)
      assert.equal(8888, conn.port)
      assert.matches("^CONNECT s.test:443 HTTP/1.1\r\n", conn.sent[1])
      assert.equal("s.test", header(parse_requests(conn.sent[2])[1], "host"))
    end)
  end)


  describe("legacy connect", function()
    it("connect(host, port) uses the socket's default pool", function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      local httpc = assert(http.new())
      assert(httpc:connect("127.0.0.1", 8080))
      assert.equal("127.0.0.1:8080", net.conns[1].name)
      assert(httpc:request({}))
      assert.equal("127.0.0.1:8080",
                   header(parse_requests(net.sent())[1], "host"))
    end)

    it("connect(host, 443) + ssl_handshake: Host without the port",
       function()
      net.scripts[1] = { input = { response(200, { "Content-Length: 0" }) } }
      local httpc = assert(http.new())
      assert(httpc:connect("s.test", 443, { pool = "p1" }))
      assert.equal("p1", net.conns[1].name)
      assert(httpc:ssl_handshake(false, "s.test", true))
      assert.same({ session = false, sni = "s.test", verify = true, at = 0 },
                  net.conns[1].handshakes[1])
      assert(httpc:request({}))
      assert.equal("s.test", header(parse_requests(net.sent())[1], "host"))
    end)

    it("connect(\"unix:/path\", opts) and the table form with unix:",
       function()
      net.scripts = { { input = {} }, { input = {} } }
      local httpc = assert(http.new())
      assert(httpc:connect("unix:/run/a.sock", { pool = "u" }))
      assert.equal("unix:/run/a.sock", net.conns[1].host)
      assert.equal("u", net.conns[1].name)
      assert(httpc:connect({ host = "unix:/run/b.sock" }))
      assert.equal("unix:/run/b.sock", net.conns[2].host)
    end)

    it("table form: bad scheme, port and host", function()
      local httpc = assert(http.new())
      assert.same({ nil, "unsupported scheme: ftp" },
                  { httpc:connect({ scheme = "ftp", host = "h" }) })
      assert.same({ nil, "invalid port: 0" },
                  { httpc:connect({ scheme = "http", host = "h", port = 0 }) })
      assert.same({ nil, "no host given" }, { httpc:connect({}) })
      assert.has_error(function() httpc:connect(42) end,
        "bad argument #1 to 'connect' (table or string expected, got number)")
    end)
  end)


  describe("client body reader", function()
    it("without ngx.req.socket (Sluice today): nil and the reason",
       function()
      ngx.req.socket = function()
        error("ngx.req.socket is not supported by Sluice yet", 2)
      end
      local httpc = assert(http.new())
      assert.same({ nil, "ngx.req.socket is not supported by Sluice yet" },
                  { httpc:get_client_body_reader() })
      ngx.req.socket = nil
      assert.same({ nil, "ngx.req.socket is not available" },
                  { httpc:get_client_body_reader() })
    end)

    local function req_sock(data)
      net.scripts[#net.scripts + 1] = { input = { data } }
      local sock = net.tcp()
      sock:connect("client", 1)
      return sock
    end

    it("Content-Length: by chunksize, and as a request body", function()
      ngx.req.get_headers = function()
        return { ["content-length"] = "10" }
      end
      ngx.req.socket = function()
        return req_sock("0123456789")
      end
      local httpc = assert(http.new())
      local reader = assert(httpc:get_client_body_reader(4))
      local got = {}
      repeat
        local c = reader()
        got[#got + 1] = c
      until not c
      assert.same({ "0123", "4567", "89" }, got)

      -- streamed as the body of a request (chunked: no length given)
      reader = assert(httpc:get_client_body_reader(3))
      net.scripts[#net.scripts + 1] = { input = {
        { after = "0\r\n\r\n", data = response(200, {
          "Content-Length: 0" }) } } }
      assert(httpc:connect({ scheme = "http", host = "up" }))
      assert(httpc:request({ method = "POST", body = reader }))
      assert.equal("0123456789", parse_requests(net.sent())[1].body)
    end)

    it("chunked client bodies are decoded", function()
      ngx.req.get_headers = function()
        return { ["transfer-encoding"] = "chunked" }
      end
      local sock = req_sock(chunked({ "abc", "defg" }))
      local httpc = assert(http.new())
      local reader = assert(httpc:get_client_body_reader(nil, sock))
      local got = {}
      repeat
        local c = reader()
        got[#got + 1] = c
      until not c
      assert.same({ "abc", "defg" }, got)
    end)

    it("no body: nil", function()
      ngx.req.get_headers = function()
        return {}
      end
      ngx.req.socket = function()
        return req_sock("")
      end
      assert.is_nil(assert(http.new()):get_client_body_reader())
    end)
  end)


  describe("proxy_request / proxy_response", function()
    it("forward the client request and copy the response back", function()
      ngx.req.get_headers = function()
        return { host = "client.test", ["x-in"] = "1",
                 connection = "keep-alive", ["content-length"] = "4" }
      end
      ngx.req.get_method = function()
        return "PUT"
      end
      ngx.req.socket = function()
        error("ngx.req.socket is not supported by Sluice yet", 2)
      end
      ngx.req.read_body = function() end
      ngx.req.get_body_data = function()
        return "BODY"
      end
      ngx.var.request_uri = "/in/path?x=1"
      local set = {}
      ngx.header = setmetatable({}, { __newindex = function(_, k, v)
        set[k] = v
      end })
      local printed = {}
      ngx.print = function(s)
        printed[#printed + 1] = s
        return 1
      end

      local httpc = client({ input = { response(203, {
        "X-Out: 2", "Connection: keep-alive", "Transfer-Encoding: chunked",
      }) .. chunked({ "ab", "c" }) } })
      local res = assert(httpc:proxy_request())
      local req = parse_requests(net.sent())[1]
      assert.equal("PUT", req.method)
      assert.equal("/in/path?x=1", req.target)
      assert.equal("client.test", header(req, "host"))
      assert.equal("1", header(req, "x-in"))
      assert.is_nil(req.headers.connection)
      assert.equal("BODY", req.body)

      httpc:proxy_response(res)
      assert.equal(203, ngx.status)
      assert.same({ ["X-Out"] = "2" }, set)
      assert.same({ "ab", "c" }, printed)
    end)
  end)


  describe("body readers and yielding cosockets", function()
    it("use no coroutine of their own", function()
      local wire = response(200, { "Transfer-Encoding: chunked" })
                   .. chunked({ "a", "b" })
      local httpc = client({ input = { wire } })
      local saved = { create = coroutine.create, wrap = coroutine.wrap }
      coroutine.create = function() error("coroutine.create used") end
      coroutine.wrap = function() error("coroutine.wrap used") end
      local ok, body = pcall(function()
        local res = assert(httpc:request({}))
        return res:read_body()
      end)
      coroutine.create, coroutine.wrap = saved.create, saved.wrap
      assert.is_true(ok, body)
      assert.equal("ab", body)
    end)

    it("every socket yield reaches the request's coroutine", function()
      net.yields = true
      net.scripts[1] = { input = {
        response(200, { "Transfer-Encoding: chunked" })
        .. chunked({ "x", "yz" }),
        { after = "/2", data = response(200, { "Content-Length: 1" }, "w") },
      } }
      local co = coroutine.create(function()
        local httpc = assert(http.new())
        local res = assert(httpc:request_uri("http://h/1"))
        assert(httpc:connect({ scheme = "http", host = "h" }))
        local responses = assert(httpc:request_pipeline({ { path = "/2" } }))
        return res.body .. responses[1]:read_body()
      end)
      local yields = 0
      local ok, value = coroutine.resume(co)
      while coroutine.status(co) == "suspended" do
        assert.equal("io", value)
        yields = yields + 1
        ok, value = coroutine.resume(co)
      end
      assert.is_true(ok, value)
      assert.equal("xyzw", value)
      assert.is_true(yields > 5)
    end)
  end)


  describe("http_connect helpers", function()
    it("parse_proxy_uri", function()
      assert.same({ "p.test", 3128 },
                  { http_connect.parse_proxy_uri("http://p.test:3128/") })
      assert.same({ "::1", 80 },
                  { http_connect.parse_proxy_uri("http://[::1]") })
      assert.same({ nil, "bad proxy uri: http://" },
                  { http_connect.parse_proxy_uri("http://") })
    end)
  end)


  it("the JSON of a response is usable by cjson (plain tables)", function()
    local res = assert(exchange(response(200, { "Content-Length: 7" },
                                         '{"a":1}')))
    assert.same({ a = 1 }, cjson.decode(res:read_body()))
  end)
end)
