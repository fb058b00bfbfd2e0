-- Upstream failures through the real gateway: refused, closed without an
-- answer, malformed answers, timeouts (read and connect), unresolvable
-- names, retries (idempotent vs not), an upstream dying mid-body; Kong's
-- 502/503/504 answers, the error log, and the worker serving on.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"


local MSG_502 = "An invalid response was received from the upstream server"
local MSG_504 = "The upstream server is timing out"
local REQ_ID = string.rep("%x", 32)


local function worker_pids()
  local master = assert(helpers.get_pid(), "no master pid")
  local p = io.popen("pgrep -P " .. master)
  local out = p:read("*a")
  p:close()
  local pids = {}
  for pid in out:gmatch("%d+") do
    pids[#pids + 1] = tonumber(pid)
  end
  table.sort(pids)
  return pids
end


-- A listener that never accepts, its backlog filled so that further SYNs
-- are dropped: connecting to it times out (loopback has no unroutable
-- address). Returns the port and a close function, or nil when the
-- backlog could not be filled.
local function blackhole()
  local port = helpers.get_available_port()
  local srv = assert(socket.tcp())
  assert(srv:bind("127.0.0.1", port))
  assert(srv:listen(0))
  local fillers = {}
  for _ = 1, 8 do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    if not ok then
      c:close()
      break
    end
    fillers[#fillers + 1] = c
  end
  local function close()
    for _, c in ipairs(fillers) do
      c:close()
    end
    srv:close()
  end
  -- check that a new connect now hangs
  local probe = socket.tcp()
  probe:settimeout(0.3)
  local ok = probe:connect("127.0.0.1", port)
  probe:close()
  if ok then
    close()
    return nil
  end
  return port, close
end


describe("upstream errors", function()
  local mock, client
  local refused_port = helpers.get_available_port()
  local raw_port = helpers.get_available_port()
  local retry_port = helpers.get_available_port()
  local bh_port, bh_close

  lazy_setup(function()
    bh_port, bh_close = blackhole()
    mock = helpers.start_mock_upstream()
    local function svc(name, url, extra)
      local s = { name = name, url = url,
                  routes = { { name = name, paths = { "/" .. name } } } }
      for k, v in pairs(extra or {}) do
        s[k] = v
      end
      return s
    end
    local services = {
      svc("good", mock.url),
      svc("refused", "http://127.0.0.1:" .. refused_port,
          { retries = 0 }),
      svc("refused3", "http://127.0.0.1:" .. refused_port,
          { retries = 3 }),
      svc("raw", "http://127.0.0.1:" .. raw_port,
          { retries = 0, read_timeout = 2000 }),
      svc("retry2", "http://127.0.0.1:" .. retry_port,
          { retries = 2, read_timeout = 2000 }),
      svc("retry1", "http://127.0.0.1:" .. retry_port,
          { retries = 1, read_timeout = 2000 }),
      svc("slow", mock.url, { retries = 0, read_timeout = 500 }),
      svc("dns", "http://nonexistent.invalid:80", { retries = 0 }),
    }
    if bh_port then
      services[#services + 1] = svc("blackhole",
                                    "http://127.0.0.1:" .. bh_port,
                                    { retries = 0, connect_timeout = 500 })
    end
    assert(helpers.start_kong({
      declarative_config = {
        _format_version = "3.0",
        services = services,
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
    if bh_close then
      bh_close()
    end
  end)

  before_each(function()
    client = helpers.proxy_client(10000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)

  local function still_serving()
    local c = helpers.proxy_client(5000)
    local res = assert(c:get("/good/anything"))
    assert.res_status(200, res)
    c:close()
  end


  describe("connection refused", function()
    it("gives 502 with Kong's message (text by default)", function()
      local res = assert(client:get("/refused/x"))
      local body = assert.res_status(502, res)
      assert.matches("^text/plain", res.headers["Content-Type"])
      assert.matches(MSG_502, body, 1, true)
      local id = res.headers["X-Kong-Request-Id"]
      assert.matches("^" .. REQ_ID .. "$", id)
      assert.matches(id, body, 1, true)
      -- the client connection stays usable
      res = assert(client:get("/good/anything"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
    end)

    it("gives 502 JSON with Accept: application/json", function()
      local res = assert(client:get("/refused/x", {
        headers = { Accept = "application/json" },
      }))
      local body = assert.res_status(502, res)
      assert.matches("^application/json", res.headers["Content-Type"])
      local json = cjson.decode(body)
      assert.equal(MSG_502, json.message)
      assert.matches("^" .. REQ_ID .. "$", json.request_id)
    end)

    it("gives 502 after retries, quickly", function()
      local t0 = socket.gettime()
      local res = assert(client:get("/refused3/x"))
      assert.res_status(502, res)
      assert.truthy(socket.gettime() - t0 < 3)
    end)

    it("logs an error naming the upstream", function()
      helpers.clean_logfile()
      local res = assert(client:get("/refused/logged"))
      assert.res_status(502, res)
      assert.logfile().has.line("127.0.0.1:" .. refused_port, true, 5)
      assert.logfile().has.line("%[error%]", false, 5)
    end)
  end)


  describe("broken upstream answers", function()
    local function through_raw(responses, opts)
      opts = opts or {}
      local srv = helpers.tcp_server(raw_port, {
        responses = responses,
        timeout = opts.timeout or 5,
        mode = opts.mode,
      })
      local res = assert(client:send({
        method = opts.method or "GET",
        path = "/raw/x",
        body = opts.body,
      }))
      local body = res:read_body()
      srv:join(6)
      return res, body
    end

    it("502 when the upstream closes without answering", function()
      local res, body = through_raw({ "" })
      assert.equal(502, res.status)
      assert.matches(MSG_502, body, 1, true)
    end)

    it("502 when the upstream closes at once", function()
      local res, body = through_raw(nil, { mode = "close" })
      assert.equal(502, res.status)
      assert.matches(MSG_502, body, 1, true)
    end)

    it("502 on a malformed status line", function()
      local res, body = through_raw({ "HTTP/1.1 abc OK\r\n"
                                      .. "Content-Length: 2\r\n\r\nok" })
      assert.equal(502, res.status)
      assert.matches(MSG_502, body, 1, true)
    end)

    it("502 on a response that is not HTTP", function()
      local res, body = through_raw({ "SSH-2.0-OpenSSH_9.2\r\n" })
      assert.equal(502, res.status)
      assert.matches(MSG_502, body, 1, true)
    end)

    it("502 on a malformed header line", function()
      local res = through_raw({ "HTTP/1.1 200 OK\r\nNo colon here\r\n"
                                .. "Content-Length: 2\r\n\r\nok" })
      assert.equal(502, res.status)
    end)

    it("502 on an invalid Content-Length", function()
      local res = through_raw({ "HTTP/1.1 200 OK\r\n"
                                .. "Content-Length: 12abc\r\n\r\nok" })
      assert.equal(502, res.status)
    end)

    it("502 when the head is cut short", function()
      local res = through_raw({ "HTTP/1.1 200 OK\r\nContent-Le" })
      assert.equal(502, res.status)
    end)

    it("passes a well-formed answer (control)", function()
      local res, body = through_raw({ "HTTP/1.1 207 Fine\r\n"
                                      .. "Content-Length: 4\r\n"
                                      .. "X-Raw: 1\r\n\r\nfine" })
      assert.equal(207, res.status)
      assert.equal("fine", body)
      assert.equal("1", res.headers["X-Raw"])
    end)
  end)


  describe("timeouts", function()
    it("504 on a read timeout, within about read_timeout", function()
      local t0 = socket.gettime()
      local res = assert(client:get("/slow/delay/3"))
      local body = assert.res_status(504, res)
      local took = socket.gettime() - t0
      assert.matches(MSG_504, body, 1, true)
      assert.truthy(took >= 0.45 and took < 1.5, "took " .. took .. " s")
    end)

    it("504 JSON on a read timeout with Accept: application/json",
       function()
      local res = assert(client:get("/slow/delay/3", {
        headers = { Accept = "application/json" },
      }))
      local body = assert.res_status(504, res)
      assert.equal(MSG_504, cjson.decode(body).message)
    end)

    it("does not time out an upstream answering within read_timeout",
       function()
      local res = assert(client:get("/slow/delay/0.2"))
      assert.res_status(200, res)
    end)

    it("504 on a connect timeout", function()
      if not bh_port then
        pending("could not build a non-accepting listener on loopback")
        return
      end
      local t0 = socket.gettime()
      local res = assert(client:get("/blackhole/x"))
      local body = assert.res_status(504, res)
      local took = socket.gettime() - t0
      assert.matches(MSG_504, body, 1, true)
      assert.truthy(took >= 0.45 and took < 2, "took " .. took .. " s")
    end)
  end)


  describe("name resolution", function()
    it("503 for an unresolvable host", function()
      local t0 = socket.gettime()
      local res = assert(client:get("/dns/x", {
        headers = { Accept = "application/json" },
      }))
      local body = assert.res_status(503, res)
      local json = cjson.decode(body)
      assert.truthy(socket.gettime() - t0 < 8)
      assert.matches("^" .. REQ_ID .. "$", json.request_id)
      assert.logfile().has.line("nonexistent.invalid", true, 5)
      still_serving()
    end)

    it("503 says 'name resolution failed' as Kong does", function()
      local res = assert(client:get("/dns/x", {
        headers = { Accept = "application/json" },
      }))
      local body = assert.res_status(503, res)
      -- Kong: balancer -> get_default_exit_body(503, "name resolution
      -- failed")
      assert.equal("name resolution failed", cjson.decode(body).message)
    end)
  end)


  describe("retries", function()
    -- A peer that reads each request and closes without answering for
    -- the first `fail` connections, then answers.
    local function flaky(fail, n)
      local responses = {}
      for i = 1, fail do
        responses[i] = ""
      end
      responses[fail + 1] = "HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
                            .. "Connection: close\r\n\r\nrecovered"
      return helpers.tcp_server(retry_port, {
        n = n,
        timeout = 3,
        responses = responses,
      })
    end

    it("retries an idempotent request up to `retries` times", function()
      local srv = flaky(2, 3)
      local res = assert(client:get("/retry2/x"))
      assert.equal("recovered", assert.res_status(200, res))
      local _, list = srv:join(6)
      assert.equal(3, #list)
      for _, got in ipairs(list) do
        assert.matches("^GET /x HTTP/1%.1\r\n", got)
      end
    end)

    it("gives up after `retries` retries", function()
      local srv = flaky(2, 3)
      local res = assert(client:get("/retry1/x"))
      assert.res_status(502, res)
      local _, list = srv:join(6)
      -- 1 try + 1 retry; the third connection never came
      assert.equal(2, #list)
    end)

    it("does not retry a POST once it was sent", function()
      local srv = flaky(1, 2)
      local res = assert(client:post("/retry2/x", { body = "payload" }))
      assert.res_status(502, res)
      local _, list = srv:join(6)
      assert.equal(1, #list)
      assert.matches("^POST /x HTTP/1%.1\r\n", list[1])
      assert.matches("payload$", list[1])
    end)
  end)


  describe("an upstream dying mid-body", function()
    -- `pause`: seconds between the partial body and the close
    for _, pause in ipairs({ 0.5, 0 }) do
      local when = pause > 0 and "" or ", at once"

      it("cuts the client connection (Content-Length" .. when .. ")",
         function()
        local srv = helpers.tcp_server(raw_port, {
          responses = { { "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                          .. "\r\n" .. string.rep("a", 1000), pause } },
        })
        local t0 = socket.gettime()
        local res = assert(client:get("/raw/x"))
        assert.equal(200, res.status)
        assert.equal("100000", res.headers["Content-Length"])
        local body, err = res:read_body()
        assert.is_nil(body)
        assert.is_string(err)
        assert.truthy(socket.gettime() - t0 < 5, "the client hung")
        srv:join(5)
        still_serving()
      end)

      it("cuts the client connection without a last chunk (chunked"
         .. when .. ")", function()
        local srv = helpers.tcp_server(raw_port, {
          responses = { { "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                          .. "\r\n\r\n5\r\nhello\r\n400\r\npartial",
                          pause } },
        })
        assert(client:send_raw("GET /raw/x HTTP/1.1\r\nHost: x\r\n\r\n"))
        local data, how = client:receive_raw_response(5000,
                                                      { no_parse = true,
                                                        idle = 4000 })
        assert.equal("closed", how)
        assert.matches("^HTTP/1%.1 200", data)
        assert.matches("hello", data, 1, true)
        assert.is_nil(data:find("\r\n0\r\n\r\n", 1, true))
        srv:join(5)
        still_serving()
      end)
    end

    it("cuts the client connection (close-delimited to chunked)",
       function()
      local srv = helpers.tcp_server(raw_port, {
        responses = { { "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                        .. "some bytes" } },
      })
      -- close-delimited: ends normally with the upstream close
      local res = assert(client:get("/raw/x"))
      assert.equal(200, res.status)
      assert.equal("some bytes", res:read_body())
      srv:join(5)
    end)
  end)


  it("the worker survives it all and serves on", function()
    local before = worker_pids()
    assert.equal(1, #before)
    for _ = 1, 3 do
      local res = assert(client:get("/refused/again"))
      assert.res_status(502, res)
    end
    still_serving()
    assert.same(before, worker_pids())
    assert.logfile().has.no.line("exited on signal", true)
  end)
end)
