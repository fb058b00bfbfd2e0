-- Reverse proxy behaviour of the real gateway (build/sluice, or $SLUICE_BIN)
-- against the nginx mock upstream and raw scripted upstreams: what reaches
-- the upstream, what comes back, connection reuse on both sides,
-- pipelining, Kong's headers, hop-by-hop filtering and streaming of large
-- bodies with bounded memory.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"


local REQ_ID = "^%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x%x$"


-- All the values of a header joined with ", " (nil when absent).
local function hjoin(v)
  if type(v) == "table" then
    return table.concat(v, ", ")
  end
  return v
end


-- Lower-cased header names present in a raw response head.
local function raw_head(data)
  local head_end = data:find("\r\n\r\n", 1, true)
  assert(head_end, "no complete response head in: " .. data:sub(1, 300))
  local head = data:sub(1, head_end + 1)
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local names = {}
  for name, value in head:gmatch("\r\n([^:\r\n]+):[ \t]*([^\r\n]*)") do
    names[name:lower()] = value
  end
  return status, names, data:sub(head_end + 4)
end


local function worker_pids()
  local master = assert(helpers.get_pid(), "no master pid")
  local p = io.popen("pgrep -P " .. master)
  local out = p:read("*a")
  p:close()
  local pids = {}
  for pid in out:gmatch("%d+") do
    pids[#pids + 1] = tonumber(pid)
  end
  return pids
end


-- VmRSS of a process, in kB.
local function rss_kb(pid)
  local f = io.open("/proc/" .. pid .. "/status", "r")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end


local function the_worker()
  local pids
  helpers.wait_until(function()
    pids = worker_pids()
    return #pids == 1
  end, 5)
  return pids[1]
end


-- Under AddressSanitizer (SLUICE_BIN=build/sluice-asan) freed memory sits
-- in a 256 MB quarantine and counts in RSS: shrink it so that the memory
-- bounds below keep their meaning.
local function sanitizer_env()
  if not helpers.bin():find("asan", 1, true) then
    return nil
  end
  local opts = os.getenv("ASAN_OPTIONS")
  opts = (opts and opts ~= "") and (opts .. ":") or ""
  return { ASAN_OPTIONS = opts .. "quarantine_size_mb=8" }
end


describe("proxy", function()
  local mock
  local raw_port

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    raw_port = helpers.get_available_port()
    assert(helpers.start_kong({
      declarative_config = {
        _format_version = "3.0",
        services = {
          {
            name = "echo",
            url = mock.url,
            routes = {
              { name = "echo", paths = { "/echo" } },
              { name = "preserve", paths = { "/preserve" },
                preserve_host = true },
              { name = "nostrip", paths = { "/anything" },
                strip_path = false },
            },
          },
          {
            name = "raw",
            url = "http://127.0.0.1:" .. raw_port,
            retries = 0,
            read_timeout = 3000,
            routes = { { name = "raw", paths = { "/raw" } } },
          },
        },
      },
    }, { env = sanitizer_env() }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  local client

  before_each(function()
    client = helpers.proxy_client(10000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  describe("request to the upstream", function()
    it("carries method, path and query byte for byte", function()
      local query = "a=1&b=%20c&c=%2F%3F&d=x+y&&e=&f&g=%E2%82%AC&h=a%3Db"
      for _, method in ipairs({ "GET", "POST", "PUT", "PATCH", "DELETE",
                                "OPTIONS" }) do
        local res = assert(client:send({
          method = method,
          path = "/echo/anything/some/path",
          query = query,
        }))
        local body = assert.res_status(200, res)
        local echo = cjson.decode(body)
        assert.equal(method, echo.method)
        assert.equal("/anything/some/path", echo.path)
        assert.equal("/anything/some/path?" .. query, echo.uri)
        assert.equal(query, echo.vars.args)
      end
    end)

    it("carries request headers, repeated ones included", function()
      local res = assert(client:get("/echo/anything", {
        headers = {
          ["X-Custom"] = "Some Value; with=params",
          ["X-Many"] = { "one", "two" },
          ["Accept"] = "application/x-spec",
          ["Authorization"] = "Bearer abc.def",
          ["Cookie"] = "a=1; b=2",
        },
      }))
      local body = assert.res_status(200, res)
      local echo = cjson.decode(body)
      assert.equal("Some Value; with=params", echo.headers["x-custom"])
      assert.same({ "one", "two" }, echo.headers["x-many"])
      assert.equal("application/x-spec", echo.headers["accept"])
      assert.equal("Bearer abc.def", echo.headers["authorization"])
      assert.equal("a=1; b=2", echo.headers["cookie"])
      assert.equal("sluice-spec-client/1.0", echo.headers["user-agent"])
    end)

    it("carries a body sent with Content-Length", function()
      local payload = string.rep("0123456789", 1000) .. "\0\r\n\255end"
      local res = assert(client:post("/echo/anything", {
        headers = { ["Content-Type"] = "application/octet-stream" },
        body = payload,
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal(#payload, #echo.body)
      assert.equal(payload, echo.body)
    end)

    it("carries a chunked body", function()
      local pieces = { "first,", string.rep("m", 70000), ",", "", "last" }
      local i = 0
      local res = assert(client:send({
        method = "PUT",
        path = "/echo/anything",
        headers = { ["Content-Type"] = "text/plain" },
        body = function()
          i = i + 1
          return pieces[i]
        end,
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal(table.concat(pieces), echo.body)
      assert.equal("PUT", echo.method)
    end)

    it("carries an empty POST body", function()
      local res = assert(client:post("/echo/anything", { body = "" }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("", echo.body)
      assert.equal("POST", echo.method)
    end)

    it("answers Expect: 100-continue before the body", function()
      assert(client:send_raw("POST /echo/anything HTTP/1.1\r\nHost: x\r\n"
                             .. "Content-Length: 5\r\n"
                             .. "Expect: 100-continue\r\n\r\n"))
      local data = client:receive_raw_response(3000, { no_parse = true,
                                                       idle = 300 })
      assert.matches("^HTTP/1%.1 100 Continue\r\n\r\n$", data)
      assert(client.sock:send("hello"))
      local res = assert(client:read_response({ method = "POST" }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("hello", echo.body)
    end)

    it("sends the service host as Host", function()
      local res = assert(client:get("/echo/anything", {
        headers = { Host = "client.example.test" },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("127.0.0.1:" .. mock.port, echo.headers.host)
    end)

    it("sends the client's Host with preserve_host", function()
      local res = assert(client:get("/preserve/anything", {
        headers = { Host = "client.example.test:8123" },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("client.example.test:8123", echo.headers.host)
      assert.equal("/anything", echo.path)
    end)

    it("keeps the path without strip_path", function()
      local res = assert(client:get("/anything/x/y"))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("/anything/x/y", echo.path)
    end)
  end)


  describe("response from the upstream", function()
    it("passes status, headers and body through", function()
      local res = assert(client:get("/echo/status/201"))
      local body = assert.res_status(201, res)
      local echo = cjson.decode(body)
      assert.equal(201, echo.code)
      assert.equal("mock_upstream", res.headers["X-Powered-By"])
      assert.equal("application/json", res.headers["Content-Type"])

      for _, code in ipairs({ 200, 202, 301, 400, 404, 418, 500, 503 }) do
        res = assert(client:get("/echo/status/" .. code))
        body = assert.res_status(code, res)
        assert.equal(code, cjson.decode(body).code)
      end
    end)

    it("passes arbitrary and repeated response headers", function()
      local res = assert(client:get("/echo/response-headers", {
        query = "X-Resp-One=hello%20world&X-Resp-Many=a&X-Resp-Many=b"
                .. "&Cache-Control=no-store",
      }))
      assert.res_status(200, res)
      assert.equal("hello world", res.headers["X-Resp-One"])
      assert.same({ "a", "b" }, res.headers["X-Resp-Many"])
      assert.equal("no-store", res.headers["Cache-Control"])
    end)

    it("answers HEAD with the headers and no body", function()
      assert(client:send_raw("HEAD /echo/bytes/1000 HTTP/1.1\r\n"
                             .. "Host: x\r\n\r\n"
                             .. "GET /echo/bytes/3 HTTP/1.1\r\n"
                             .. "Host: x\r\n\r\n"))
      local res = assert(client:read_response({ method = "HEAD" }))
      assert.equal(200, res.status)
      assert.equal("1000", res.headers["Content-Length"])
      -- The next response follows at once: nothing of a body came first.
      res = assert(client:read_response({ method = "GET" }))
      assert.equal(200, res.status)
      assert.equal("xxx", res:read_body())
    end)

    it("answers HEAD to a chunked upstream response with no body",
       function()
      assert(client:send_raw("HEAD /echo/anything HTTP/1.1\r\n"
                             .. "Host: x\r\n\r\n"
                             .. "GET /echo/bytes/3 HTTP/1.1\r\n"
                             .. "Host: x\r\n\r\n"))
      local data = client:receive_raw_response(5000, { no_parse = true,
                                                       idle = 1000 })
      local status, _, rest = raw_head(data)
      assert.equal(200, status)
      -- straight after the HEAD response's head: the next response
      assert.matches("^HTTP/1%.1 200 ", rest)
      assert.matches("\r\n\r\nxxx$", rest)
    end)

    for _, code in ipairs({ 204, 304 }) do
      it("sends no body with " .. code, function()
        assert(client:send_raw("GET /echo/status/" .. code .. " HTTP/1.1\r\n"
                               .. "Host: x\r\n\r\n"))
        local data = client:receive_raw_response(5000, { idle = 500 })
        local status, head, rest = raw_head(data)
        assert.equal(code, status)
        assert.equal("", rest)
        assert.is_nil(head["transfer-encoding"])
        local cl = head["content-length"]
        assert.truthy(cl == nil or cl == "0")

        -- the connection is still usable
        local res = assert(client:get("/echo/anything"))
        assert.res_status(200, res)
      end)
    end

    it("adds Server only when the upstream sent none", function()
      local res = assert(client:get("/echo/anything"))
      assert.res_status(200, res)
      assert.matches("^nginx", res.headers["Server"])
      assert.is_string(res.headers["Server"])   -- not duplicated

      local srv = helpers.tcp_server(raw_port, {
        responses = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                      .. "Connection: close\r\n\r\nok" },
      })
      res = assert(client:get("/raw/x"))
      assert.equal("ok", assert.res_status(200, res))
      assert.matches("^sluice/%d", res.headers["Server"])
      srv:join(5)
    end)

    it("appends its Via to the upstream's Via", function()
      local res = assert(client:get("/echo/response-headers", {
        query = "Via=1.0%20upstream-proxy",
      }))
      assert.res_status(200, res)
      local via = hjoin(res.headers["Via"])
      assert.matches("^1%.0 upstream%-proxy, 1%.1 sluice/%d", via)
    end)
  end)


  describe("connections", function()
    it("serves several requests on one client connection", function()
      for i = 1, 10 do
        local res = assert(client:get("/echo/anything", {
          query = "i=" .. i,
        }))
        local echo = cjson.decode(assert.res_status(200, res))
        assert.equal("/anything?i=" .. i, echo.uri)
      end
      assert.equal(1, client.connects)
    end)

    it("reuses upstream connections", function()
      local first, last_req
      for i = 1, 5 do
        local res = assert(client:get("/echo/anything"))
        local echo = cjson.decode(assert.res_status(200, res))
        first = first or echo.vars.connection
        assert.equal(first, echo.vars.connection)
        if last_req then
          assert.equal(last_req + 1, echo.vars.connection_requests)
        end
        last_req = echo.vars.connection_requests
      end
      -- a new client connection takes the same pooled upstream one
      client:close()
      client = helpers.proxy_client(10000)
      local res = assert(client:get("/echo/anything"))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal(first, echo.vars.connection)
    end)

    it("answers pipelined requests in order", function()
      local reqs = {}
      for i = 1, 5 do
        local method = (i % 2 == 0) and "POST" or "GET"
        local body = method == "POST" and ("body-" .. i) or ""
        reqs[#reqs + 1] = method .. " /echo/anything?n=" .. i
                          .. " HTTP/1.1\r\nHost: x\r\n"
                          .. (method == "POST"
                              and ("Content-Length: " .. #body .. "\r\n")
                              or "")
                          .. "\r\n" .. body
      end
      assert(client:send_raw(table.concat(reqs)))
      for i = 1, 5 do
        local res = assert(client:read_response({ method = "GET" }))
        local echo = cjson.decode(assert.res_status(200, res))
        assert.equal("/anything?n=" .. i, echo.uri)
        if i % 2 == 0 then
          assert.equal("POST", echo.method)
          assert.equal("body-" .. i, echo.body)
        else
          assert.equal("GET", echo.method)
        end
      end
    end)

    it("closes the client connection after Connection: close", function()
      local res = assert(client:get("/echo/anything", {
        headers = { Connection = "close" },
      }))
      assert.res_status(200, res)
      assert.matches("close", res.headers["Connection"]:lower(), 1, true)
      assert.is_nil(client.sock)  -- the client saw the close
    end)
  end)


  describe("Kong's headers", function()
    it("sends X-Forwarded-*, X-Real-IP, Via and the request id upstream",
       function()
      local res = assert(client:get("/echo/anything/x", {
        query = "q=1",
        headers = {
          ["X-Forwarded-For"] = "10.1.2.3",
          ["Host"] = "front.example.test",
          ["Via"] = "1.0 client-proxy",
        },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      local h = echo.headers
      assert.equal("10.1.2.3, 127.0.0.1", h["x-forwarded-for"])
      assert.equal("127.0.0.1", h["x-real-ip"])
      assert.equal("http", h["x-forwarded-proto"])
      assert.equal("front.example.test", h["x-forwarded-host"])
      assert.equal(tostring(helpers.get_proxy_port()), h["x-forwarded-port"])
      assert.equal("/echo/anything/x", h["x-forwarded-path"])
      assert.equal("/echo", h["x-forwarded-prefix"])
      assert.matches("^1%.0 client%-proxy, 1%.1 sluice/%d",
                     hjoin(h["via"]))
      assert.matches(REQ_ID, h["x-kong-request-id"])
      assert.equal(h["x-kong-request-id"], res.headers["X-Kong-Request-Id"])
    end)

    it("overrides X-Forwarded-* and X-Real-IP from an untrusted client",
       function()
      local res = assert(client:get("/echo/anything", {
        headers = {
          ["X-Forwarded-Proto"] = "https",
          ["X-Forwarded-Host"] = "evil.example",
          ["X-Forwarded-Port"] = "1",
          ["X-Forwarded-Path"] = "/evil",
          ["X-Forwarded-Prefix"] = "/evil",
          ["X-Real-IP"] = "9.9.9.9",
          ["Host"] = "good.example",
        },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      local h = echo.headers
      assert.equal("http", h["x-forwarded-proto"])
      assert.equal("good.example", h["x-forwarded-host"])
      assert.equal(tostring(helpers.get_proxy_port()), h["x-forwarded-port"])
      assert.equal("/echo/anything", h["x-forwarded-path"])
      assert.equal("/echo", h["x-forwarded-prefix"])
      assert.equal("127.0.0.1", h["x-real-ip"])
    end)

    it("sets X-Forwarded-For without a client value", function()
      local res = assert(client:get("/echo/anything"))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("127.0.0.1", echo.headers["x-forwarded-for"])
      assert.matches("^1%.1 sluice/%d", echo.headers["via"])
    end)

    it("sends no X-Forwarded-Prefix when nothing was stripped", function()
      local res = assert(client:get("/anything/y"))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.is_nil(echo.headers["x-forwarded-prefix"])
      assert.equal("/anything/y", echo.headers["x-forwarded-path"])
    end)

    it("adds Via, latencies and the request id to responses", function()
      local ids = {}
      for _ = 1, 3 do
        local res = assert(client:get("/echo/anything"))
        local echo = cjson.decode(assert.res_status(200, res))
        assert.matches("^1%.1 sluice/%d", res.headers["Via"])
        assert.matches("^%d+$", res.headers["X-Kong-Upstream-Latency"])
        assert.matches("^%d+$", res.headers["X-Kong-Proxy-Latency"])
        local id = res.headers["X-Kong-Request-Id"]
        assert.matches(REQ_ID, id)
        assert.equal(echo.headers["x-kong-request-id"], id)
        assert.is_nil(ids[id])
        ids[id] = true
        -- a proxied response has no X-Kong-Response-Latency
        assert.is_nil(res.headers["X-Kong-Response-Latency"])
      end
    end)

    it("replaces the upstream's own X-Kong-* headers with the gateway's", function()
      local res = assert(client:get("/echo/response-headers", {
        query = "X-Kong-Request-Id=from-upstream&X-Kong-Upstream-Latency=999",
      }))
      assert.res_status(200, res)
      local id = res.headers["X-Kong-Request-Id"]
      assert.is_string(id)   -- one value, not an array
      assert.matches(REQ_ID, id)
      assert.is_string(res.headers["X-Kong-Upstream-Latency"])
      assert.not_equal("999", res.headers["X-Kong-Upstream-Latency"])
    end)

    it("measures the upstream latency", function()
      local res = assert(client:get("/echo/delay/0.3"))
      assert.res_status(200, res)
      local lat = tonumber(res.headers["X-Kong-Upstream-Latency"])
      assert.truthy(lat >= 250 and lat < 3000,
                    "X-Kong-Upstream-Latency: " .. tostring(lat))
    end)

    it("does not forward hop-by-hop request headers", function()
      local res = assert(client:get("/echo/anything", {
        headers = {
          ["Connection"] = "keep-alive, X-Hop-A, x-hop-b",
          ["X-Hop-A"] = "a",
          ["X-Hop-B"] = "b",
          ["X-End-To-End"] = "kept",
          ["Keep-Alive"] = "timeout=5",
          ["TE"] = "deflate",
          ["Proxy-Connection"] = "keep-alive",
        },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      local h = echo.headers
      assert.equal("kept", h["x-end-to-end"])
      assert.is_nil(h["x-hop-a"])
      assert.is_nil(h["x-hop-b"])
      assert.is_nil(h["keep-alive"])
      assert.is_nil(h["te"])
      assert.is_nil(h["proxy-connection"])
      assert.is_not_equal("close", h["connection"])
    end)

    it("does not forward hop-by-hop response headers", function()
      local srv = helpers.tcp_server(raw_port, {
        responses = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                      .. "Connection: close, X-Resp-Hop\r\n"
                      .. "X-Resp-Hop: secret\r\n"
                      .. "Keep-Alive: timeout=5, max=100\r\n"
                      .. "Proxy-Connection: keep-alive\r\n"
                      .. "X-Resp-Kept: yes\r\n\r\nok" },
      })
      local res = assert(client:get("/raw/x"))
      assert.equal("ok", assert.res_status(200, res))
      assert.equal("yes", res.headers["X-Resp-Kept"])
      assert.is_nil(res.headers["Keep-Alive"])
      assert.is_nil(res.headers["Proxy-Connection"])
      srv:join(5)
      -- the upstream closing does not end the client connection
      res = assert(client:get("/echo/anything"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("does not forward response headers named in Connection", function()
      local srv = helpers.tcp_server(raw_port, {
        responses = { "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                      .. "Connection: close, X-Resp-Hop\r\n"
                      .. "X-Resp-Hop: secret\r\n"
                      .. "X-Resp-Kept: yes\r\n\r\nok" },
      })
      local res = assert(client:get("/raw/x"))
      assert.equal("ok", assert.res_status(200, res))
      srv:join(5)
      assert.equal("yes", res.headers["X-Resp-Kept"])
      assert.is_nil(res.headers["X-Resp-Hop"])
    end)

    it("sends Connection: keep-alive upstream, not the client's close",
       function()
      local res = assert(client:get("/echo/anything", {
        headers = { Connection = "close" },
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("keep-alive", echo.headers["connection"])
    end)
  end)


  describe("streaming", function()
    it("streams a chunked upstream response", function()
      local res = assert(client:get("/echo/bytes-chunked/300001"))
      assert.res_status(200, res)
      assert.equal(300001, #res.body)
      assert.equal("chunked", res.headers["Transfer-Encoding"])
      assert.equal(string.rep("x", 300001), res.body)
    end)

    it("streams line-by-line chunks", function()
      local res = assert(client:get("/echo/stream/7"))
      local body = assert.res_status(200, res)
      local n = 0
      for line in body:gmatch("[^\n]+") do
        local obj = cjson.decode(line)
        assert.equal(n, obj.id)
        n = n + 1
      end
      assert.equal(7, n)
    end)

    it("re-frames a close-delimited response as chunked", function()
      local res = assert(client:get("/echo/close-delimited/250000"))
      assert.res_status(200, res)
      assert.equal(250000, #res.body)
      assert.equal("chunked", res.headers["Transfer-Encoding"])
      -- and the client connection stays open
      res = assert(client:get("/echo/anything"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("sends a close-delimited response to an HTTP/1.0 client "
       .. "without chunking", function()
      assert(client:send_raw("GET /echo/close-delimited/5000 HTTP/1.0\r\n"
                             .. "Host: x\r\n\r\n"))
      local data, how = client:receive_raw_response(5000,
                                                    { no_parse = true,
                                                      idle = 2000 })
      assert.equal("closed", how)
      local status, head, rest = raw_head(data)
      assert.equal(200, status)
      assert.is_nil(head["transfer-encoding"])
      assert.equal(string.rep("x", 5000), rest)
    end)

    it("streams 1 GB with bounded worker memory", function()
      local SIZE = 1024 * 1024 * 1024
      local worker = the_worker()
      -- warm up (pool, buffers), then take the baseline
      local res = assert(client:get("/echo/bytes/1048576"))
      assert.res_status(200, res)
      local base = assert(rss_kb(worker))

      client:set_timeout(10000)
      res = assert(client:get("/echo/bytes/" .. SIZE))
      assert.equal(200, res.status)
      assert.equal(tostring(SIZE), res.headers["Content-Length"])
      local got, peak, reads = 0, base, 0
      local deadline = socket.gettime() + 45
      while true do
        local data, err = res:read_chunk(1048576)
        if not data then
          assert.is_nil(err)
          break
        end
        got = got + #data
        reads = reads + 1
        if reads % 16 == 0 then
          local rss = rss_kb(worker)
          if rss and rss > peak then
            peak = rss
          end
          assert.truthy(socket.gettime() < deadline, "1 GB took too long")
        end
      end
      assert.equal(SIZE, got)
      local grown = peak - base
      assert.truthy(grown < 64 * 1024,
                    "worker RSS grew by " .. grown .. " kB")
      -- the worker survived and serves on
      assert.equal(worker, the_worker())
      res = assert(client:get("/echo/anything"))
      assert.res_status(200, res)
    end)

    it("streams a 50 MB upload to the upstream", function()
      local SIZE = 50 * 1024 * 1024
      local worker = the_worker()
      local base = assert(rss_kb(worker))
      local piece = string.rep("u", 65536)
      local sent, peak = 0, base
      local res = assert(client:send({
        method = "POST",
        path = "/echo/anything",
        headers = { ["Content-Type"] = "application/octet-stream" },
        body = function()
          if sent >= SIZE then
            return nil
          end
          sent = sent + #piece
          if sent % (1024 * 1024) == 0 then
            local rss = rss_kb(worker)
            if rss and rss > peak then
              peak = rss
            end
          end
          return piece
        end,
      }))
      local body = assert.res_status(200, res)
      local echo = cjson.decode(body)
      assert.equal(SIZE, #echo.body)
      assert.is_nil(echo.body:find("[^u]"))
      local grown = peak - base
      assert.truthy(grown < 32 * 1024,
                    "worker RSS grew by " .. grown .. " kB during the upload")
    end)

    it("streams a 20 MB Content-Length upload", function()
      local SIZE = 20 * 1024 * 1024
      local payload = string.rep("c", SIZE)
      local res = assert(client:post("/echo/anything", {
        headers = { ["Content-Type"] = "application/octet-stream" },
        body = payload,
      }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal(SIZE, #echo.body)
      assert.equal(tostring(SIZE), echo.vars.content_length)
    end)
  end)
end)


describe("proxy with headers = off", function()
  local mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      headers = "off",
      headers_upstream = "off",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "echo", url = mock.url,
            routes = { { name = "echo", paths = { "/echo" } } } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  it("adds none of its headers to proxied responses", function()
    local client = helpers.proxy_client(5000)
    local res = assert(client:get("/echo/anything"))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.is_nil(res.headers["Via"])
    assert.is_nil(res.headers["X-Kong-Upstream-Latency"])
    assert.is_nil(res.headers["X-Kong-Proxy-Latency"])
    assert.is_nil(res.headers["X-Kong-Request-Id"])
    -- the upstream's own Server header is untouched
    assert.matches("^nginx", res.headers["Server"])
    -- headers_upstream = off: no request id upstream
    assert.is_nil(echo.headers["x-kong-request-id"])
    -- X-Forwarded-* are not governed by `headers`
    assert.equal("127.0.0.1", echo.headers["x-forwarded-for"])
    client:close()
  end)

  it("adds none of its headers to its own responses", function()
    local client = helpers.proxy_client(5000)
    local res = assert(client:get("/no-such-route"))
    assert.res_status(404, res)
    assert.is_nil(res.headers["Server"])
    assert.is_nil(res.headers["Via"])
    assert.is_nil(res.headers["X-Kong-Response-Latency"])
    assert.is_nil(res.headers["X-Kong-Request-Id"])
    client:close()
  end)
end)
