-- resty.http scenarios shared by two specs:
--   05-luasocket_spec.lua   runs each `code` in the spec process, resty.http
--                           over LuaSocket (luasocket_cosocket.lua);
--   10-integration_spec.lua runs it as pre-function access code in a real
--                           gateway, resty.http over Sluice's cosockets.
-- Both talk to the same real servers: the nginx mock upstream and, when a
-- scenario has `server`, a spec.helpers.tcp_server started with those
-- options. `code` reads its targets from request headers (X-Mock-Port,
-- X-Mock-Ssl-Port, X-Tcp-Port, X-Closed-Port, X-Run-Id) and answers with
-- kong.response.exit(200, result); `check(result, ctx)` asserts on the
-- decoded result, ctx = { mock, tcp_port, received (bytes the tcp_server
-- read on its first connection), closed_port }.
-- `gateway_only` scenarios need the gateway (phases, timers, shdict).

local assert = require "luassert"


local _M = {}


-- prepended to every scenario's code
_M.PRELUDE = [[
local http = require "resty.http"
local cjson = require "cjson.safe"
local MOCK = tonumber(kong.request.get_header("x-mock-port"))
local MOCK_SSL = tonumber(kong.request.get_header("x-mock-ssl-port"))
local TCP = tonumber(kong.request.get_header("x-tcp-port"))
local CLOSED = tonumber(kong.request.get_header("x-closed-port"))
local RUN_ID = kong.request.get_header("x-run-id") or ""
local function done(t)
  return kong.response.exit(200, t)
end
local function mock_url(path)
  return "http://127.0.0.1:" .. MOCK .. path
end
]]


local function contains(haystack, needle)
  return type(haystack) == "string"
         and haystack:find(needle, 1, true) ~= nil
end


