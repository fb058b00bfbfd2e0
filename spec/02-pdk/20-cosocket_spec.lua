-- ngx.socket.tcp cosockets (core/lua/sl_lua_socket.c, lua/sluice/ngx/socket.lua)
-- through a real gateway: pre-function code (untrusted_lua = on) talks to raw
-- TCP peers (spec/fixtures/tcp_server.lua) and to the nginx mock upstream
-- over plain TCP and TLS, and answers what it saw as JSON.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local pki = require "spec.internal.pki"


-- `code` is the body of a function(port, arg); the route answers its return
-- value as JSON (or {error=...} with 500 when it raises).
local function route(name, code)
  local fn = "return function()\n"
    .. "  local port = tonumber(kong.request.get_query_arg('port'))\n"
    .. "  local arg = kong.request.get_query_arg('arg')\n"
    .. "  local ok, res = pcall(function()\n" .. code .. "\n  end)\n"
    .. "  if not ok then return kong.response.exit(500, { error = tostring(res) }) end\n"
    .. "  return kong.response.exit(200, res)\n"
    .. "end\n"
  return { name = name, paths = { "/" .. name },
           plugins = { { name = "pre-function", config = { access = { fn } } } } }
end


local ROUTES = {
  route("lines", [[
    local sock = ngx.socket.tcp()
    sock:settimeout(3000)
    assert(sock:connect("127.0.0.1", port))
    assert(sock:send({ "hel", { "lo" }, "\r\n\r\n" }))
    local r = {}
    r.l1 = sock:receive()
    r.l2 = sock:receive("*l")
    r.four = sock:receive(4)
    local reader = sock:receiveuntil("--BOUNDARY--")
    r.before = reader()
    r.rest = sock:receive("*a")
    local data, err, partial = sock:receive()
    r.after = { data = data, err = err, partial = partial }
    sock:close()
    return r
  ]]),
  route("chunks", [[
    local sock = ngx.socket.tcp()
    sock:settimeout(3000)
    assert(sock:connect("localhost", port))  -- via /etc/hosts
    assert(sock:send("x\r\n\r\n"))
    local reader = sock:receiveuntil("--B--")
    local chunks = {}
    while true do
      local data, err = reader(3)
      if not data then
        if err then error(err) end
        break
      end
      chunks[#chunks + 1] = data
    end
    local any = sock:receiveany(100)
    return { chunks = chunks, tail = any }
  ]]),
  route("errors", [[
    local r = {}
    local sock = ngx.socket.tcp()
    sock:settimeout(2000)
    r.refused = select(2, sock:connect("127.0.0.1", port))
    r.unresolved = select(2, sock:connect("no-such-host.invalid", 80))
    r.bad_port = select(2, sock:connect("127.0.0.1", 0))
    r.closed_send = select(2, sock:send("x"))
    r.closed_recv = select(2, sock:receive())
    r.closed_close = select(2, sock:close())
    return r
  ]]),
  route("timeout", [[
    local sock = ngx.socket.tcp()
    sock:settimeouts(2000, 2000, tonumber(arg))
    assert(sock:connect("127.0.0.1", port))
    assert(sock:send("ping\r\n\r\n"))
    local t0 = ngx.now()
    local data, err, partial = sock:receive()
    ngx.update_time()
    -- a read timeout leaves the connection open
    local sent = sock:send("still open\r\n")
    return { data = data, err = err, partial = partial,
             elapsed = ngx.now() - t0, sent = sent }
  ]]),
  route("fast", [[ return { fast = true } ]]),
  -- coroutines of the plugin's own may wait too (OpenResty's coroutine API)
  route("usercoro", [[
    local lines = {}
    local gen = coroutine.wrap(function()
      local sock = ngx.socket.tcp()
      sock:settimeout(3000)
      assert(sock:connect("127.0.0.1", port))
      assert(sock:send("hi\r\n\r\n"))
      while true do
        ngx.sleep(0.01)
        local line = sock:receive()
        if not line then break end
        coroutine.yield(line)
      end
    end)
    for line in gen do
      lines[#lines + 1] = line
    end
    local co = coroutine.create(function(a)
      local b = coroutine.yield(a + 1)
      ngx.sleep(0.01)
      return b * 2
    end)
    local r1 = { coroutine.resume(co, 1) }
    local r2 = { coroutine.resume(co, 10) }
    return { lines = lines, r1 = r1, r2 = r2, status = coroutine.status(co) }
  ]]),
  route("keepalive", [[
    local function get(path)
      local sock = ngx.socket.tcp()
      sock:settimeout(3000)
      assert(sock:connect("127.0.0.1", port))
      local reused = sock:getreusedtimes()
      assert(sock:send("GET " .. path .. " HTTP/1.1\r\nHost: mock\r\n\r\n"))
      local status = assert(sock:receive())
      local len, chunked
      while true do
        local line = assert(sock:receive())
        if line == "" then break end
        local v = line:lower():match("^content%-length:%s*(%d+)")
        if v then len = tonumber(v) end
        if line:lower():match("^transfer%-encoding:%s*chunked") then
          chunked = true
        end
      end
      local body = ""
      if chunked then
        while true do
          local size = tonumber(assert(sock:receive()), 16)
          if size == 0 then
            assert(sock:receive())  -- the last CRLF (no trailers)
            break
          end
          body = body .. assert(sock:receive(size))
          assert(sock:receive())
        end
      else
        body = assert(sock:receive(len))
      end
      assert(sock:setkeepalive(10000, 4))
      return { status = status, reused = reused, bytes = #body }
    end
    return { get("/anything"), get("/anything"), get("/anything") }
  ]]),
  route("tls", [[
    local host, verify = arg:match("^([^,]+),(%a+)$")
    local sock = ngx.socket.tcp()
    sock:settimeout(3000)
    assert(sock:connect("127.0.0.1", port))
    local session, err = sock:sslhandshake(nil, host, verify == "true")
    if not session then
      return { handshake_error = err }
    end
    assert(sock:send("GET /anything HTTP/1.1\r\nHost: " .. host
                     .. "\r\nConnection: close\r\n\r\n"))
    local status = sock:receive()
    local all = sock:receive("*a")
    return { status = status, sni = all:match('"ssl_server_name":"([^"]*)"') }
  ]]),
  route("timer", [[
    assert(ngx.timer.at(0, function(premature, p, tag)
      local sock = ngx.socket.tcp()
      sock:settimeout(3000)
      local ok, err = sock:connect("127.0.0.1", p)
      if not ok then
        ngx.log(ngx.ERR, "timer connect failed: ", err)
        return
      end
      sock:send("timer\r\n\r\n")
      local line = sock:receive()
      ngx.log(ngx.NOTICE, "timer ", tag, " read: ", line)
      sock:close()
    end, port, arg))
    return { scheduled = true }
  ]]),
}


describe("ngx.socket.tcp (cosockets)", function()
  local mock, client, pki_dir

  lazy_setup(function()
    pki_dir = pki.make(helpers.RUN_DIR .. "/cosocket-pki")
    mock = helpers.start_mock_upstream()
    pki.sh("cp " .. pki.q(pki_dir .. "/server.pem") .. " "
           .. pki.q(mock.prefix .. "/cert.pem"))
    pki.sh("cp " .. pki.q(pki_dir .. "/server.key") .. " "
           .. pki.q(mock.prefix .. "/key.pem"))
    assert.equal(0, require("posix.signal").kill(mock.pid, 1))
    helpers.sleep(0.3)
    local routes = {}
    for i, r in ipairs(ROUTES) do
      routes[i] = r
    end
    -- the log phase may not use cosockets (OpenResty's rule)
    routes[#routes + 1] = {
      name = "logphase", paths = { "/logphase" },
      plugins = { { name = "post-function", config = { log = { [[
        local ok, err = pcall(function()
          local sock = ngx.socket.tcp()
          return sock:connect("127.0.0.1", 1)
        end)
        ngx.log(ngx.NOTICE, "log phase cosocket: ", tostring(ok), " ", tostring(err))
      ]] } } } },
    }
    assert(helpers.start_kong({
      plugins = "bundled",
      untrusted_lua = "on",
      nginx_worker_processes = 1,
      lua_ssl_trusted_certificate = pki_dir .. "/ca.pem",
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "mock", url = mock.url, routes = routes } },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    mock:stop()
  end)

  before_each(function()
    client = helpers.proxy_client(10000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)

  local function call(path, port, arg, c)
    local res = assert((c or client):send {
      method = "GET", path = path,
      query = { port = port and tostring(port), arg = arg },
    })
    local body = assert.res_status(200, res)
    return cjson.decode(body)
  end

  it("sends arrays and reads lines, counts, up to a pattern and to the end",
     function()
    local server = helpers.tcp_server(nil, {
      response = "line one\r\nline two\nABCDEFGHIJ--BOUNDARY--rest-of-it",
    })
    local r = call("/lines", server.port)
    assert.equal("line one", r.l1)
    assert.equal("line two", r.l2)
    assert.equal("ABCD", r.four)
    assert.equal("EFGHIJ", r.before)
    assert.equal("rest-of-it", r.rest)
    assert.equal("closed", r.after.err)
    assert.equal("", r.after.partial)
    local _, got = server:join()
    assert.equal("hello\r\n\r\n", got)
  end)

  it("reads up to a pattern in chunks of a given size, and resolves /etc/hosts names",
     function()
    local server = helpers.tcp_server(nil, {
      responses = { { "aaaaa", 0.1, "aaaaa--", 0.1, "B--tail" } },
    })
    local r = call("/chunks", server.port)
    assert.equal("aaaaaaaaaa", table.concat(r.chunks))
    for _, c in ipairs(r.chunks) do
      assert.is_true(#c <= 3)
    end
    assert.equal("tail", r.tail)
    server:stop()
  end)

  it("reports connect, resolve and closed-socket errors as OpenResty", function()
    local r = call("/errors", helpers.get_available_port())
    assert.equal("connection refused", r.refused)
    assert.matches("no%-such%-host%.invalid could not be resolved", r.unresolved)
    assert.matches("bad port number", r.bad_port)
    assert.equal("closed", r.closed_send)
    assert.equal("closed", r.closed_recv)
    assert.equal("closed", r.closed_close)
  end)

  it("times a read out after the read timeout and keeps the connection", function()
    local server = helpers.tcp_server(nil, { mode = "silent", timeout = 5 })
    local r = call("/timeout", server.port, "300")
    assert.is_nil(r.data)
    assert.equal("timeout", r.err)
    assert.equal("", r.partial)
    assert.is_true(r.elapsed >= 0.25 and r.elapsed < 2, "elapsed " .. r.elapsed)
    assert.equal(#"still open\r\n", r.sent)
    server:stop()
  end)

  it("does not block the worker while a cosocket waits", function()
    local server = helpers.tcp_server(nil, { response = "late\r\n", delay = 1 })
    local slow = helpers.proxy_client(10000)
    local t0 = helpers.now()
    assert(slow:send_raw("GET /lines?port=" .. server.port
                         .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    helpers.sleep(0.1)
    -- the only worker answers another request at once
    assert.same({ fast = true }, call("/fast"))
    assert.is_true(helpers.now() - t0 < 0.9)
    local res = assert(slow:read_response())
    assert.equal(200, res.status)
    assert.equal("late", cjson.decode(res:read_body()).l1)
    slow:close()
    server:stop()
  end)

  it("lets coroutines of the plugin's own sleep and use cosockets", function()
    local server = helpers.tcp_server(nil, { response = "one\ntwo\nthree\n" })
    local r = call("/usercoro", server.port)
    assert.same({ "one", "two", "three" }, r.lines)
    assert.same({ true, 2 }, r.r1)
    assert.same({ true, 20 }, r.r2)
    assert.equal("dead", r.status)
    server:stop()
  end)

  it("pools connections with setkeepalive and counts reuse", function()
    local r = call("/keepalive", mock.port)
    assert.equal("HTTP/1.1 200 OK", r[1].status)
    assert.same({ 0, 1, 2 }, { r[1].reused, r[2].reused, r[3].reused })
    assert.is_true(r[3].bytes > 0)
  end)

  describe("sslhandshake", function()
    it("verifies the peer against lua_ssl_trusted_certificate and sends SNI",
       function()
      local r = call("/tls", mock.ssl_port, "localhost,true")
      assert.is_nil(r.handshake_error)
      assert.equal("HTTP/1.1 200 OK", r.status)
      assert.equal("localhost", r.sni)
    end)

    it("refuses a certificate for another name when verifying", function()
      local r = call("/tls", mock.ssl_port, "wrong-name.test,true")
      assert.matches("^%d+: ", r.handshake_error)
      assert.matches("mismatch", r.handshake_error)
    end)

    it("accepts it without verification", function()
      local r = call("/tls", mock.ssl_port, "wrong-name.test,false")
      assert.is_nil(r.handshake_error)
      assert.equal("HTTP/1.1 200 OK", r.status)
    end)
  end)

  it("works in ngx.timer callbacks", function()
    local server = helpers.tcp_server(nil, { response = "from timer\r\n" })
    assert.same({ scheduled = true }, call("/timer", server.port, "T1"))
    assert.logfile().has.line("timer T1 read: from timer", true, 5)
    server:stop()
  end)

  it("is refused in the log phase", function()
    assert.res_status(200, client:get("/logphase/anything"))
    assert.logfile().has.line(
      "log phase cosocket: false .*API disabled in the current context", false, 5)
  end)

  it("survives a client that leaves while its request waits on a socket",
     function()
    local server = helpers.tcp_server(nil, { mode = "silent", timeout = 5 })
    local c = helpers.proxy_client(10000)
    assert(c:send_raw("GET /timeout?arg=3000&port=" .. server.port
                      .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
    helpers.sleep(0.3)
    c:close()
    helpers.sleep(0.2)
    assert.same({ fast = true }, call("/fast"))
    server:stop()
  end)
end)
