-- spec.helpers itself: the HTTP client, the nginx mock upstream, the raw TCP
-- mock and the gateway lifecycle (against spec/fixtures/fake_sluice.sh),
-- all over real loopback sockets. Runs without build/sluice.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local stdlib = require "posix.stdlib"


local FAKE_BIN = helpers.ROOT .. "/spec/fixtures/fake_sluice.sh"


local function with_bin(bin, fn)
  local old = os.getenv("SLUICE_BIN")
  stdlib.setenv("SLUICE_BIN", bin)
  local ok, err = pcall(fn)
  stdlib.setenv("SLUICE_BIN", old)
  if not ok then
    error(err, 0)
  end
end


describe("helpers", function()

  describe("utilities", function()
    it("get_available_port() gives distinct bindable ports", function()
      local seen = {}
      for _ = 1, 20 do
        local p = helpers.get_available_port()
        assert.is_nil(seen[p])
        seen[p] = true
        assert.truthy(p > 0 and p < 65536)
      end
    end)

    it("wait_until() returns the values and raises on timeout", function()
      local n = 0
      local v = helpers.wait_until(function()
        n = n + 1
        return n >= 3 and "done"
      end, 2)
      assert.equal("done", v)

      local t0 = helpers.now()
      local ok, err = pcall(helpers.wait_until, function()
        error("not yet")
      end, 0.3)
      assert.is_false(ok)
      assert.matches("wait_until() timeout", err, 1, true)
      assert.matches("not yet", err, 1, true)
      assert.truthy(helpers.now() - t0 < 2)
    end)

    it("test_conf holds per-run defaults", function()
      local c = helpers.test_conf
      assert.matches("^/tmp/sluice%-spec%-%d+/servroot$", c.prefix)
      assert.matches("^127%.0%.0%.1:%d+$", c.proxy_listen)
      assert.matches("^127%.0%.0%.1:%d+$", c.admin_listen)
      assert.equal(1, c.worker_processes)
      assert.equal("debug", c.log_level)
      assert.is_number(helpers.get_proxy_port())
      assert.is_number(helpers.get_admin_port())
    end)

    it("write_conf() writes name = value lines and YAML", function()
      local path = helpers.write_conf({
        a = true, b = false, list = { "x", "y" }, n = 3,
        declarative_config = { _format_version = "3.0", services = {} },
      })
      local text = helpers.file.read(path)
      assert.matches("a = on\n", text, 1, true)
      assert.matches("b = off\n", text, 1, true)
      assert.matches("list = x,y\n", text, 1, true)
      assert.matches("n = 3\n", text, 1, true)
      local yml = text:match("declarative_config = (%S+)")
      assert.matches("_format_version: '3.0'",
                     helpers.file.read(yml), 1, true)
    end)

    it("get_db_utils() blueprints become a declarative config", function()
      local bp = helpers.get_db_utils("off", nil, { "key-auth" })
      local s = bp.services:insert({ name = "s1", url = "http://h:1" })
      local r = bp.routes:insert({ name = "r1", paths = { "/x" },
                                   service = s })
      local r2 = bp.routes:insert({ paths = { "/y" } })
      local c = bp.consumers:insert({ username = "alice" })
      bp.keyauth_credentials:insert({ key = "k1", consumer = c })
      bp.plugins:insert({ name = "key-auth", route = { id = r.id },
                          config = { key_names = { "apikey" } } })
      assert.matches("^%x+%-%x+%-4%x+%-[89ab]%x+%-%x+$", r.id)
      assert.same({ id = s.id }, r.service)

      local lyaml = require "lyaml"
      local dc = lyaml.load(helpers.file.read(helpers.make_yaml_file()))
      assert.equal("3.0", dc._format_version)
      assert.equal(2, #dc.services)
      assert.equal(s.id, dc.routes[1].service)
      assert.equal(r2.service.id, dc.services[2].id)
      assert.equal("127.0.0.1", dc.services[2].host)
      assert.equal(c.id, dc.keyauth_credentials[1].consumer)
      assert.equal(r.id, dc.plugins[1].route)
      assert.same({ key_names = { "apikey" } }, dc.plugins[1].config)

      helpers.get_db_utils()
      assert.is_nil(lyaml.load(helpers.file.read(
        helpers.make_yaml_file())).services)
      for _, strategy in helpers.each_strategy() do
        assert.equal("off", strategy)
      end
    end)

    it("logfile assertions and clean_logfile()", function()
      local path = helpers.RUN_DIR .. "/test.log"
      helpers.file.write(path, "one\n[error] two: boom\nthree\n")
      assert.logfile(path).has.line("[error] two", true)
      assert.logfile(path).has.line("two: %a+$")
      assert.logfile(path).has.no.line("four", true)
      local ok, err = pcall(function()
        assert.logfile(path).has.line("four", true, 0.1)
      end)
      assert.is_false(ok)
      assert.matches("three", tostring(err), 1, true)
      helpers.clean_logfile(path)
      assert.equal("", helpers.file.read(path))
    end)

    it("is_json", function()
      local t = assert.is_json('{"a": 1}')
      assert.same({ a = 1 }, t)
      assert.is_not_json("{nope")
    end)
  end)


  describe("mock upstream + http client", function()
    local mock, client

    lazy_setup(function()
      mock = helpers.start_mock_upstream()
    end)

    lazy_teardown(function()
      if mock then
        mock.stop()
        assert.is_false(helpers.pid_alive(mock.pid))
      end
    end)

    before_each(function()
      client = helpers.http_client(mock.host, mock.port, 5000)
    end)

    after_each(function()
      if client then
        client:close()
      end
    end)

    it("echoes method, path, query and headers", function()
      for _, m in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE",
                           "OPTIONS" }) do
        local res = assert(client:send({
          method = m,
          path = "/anything/x",
          query = { a = "1", b = { "2", "3" }, flag = true },
          headers = { ["X-One"] = "1", ["X-Many"] = { "a", "b" } },
        }))
        local body = assert.res_status(200, res)
        local echo = cjson.decode(body)
        assert.equal(m, echo.method)
        assert.equal("/anything/x", echo.path)
        assert.equal("/anything/x?a=1&b=2&b=3&flag", echo.uri)
        assert.same({ a = "1", b = { "2", "3" }, flag = true }, echo.query)
        assert.equal("1", echo.headers["x-one"])
        assert.same({ "a", "b" }, echo.headers["x-many"])
        assert.equal("http", echo.vars.scheme)
        assert.equal(tostring(mock.port), echo.vars.server_port)
      end
    end)

    it("accepts a query string", function()
      local res = assert(client:get("/get", { query = "?x=1&y" }))
      local echo = assert.response(res).has.jsonbody()
      assert.equal("/get?x=1&y", echo.uri)
    end)

    it("sends a JSON body (default for tables)", function()
      local res = assert(client:post("/post", {
        body = { hello = "world", n = 1 },
      }))
      assert.response(res).has.status(200)
      assert.same({ hello = "world", n = 1 },
                  assert.request(res).has.jsonbody())
      assert.equal("application/json",
                   assert.request(res).has.header("Content-Type"))
    end)

    it("sends a form body", function()
      local res = assert(client:post("/post", {
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = { a = "x y", b = "2" },
      }))
      assert.res_status(200, res)
      assert.equal("x y", assert.request(res).has.formparam("a"))
      assert.equal("2", assert.request(res).has.formparam("b"))
    end)

    it("sends a chunked request body, echoed whole", function()
      local parts = { "first,", "second,", "third" }
      local i = 0
      local res = assert(client:post("/post", {
        headers = { ["Content-Type"] = "text/plain" },
        body = function()
          i = i + 1
          return parts[i]
        end,
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("chunked", echo.headers["transfer-encoding"])
      assert.equal("first,second,third", echo.body)
      assert.equal("first,second,third", echo.post_data.text)
    end)

    it("request assertions read the echo", function()
      local res = assert(client:get("/request", {
        query = { q = "v" },
        headers = { ["X-Hello"] = "world" },
      }))
      assert.response(res).has.status(200)
      assert.equal("world", assert.request(res).has.header("x-hello"))
      assert.equal("v", assert.request(res).has.queryparam("q"))
      assert.request(res).has.no.header("x-missing")
      assert.response(res).has.header("X-Powered-By")
    end)

    it("res_status failure shows the body", function()
      local res = assert(client:get("/status/404"))
      local ok, err = pcall(function()
        assert.res_status(200, res)
      end)
      assert.is_false(ok)
      err = tostring(err)
      assert.matches("Status expected:", err, 1, true)
      assert.matches("404", err, 1, true)
      assert.matches('"code":404', err, 1, true)
    end)

    it("answers /status/<code>, with and without a body", function()
      local res = assert(client:get("/status/418"))
      assert.equal(418, res.status)
      assert.equal(418, assert.response(res).has.jsonbody().code)

      res = assert(client:get("/status/204"))
      assert.equal(204, res.status)
      assert.equal("", res:read_body())

      res = assert(client:get("/status/200"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("response headers: case-insensitive, repeated as arrays", function()
      local res = assert(client:get("/response-headers", {
        query = { ["X-Test"] = "v1", ["Set-Cookie"] = { "a=1", "b=2" } },
      }))
      assert.res_status(200, res)
      assert.equal("v1", res.headers["x-test"])
      assert.equal("v1", res.headers["X-TEST"])
      assert.same({ "a=1", "b=2" }, res.headers["set-cookie"])
      assert.equal("application/json", res.headers["Content-Type"])
    end)

    it("reuses the connection (keep-alive)", function()
      local conn
      for i = 1, 5 do
        local res = assert(client:get("/get"))
        local echo = cjson.decode(assert.res_status(200, res))
        conn = conn or echo.vars.connection
        assert.equal(conn, echo.vars.connection)
        assert.equal(i, echo.vars.connection_requests)
      end
      assert.equal(1, client.connects)
    end)

    it("drains an unread body before the next request", function()
      assert(client:get("/bytes/200000"))
      local res = assert(client:get("/get"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("reads Content-Length bodies, large ones streamed", function()
      local res = assert(client:get("/bytes/1000"))
      assert.equal("1000", res.headers["content-length"])
      assert.equal(string.rep("x", 1000), res:read_body())

      local size = 50 * 1024 * 1024
      res = assert(client:get("/bytes/" .. size))
      assert.equal(tostring(size), res.headers["content-length"])
      assert.equal(size, res:discard_body())
      assert.equal(1, client.connects)
    end)

    it("reads chunked responses", function()
      local res = assert(client:get("/stream/4"))
      assert.equal(200, res.status)
      assert.equal("chunked", res.headers["transfer-encoding"])
      assert.is_nil(res.headers["content-length"])
      local lines = 0
      for line in assert(res:read_body()):gmatch("[^\n]+") do
        assert.equal(lines, cjson.decode(line).id)
        lines = lines + 1
      end
      assert.equal(4, lines)

      res = assert(client:get("/bytes-chunked/300000"))
      assert.equal("chunked", res.headers["transfer-encoding"])
      local got = 0
      for piece in res:body_reader(10000) do
        assert.truthy(#piece <= 10000)
        got = got + #piece
      end
      assert.equal(300000, got)
      assert.equal(1, client.connects)
    end)

    it("reads close-delimited responses, then reconnects", function()
      local res = assert(client:get("/close-delimited/123456"))
      assert.equal(200, res.status)
      assert.is_nil(res.headers["content-length"])
      assert.is_nil(res.headers["transfer-encoding"])
      assert.equal("close", res.headers["connection"])
      assert.equal(123456, #res:read_body())
      assert.is_nil(client.sock)

      res = assert(client:get("/get"))
      assert.res_status(200, res)
      assert.equal(2, client.connects)
    end)

    it("handles HEAD (no body) and keeps the connection", function()
      local res = assert(client:send({ method = "HEAD", path = "/bytes/5000" }))
      assert.equal(200, res.status)
      assert.equal("5000", res.headers["content-length"])
      assert.equal("", res:read_body())
      res = assert(client:get("/get"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("waits on /delay/<s>", function()
      local t0 = helpers.now()
      local res = assert(client:get("/delay/0.3"))
      assert.res_status(200, res)
      assert.truthy(helpers.now() - t0 >= 0.25)
    end)

    it("times out instead of hanging", function()
      local c = helpers.http_client(mock.host, mock.port, 200)
      local t0 = helpers.now()
      local res, err = c:get("/delay/3")
      assert.is_nil(res)
      assert.matches("timeout", err)
      assert.truthy(helpers.now() - t0 < 2)
      c:close()
    end)

    it("speaks https to the mock", function()
      local c = helpers.http_client({
        host = mock.host,
        port = mock.ssl_port,
        scheme = "https",
        ssl_verify = false,
        server_name = "example.test",
      })
      for i = 1, 2 do
        local res = assert(c:get("/get"))
        local echo = cjson.decode(assert.res_status(200, res))
        assert.equal("https", echo.vars.scheme)
        assert.equal("on", echo.vars.https)
        assert.equal("example.test", echo.vars.ssl_server_name)
        assert.equal(i, echo.vars.connection_requests)
      end
      c:close()
    end)

    it("raw: malformed request, whatever comes back", function()
      assert(client:send_raw("GARBAGE\r\n\r\n"))
      local data, how = client:receive_raw_response(3000)
      assert.matches("^HTTP/1%.1 400", data)
      assert.truthy(how == "closed" or how == "complete")
    end)

    it("raw: send bytes, parse the response", function()
      assert(client:send_raw("GET /raw?a=1 HTTP/1.1\r\nHost: x\r\n"
                             .. "Content-Length: 3\r\n\r\nabc"))
      local res = assert(client:read_response())
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("/raw?a=1", echo.uri)
      assert.equal("abc", echo.body)

      assert(client:send_raw("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
      local data, how = client:receive_raw_response(3000)
      assert.equal("complete", how)
      assert.matches("^HTTP/1%.1 200", data)
    end)

    it("raw: a silent peer ends in a timeout", function()
      assert(client:send_raw("GET / HTTP/1.1\r\nHost: x\r\n"))
      local t0 = helpers.now()
      local data, how = client:receive_raw_response(300)
      assert.equal("", data)
      assert.equal("timeout", how)
      assert.truthy(helpers.now() - t0 < 1.5)
    end)
  end)


  describe("tcp_server", function()
    it("answers with raw bytes and records the request", function()
      local srv = helpers.tcp_server(nil, {
        responses = { "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n"
                      .. "X-Raw: 1\r\n\r\nok" },
      })
      local c = helpers.http_client(srv.host, srv.port, 3000)
      local res = assert(c:post("/up", { body = "payload" }))
      assert.equal(201, res.status)
      assert.equal("1", res.headers["x-raw"])
      assert.equal("ok", res:read_body())
      c:close()
      local ok, data = srv:join(5)
      assert.is_true(ok)
      assert.matches("^POST /up HTTP/1%.1\r\n", data)
      assert.matches("\r\n\r\npayload$", data)
    end)

    it("serves n connections, with split writes and pauses", function()
      local srv = helpers.tcp_server(nil, {
        n = 2,
        responses = {
          { "HTTP/1.1 200 OK\r\n", 0.1, "Content-Length: 5\r\n\r\nhel", 0.1,
            "lo" },
          "HTTP/1.0 200 OK\r\n\r\nclose-delimited",
        },
      })
      local c = helpers.http_client(srv.host, srv.port, 3000)
      local res = assert(c:get("/1"))
      assert.equal("hello", res:read_body())
      c:close()
      res = assert(c:get("/2"))
      assert.equal("close-delimited", res:read_body())
      assert.equal(2, c.connects)
      local ok, list = srv:join(5)
      assert.is_true(ok)
      assert.equal(2, #list)
      assert.matches("^GET /2 ", list[2])
    end)

    it("closes at once, or stays silent (bounded)", function()
      local srv = helpers.tcp_server(nil, { mode = "close" })
      local c = helpers.http_client(srv.host, srv.port, 2000)
      local res, err = c:get("/")
      assert.is_nil(res)
      assert.truthy(err)
      assert.is_true((srv:join(5)))
      c:close()

      srv = helpers.tcp_server(nil, { mode = "silent", timeout = 2 })
      c = helpers.http_client(srv.host, srv.port, 300)
      res, err = c:get("/silent")
      assert.is_nil(res)
      assert.matches("timeout", err)
      c:close()
      local ok, data = srv:join(5)
      assert.is_true(ok)
      assert.matches("^GET /silent ", data)
    end)

    it("exits after its timeout with no connection", function()
      local srv = helpers.tcp_server(nil, { timeout = 0.3 })
      local ok, data = srv:join(5)
      assert.is_true(ok)
      assert.is_nil(data)
      assert.is_false(helpers.pid_alive(srv.pid))
    end)
  end)


  describe("gateway lifecycle (fake binary)", function()
    it("kong_exec() returns ok, stdout, stderr, code", function()
      with_bin("/bin/echo", function()
        local ok, out, err, code = helpers.kong_exec("hello world",
                                                     { log_level = "info" })
        assert.is_true(ok)
        assert.equal("hello world\n", out)
        assert.equal("", err)
        assert.equal(0, code)
      end)
      with_bin("/bin/false", function()
        local ok, _, _, code = helpers.kong_exec("x")
        assert.is_false(ok)
        assert.equal(1, code)
      end)
    end)

    it("start_kong() reports a failing start", function()
      with_bin("/bin/false", function()
        local ok, err = helpers.start_kong()
        assert.is_nil(ok)
        assert.matches("start' failed (exit 1)", err, 1, true)
      end)
    end)

    it("start_kong(), proxy_client(), stop_kong()", function()
      with_bin(FAKE_BIN, function()
        assert(helpers.start_kong({
          declarative_config = { _format_version = "3.0", services = {} },
        }))
        local pid = helpers.get_pid()
        assert.truthy(helpers.pid_alive(pid))
        local ok = helpers.kong_exec("health -p " .. helpers.test_conf.prefix)
        assert.is_true(ok)

        local c = helpers.proxy_client(3000)
        local res = assert(c:get("/"))
        assert.equal("fake", assert.res_status(200, res))
        c:close()
        assert.logfile().has.line("start worker process", true, 5)

        assert(helpers.stop_kong(nil, true))
        assert.is_false(helpers.pid_alive(pid))
        assert.truthy(helpers.file.exists(helpers.test_conf.prefix))
        helpers.stop_kong()
        assert.is_false(helpers.file.exists(helpers.test_conf.prefix))
      end)
    end)

    it("start_kong() with daemon = off runs it as a child", function()
      with_bin(FAKE_BIN, function()
        assert(helpers.start_kong({ daemon = "off" }))
        local pid = helpers.get_pid()
        assert.truthy(helpers.pid_alive(pid))
        local c = helpers.proxy_client(3000)
        assert.res_status(200, assert(c:get("/")))
        c:close()
        helpers.stop_kong()
        assert.is_false(helpers.pid_alive(pid))
      end)
    end)
  end)
end)