_M.list = {
  {
    name = "request_uri_post",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(mock_url("/anything?a=1"), {
        method = "POST",
        body = "hello",
        query = { b = "2" },
        headers = { ["Content-Type"] = "text/plain", ["X-Test"] = "yes" },
      })
      if not res then
        return done({ err = err })
      end
      return done({
        status = res.status,
        reason = res.reason,
        powered = res.headers["x-powered-by"],
        ctype = res.headers.content_type,
        echo = cjson.decode(res.body),
      })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.equal(200, r.status)
      assert.equal("OK", r.reason)
      assert.equal("mock_upstream", r.powered)
      assert.equal("application/json", r.ctype)
      local echo = r.echo
      assert.equal("POST", echo.method)
      assert.equal("/anything?b=2", echo.uri)
      assert.equal("hello", echo.body)
      assert.equal("yes", echo.headers["x-test"])
      assert.equal("5", echo.headers["content-length"])
      assert.equal("127.0.0.1:" .. ctx.mock.port, echo.headers.host)
      assert.matches("^lua%-resty%-http/0%.17%.2 %(Lua%) ngx_lua/",
                     echo.headers["user-agent"])
      assert.equal(1.1, echo.vars.http_version)
    end,
  },

  {
    name = "chunked_stream",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(mock_url("/stream/3"))
      if not res then
        return done({ err = err })
      end
      local ids = {}
      for line in res.body:gmatch("[^\n]+") do
        ids[#ids + 1] = cjson.decode(line).id
      end
      return done({ status = res.status, ids = ids,
                    te = res.headers["Transfer-Encoding"] })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.equal(200, r.status)
      assert.same({ 0, 1, 2 }, r.ids)
      assert.equal("chunked", r.te)
    end,
  },

  {
    name = "body_reader_slices",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local ok, err = httpc:connect({ scheme = "http", host = "127.0.0.1",
                                      port = MOCK })
      if not ok then
        return done({ err = err })
      end
      local res
      res, err = httpc:request({ path = "/bytes/10000" })
      if not res then
        return done({ err = err })
      end
      local sizes, total = {}, 0
      repeat
        local chunk, rerr = res.body_reader(1000)
        if rerr then
          return done({ err = rerr })
        end
        if chunk then
          sizes[#sizes + 1] = #chunk
          total = total + #chunk
        end
      until not chunk
      local ka, kerr = httpc:set_keepalive()
      return done({ sizes = sizes, total = total, ka = ka, kerr = kerr,
                    cl = res.headers["Content-Length"] })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.equal("10000", r.cl)
      assert.equal(10000, r.total)
      assert.is_true(#r.sizes >= 10)
      for _, n in ipairs(r.sizes) do
        assert.is_true(n >= 1 and n <= 1000)
      end
      assert.equal(1, r.ka)
    end,
  },

  {
    name = "close_delimited",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      assert(httpc:connect({ scheme = "http", host = "127.0.0.1",
                             port = MOCK }))
      local res, err = httpc:request({ path = "/close-delimited/5000" })
      if not res then
        return done({ err = err })
      end
      local body
      body, err = res:read_body()
      local ka, kerr = httpc:set_keepalive()
      return done({ len = body and #body, err = err, ka = ka, kerr = kerr,
                    cl = res.headers["Content-Length"],
                    te = res.headers["Transfer-Encoding"] })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.is_nil(r.cl)
      assert.is_nil(r.te)
      assert.equal(5000, r.len)
      assert.equal(2, r.ka)
      assert.equal("connection must be closed", r.kerr)
    end,
  },

  {
    name = "keepalive_reuse",
    code = [[
      local reused, conns, counts, kas = {}, {}, {}, {}
      for i = 1, 3 do
        local httpc = http.new()
        httpc:set_timeout(5000)
        local ok, err = httpc:connect({ scheme = "http", host = "127.0.0.1",
                                        port = MOCK,
                                        pool = "reuse-" .. RUN_ID })
        if not ok then
          return done({ err = err })
        end
        reused[i] = httpc:get_reused_times()
        local res
        res, err = httpc:request({ path = "/get" })
        if not res then
          return done({ err = err })
        end
        local echo = cjson.decode(res:read_body())
        conns[i] = echo.vars.connection
        counts[i] = echo.vars.connection_requests
        kas[i] = httpc:set_keepalive(10000, 4)
      end
      return done({ reused = reused, conns = conns, counts = counts,
                    kas = kas })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.same({ 0, 1, 2 }, r.reused)
      assert.same({ 1, 1, 1 }, r.kas)
      assert.equal(r.conns[1], r.conns[2])
      assert.equal(r.conns[1], r.conns[3])
      assert.same({ 1, 2, 3 }, r.counts)
    end,
  },

  {
    name = "instance_reuse",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local statuses = {}
      for i = 1, 3 do
        local res, err = httpc:request_uri(mock_url("/status/20" .. i), {
          pool = "instance-" .. RUN_ID })
        if not res then
          return done({ err = err })
        end
        statuses[i] = res.status
      end
      return done({ statuses = statuses })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.same({ 201, 202, 203 }, r.statuses)
    end,
  },

  {
    name = "pipeline",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      assert(httpc:connect({ scheme = "http", host = "127.0.0.1",
                             port = MOCK }))
      local responses, err = httpc:request_pipeline({
        { path = "/status/201" },
        { path = "/status/404" },
        { path = "/get", method = "HEAD" },
        { path = "/get" },
      })
      if not responses then
        return done({ err = err })
      end
      local statuses, conns = {}, {}
      for i, r in ipairs(responses) do
        statuses[i] = r.status or "failed"
        local body = r:read_body()
        local echo = body and body ~= "" and cjson.decode(body)
        conns[i] = echo and echo.vars.connection or false
      end
      local ka = httpc:set_keepalive()
      return done({ statuses = statuses, conns = conns, ka = ka })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.same({ 201, 404, 200, 200 }, r.statuses)
      assert.is_false(r.conns[3])     -- HEAD: no body
      assert.equal(r.conns[1], r.conns[2])
      assert.equal(r.conns[1], r.conns[4])
      assert.equal(1, r.ka)
    end,
  },

  {
    name = "chunked_upload",
    code = [[
      local parts = { "alpha-", "beta-", "gamma" }
      local i = 0
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(mock_url("/post"), {
        method = "POST",
        body = function()
          i = i + 1
          return parts[i]
        end,
      })
      if not res then
        return done({ err = err })
      end
      local echo = cjson.decode(res.body)
      return done({ body = echo.body, te = echo.headers["transfer-encoding"],
                    cl = echo.headers["content-length"] })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.equal("alpha-beta-gamma", r.body)
      assert.equal("chunked", r.te)
      assert.is_nil(r.cl)
    end,
  },

  {
    name = "expect_continue_mock",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local payload = string.rep("p", 2000)
      local res, err = httpc:request_uri(mock_url("/post"), {
        method = "POST", body = payload,
        headers = { Expect = "100-continue" },
      })
      if not res then
        return done({ err = err })
      end
      local echo = cjson.decode(res.body)
      return done({ status = res.status, len = #echo.body,
                    expect = echo.headers.expect })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.equal(200, r.status)
      assert.equal(2000, r.len)
      assert.equal("100-continue", r.expect)
    end,
  },

  {
    name = "https_no_verify",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(
        "https://127.0.0.1:" .. MOCK_SSL .. "/get", {
          ssl_verify = false, ssl_server_name = "localhost" })
      if not res then
        return done({ err = err })
      end
      local echo = cjson.decode(res.body)
      return done({ status = res.status, scheme = echo.vars.scheme,
                    sni = echo.vars.ssl_server_name,
                    host = echo.headers.host })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.equal(200, r.status)
      assert.equal("https", r.scheme)
      assert.equal("localhost", r.sni)
      assert.equal("127.0.0.1:" .. ctx.mock.ssl_port, r.host)
    end,
  },

  {
    name = "https_verify_self_signed",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(
        "https://127.0.0.1:" .. MOCK_SSL .. "/get",
        { ssl_server_name = "localhost" })
      return done({ got_response = res ~= nil, err = err })
    ]],
    check = function(r)
      assert.is_false(r.got_response)
      assert.is_string(r.err)
    end,
  },

  {
    name = "refused",
    code = [[
      local httpc = http.new()
      httpc:set_timeout(2000)
      local res, err = httpc:request_uri("http://127.0.0.1:" .. CLOSED
                                         .. "/")
      return done({ got_response = res ~= nil, err = err })
    ]],
    check = function(r)
      assert.is_false(r.got_response)
      assert.equal("connection refused", r.err)
    end,
  },

  {
    name = "trailers",
    server = {
      responses = {
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        .. "Trailer: X-Sum\r\n\r\n"
        .. "5\r\nhello\r\n6;name=x\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
      },
    },
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      assert(httpc:connect({ scheme = "http", host = "127.0.0.1",
                             port = TCP }))
      local res, err = httpc:request({ path = "/t",
                                       headers = { TE = "trailers" } })
      if not res then
        return done({ err = err })
      end
      local chunks = {}
      repeat
        local chunk, rerr = res.body_reader()
        if rerr then
          return done({ err = rerr })
        end
        chunks[#chunks + 1] = chunk
      until not chunk
      local before = res.headers["X-Sum"]
      res:read_trailers()
      return done({ chunks = chunks, before = before or false,
                    after = res.headers["x-sum"] })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.same({ "hello", " world" }, r.chunks)
      assert.is_false(r.before)
      assert.equal("42", r.after)
      local got = ctx.received
      assert.matches("^GET /t HTTP/1%.1\r\n", got)
      assert.is_true(contains(got, "\r\nHost: 127.0.0.1:" .. ctx.tcp_port
                                   .. "\r\n"))
      assert.is_true(contains(got, "\r\nTE: trailers\r\n"))
      assert.matches("\r\n\r\n$", got)
    end,
  },

  {
    name = "until_close_http10",
    server = {
      responses = { "HTTP/1.0 200 OK\r\nX-A: b\r\n\r\n"
                    .. string.rep("z", 3000) },
    },
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri("http://127.0.0.1:" .. TCP .. "/c",
                                         { version = 1.0 })
      if not res then
        return done({ err = err })
      end
      return done({ len = #res.body, a = res.headers["X-A"],
                    only_z = res.body:find("^z+$") ~= nil })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.equal(3000, r.len)
      assert.is_true(r.only_z)
      assert.equal("b", r.a)
      assert.matches("^GET /c HTTP/1%.0\r\n", ctx.received)
    end,
  },

  {
    name = "read_timeout",
    server = { mode = "silent" },
    code = [[
      local httpc = http.new()
      httpc:set_timeouts(2000, 2000, 300)
      local t0 = ngx.now()
      local res, err = httpc:request_uri("http://127.0.0.1:" .. TCP .. "/")
      return done({ got_response = res ~= nil, err = err,
                    elapsed = ngx.now() - t0 })
    ]],
    check = function(r)
      assert.is_false(r.got_response)
      assert.equal("timeout", r.err)
      assert.is_true(r.elapsed >= 0.25, "elapsed " .. r.elapsed)
      assert.is_true(r.elapsed < 2, "elapsed " .. r.elapsed)
    end,
  },

  {
    name = "expect_417_without_body",
    server = {
      responses = { "HTTP/1.1 417 Expectation Failed\r\n"
                    .. "Content-Length: 4\r\n\r\nnope" },
    },
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      assert(httpc:connect({ scheme = "http", host = "127.0.0.1",
                             port = TCP }))
      local res, err = httpc:request({ method = "PUT", path = "/e",
        body = "SECRET-PAYLOAD", headers = { Expect = "100-continue" } })
      if not res then
        return done({ err = err })
      end
      local body = res:read_body()
      local ka, kerr = httpc:set_keepalive()
      return done({ status = res.status, body = body, ka = ka,
                    kerr = kerr })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.equal(417, r.status)
      assert.equal("nope", r.body)
      assert.equal(2, r.ka)
      assert.is_false(contains(ctx.received, "SECRET-PAYLOAD"))
      assert.is_true(contains(ctx.received, "\r\nExpect: 100-continue\r\n"))
    end,
  },

  {
    name = "http_proxy",
    server = {
      responses = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" },
    },
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri(
        "http://upstream.test:8080/p?q=1", { proxy_opts = {
          http_proxy = "http://127.0.0.1:" .. TCP,
          http_proxy_authorization = "Basic dTpw" } })
      if not res then
        return done({ err = err })
      end
      return done({ status = res.status, body = res.body })
    ]],
    check = function(r, ctx)
      assert.is_nil(r.err)
      assert.equal("ok", r.body)
      local got = ctx.received
      assert.matches("^GET http://upstream%.test:8080/p%?q=1 HTTP/1%.1\r\n",
                     got)
      assert.is_true(contains(got, "\r\nHost: upstream.test:8080\r\n"))
      assert.is_true(contains(got, "\r\nProxy-Authorization: Basic dTpw\r\n"))
    end,
  },

  {
    name = "https_proxy_refused",
    server = {
      responses = { "HTTP/1.1 407 Proxy Authentication Required\r\n"
                    .. "Content-Length: 0\r\n\r\n" },
    },
    code = [[
      local httpc = http.new()
      httpc:set_timeout(5000)
      local res, err = httpc:request_uri("https://upstream.test/x", {
        proxy_opts = { https_proxy = "http://127.0.0.1:" .. TCP,
                       https_proxy_authorization = "Basic eDp5" } })
      return done({ got_response = res ~= nil, err = err })
    ]],
    check = function(r, ctx)
      assert.is_false(r.got_response)
      assert.equal("failed to establish a tunnel through a proxy: 407", r.err)
      assert.equal("CONNECT upstream.test:443 HTTP/1.1\r\n"
                   .. "Host: upstream.test:443\r\n"
                   .. "Proxy-Authorization: Basic eDp5\r\n\r\n",
                   ctx.received)
    end,
  },

  {
    name = "timer",
    gateway_only = true,
    code = [[
      local key = "resty-http-timer-" .. RUN_ID
      local ok, terr = ngx.timer.at(0, function()
        local httpc = http.new()
        httpc:set_timeout(5000)
        local res, err = httpc:request_uri(mock_url("/status/202"))
        ngx.shared.kong:set(key, res and res.status or err)
      end)
      if not ok then
        return done({ err = terr })
      end
      for _ = 1, 200 do
        local v = ngx.shared.kong:get(key)
        if v then
          return done({ v = v })
        end
        ngx.sleep(0.02)
      end
      return done({ err = "no result from the timer" })
    ]],
    check = function(r)
      assert.is_nil(r.err)
      assert.equal(202, r.v)
    end,
  },
}


return _M
