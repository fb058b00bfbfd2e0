-- Request size limits (large_client_header_buffers, client_max_headers,
-- client_max_body_size) and client-side timeouts (client_header_timeout,
-- client_body_timeout, keepalive_timeout, keepalive_requests,
-- send_timeout), against the real gateway over loopback.

local helpers = require "spec.helpers"
local raw = require "spec.fixtures.server.raw_http"
local cjson = require "cjson.safe"
local socket = require "socket"


local function req(head_lines, body)
  return table.concat(head_lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end


-- Reads until a whole response arrived, the peer closed, or `timeout_ms`.
-- @return data, how ("complete" | "closed" | "timeout" | ...), seconds
local function read_answer(client, timeout_ms)
  local t0 = helpers.now()
  local data, how = client:receive_raw_response(timeout_ms,
                                                { idle = timeout_ms })
  return data, how, helpers.now() - t0
end


-- A stalled client must get 408 (then a close) or a bare close.
local function assert_408_or_close(data, how, client, what)
  if data == "" then
    assert.equal("closed", how, what .. ": neither 408 nor a close ("
                                .. tostring(how) .. ")")
    return
  end
  local res = raw.parse_head(data)
  assert.is_truthy(res, what .. ": not an HTTP response: " .. ("%q"):format(data))
  assert.equal(408, res.status, what .. ": " .. data)
  if how ~= "closed" then
    local closed = raw.wait_closed(client, 2000)
    assert.is_true(closed, what .. ": connection left open after 408")
  end
end


describe("limits and timeouts", function()
  local mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      worker_processes = 1,
      client_max_headers = 10,
      client_max_body_size = "1k",
      client_header_timeout = "1s",
      client_body_timeout = "1s",
      keepalive_timeout = "1s",
      keepalive_requests = 3,
      send_timeout = "1s",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "echo", url = mock.url,
            routes = { { name = "all", paths = { "/" } } } },
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


  describe("header limits (large_client_header_buffers 4 8k)", function()
    it("a 4k request line is accepted", function()
      local r = raw.exchange(req({ "GET /anything/" .. ("a"):rep(4000)
                                   .. " HTTP/1.1", "Host: a" }))
      assert.equal(200, r.status, r.data:sub(1, 300))
    end)

    it("a request line over 8k -> 414 and the worker keeps serving",
       function()
      local r = raw.exchange(req({ "GET /anything/" .. ("a"):rep(9000)
                                   .. " HTTP/1.1", "Host: a" }))
      assert.equal(414, r.status, r.data:sub(1, 300))
      assert.is_true(r.closed)
      assert.equal(200, raw.normal_status())
    end)

    it("a header line over 8k -> 431", function()
      local r = raw.exchange(req({ "GET /anything HTTP/1.1", "Host: a",
                                   "X-Big: " .. ("b"):rep(8300) }))
      assert.equal(431, r.status, r.data:sub(1, 300))
      assert.is_true(r.closed)
      assert.equal(200, raw.normal_status())
    end)

    it("a 6k header line is accepted", function()
      local r = raw.exchange(req({ "GET /anything HTTP/1.1", "Host: a",
                                   "X-Big: " .. ("b"):rep(6000) }))
      assert.equal(200, r.status, r.data:sub(1, 300))
      local echo = assert(cjson.decode(r.res.body))
      assert.equal(6000, #echo.headers["x-big"])
    end)

    it("a head over 32k (every line under 8k) -> 431", function()
      local lines = { "GET /anything HTTP/1.1", "Host: a" }
      for i = 1, 5 do
        lines[#lines + 1] = "X-Big-" .. i .. ": " .. ("c"):rep(7000)
      end
      local r = raw.exchange(req(lines))
      assert.equal(431, r.status, r.data:sub(1, 300))
      assert.is_true(r.closed)
      assert.equal(200, raw.normal_status())
    end)

    it("client_max_headers = 10: 10 fields pass, 11 -> 431", function()
      local lines = { "GET /anything HTTP/1.1", "Host: a" }
      for i = 1, 9 do
        lines[#lines + 1] = "X-H" .. i .. ": " .. i
      end
      local r = raw.exchange(req(lines))
      assert.equal(200, r.status, r.data:sub(1, 300))

      lines[#lines + 1] = "X-H10: 10"
      r = raw.exchange(req(lines))
      assert.equal(431, r.status, r.data:sub(1, 300))
      assert.is_true(r.closed)
      assert.equal(200, raw.normal_status())
    end)
  end)


  describe("client_max_body_size = 1k", function()
    it("a body under the limit is accepted", function()
      local body = ("d"):rep(1000)
      local r = raw.exchange(req({ "POST /anything HTTP/1.1", "Host: a",
                                   "Content-Type: text/plain",
                                   "Content-Length: " .. #body }, body))
      assert.equal(200, r.status, r.data:sub(1, 300))
      assert.equal(body, cjson.decode(r.res.body).body)
    end)

    it("Content-Length over the limit -> 413 before the body is sent",
       function()
      local client = raw.connect(5000)
      assert(client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                                   "Content-Type: text/plain",
                                   "Content-Length: 100000" })))
      local data, how, took = read_answer(client, 2000)
      local res = raw.parse_head(data)
      assert.is_truthy(res, "no response before the body: " .. how)
      assert.equal(413, res.status, data)
      assert.truthy(took < 1.5, "413 took " .. took .. " s")
      assert.is_true(raw.wait_closed(client, 2000) or how == "closed")
      client:close()
      assert.equal(200, raw.normal_status())
    end)

    it("a client that sends a too large body at once still reads the 413",
       function()
      -- The response must not be lost to a reset (lingering close).
      for _ = 1, 3 do
        local client = raw.connect(5000)
        local body = ("g"):rep(200000)
        local ok = client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                                         "Content-Type: text/plain",
                                         "Content-Length: " .. #body }, body))
        local status
        if ok then
          local data = read_answer(client, 3000)
          local res = raw.parse_head(data)
          status = res and res.status
        elseif client.early then
          status = client.early.status
        end
        client:close()
        assert.equal(413, status)
      end
      assert.equal(200, raw.normal_status())
    end)

    it("a chunked body over the limit -> 413", function()
      local client = raw.connect(5000)
      local chunk = ("e"):rep(512)
      local body = {}
      for i = 1, 4 do
        body[i] = ("%x\r\n%s\r\n"):format(#chunk, chunk)
      end
      body[#body + 1] = "0\r\n\r\n"
      client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                            "Content-Type: text/plain",
                            "Transfer-Encoding: chunked" },
                          table.concat(body)))
      local data, how
      if client.early then
        data, how = "HTTP/1.1 " .. client.early.status .. " x\r\n\r\n", "closed"
      else
        data, how = read_answer(client, 3000)
      end
      local res = raw.parse_head(data)
      assert.is_truthy(res, "no response: " .. how)
      assert.equal(413, res.status, data)
      client:close()
      assert.equal(200, raw.normal_status())
    end)

    it("a chunked body under the limit is accepted", function()
      local r = raw.exchange(req({ "POST /anything HTTP/1.1", "Host: a",
                                   "Content-Type: text/plain",
                                   "Transfer-Encoding: chunked" },
                                 "200\r\n" .. ("f"):rep(512) .. "\r\n0\r\n\r\n"))
      assert.equal(200, r.status, r.data:sub(1, 300))
      assert.equal(512, #cjson.decode(r.res.body).body)
    end)
  end)


  describe("client_header_timeout = 1s", function()
    it("a half-sent head gets 408 or a close within ~2 s", function()
      local client = raw.connect(5000)
      local t0 = helpers.now()
      assert(client:send_raw("GET /anything HTTP/1.1\r\nHost: a\r\n"))
      local data, how = client:receive_raw_response(4000, { idle = 500 })
      local took = helpers.now() - t0
      assert.truthy(took >= 0.8, "cut off too early: " .. took .. " s")
      assert.truthy(took < 2.5, "took " .. took .. " s (" .. how .. ")")
      assert_408_or_close(data, how, client, "stalled head")
      client:close()
    end)

    it("a head trickled one byte at a time is still cut off", function()
      local client = raw.connect(5000)
      local t0 = helpers.now()
      local head = "GET /anything HTTP/1.1\r\nHost: a\r\nX-Slow: "
                   .. ("s"):rep(100)
      local closed_early = false
      assert(client:send_raw(head:sub(1, 20)))
      local i = 21
      while helpers.now() - t0 < 3.5 and i <= #head do
        helpers.sleep(0.2)
        local ok = client.sock and client.sock:send(head:sub(i, i))
        if not ok then
          closed_early = true
          break
        end
        i = i + 1
      end
      local data, how = "", "closed"
      if client.sock then
        data, how = client:receive_raw_response(500, { idle = 300 })
      end
      local took = helpers.now() - t0
      assert.truthy(closed_early or how == "closed" or data ~= "",
                    "still open after " .. took .. " s of trickling")
      assert.truthy(took < 3.5, "took " .. took .. " s")
      if data ~= "" then
        assert.equal(408, raw.parse_head(data).status, data)
      end
      client:close()
    end)

    it("~50 stalled connections (slowloris) do not block a normal request",
       function()
      local stalled = {}
      for i = 1, 50 do
        local c = raw.connect(5000)
        assert(c:send_raw("GET /anything HTTP/1.1\r\nHost: a\r\nX-N: "
                          .. i .. "\r\n"))
        stalled[i] = c
      end
      local t0 = helpers.now()
      assert.equal(200, raw.normal_status())
      assert.truthy(helpers.now() - t0 < 0.8,
                    "normal request took " .. (helpers.now() - t0) .. " s")

      -- And every stalled one is cut off in time.
      local deadline = helpers.now() + 3
      local cut = 0
      for _, c in ipairs(stalled) do
        local left = math.max(0.05, deadline - helpers.now())
        local data, how = c:receive_raw_response(left * 1000,
                                                 { idle = 200 })
        local closed = how == "closed"
        if not closed and data ~= "" then
          closed = raw.wait_closed(c, 300)
        end
        local status = data ~= "" and raw.parse_head(data)
        if closed and (data == "" or (status and status.status == 408)) then
          cut = cut + 1
        end
        c:close()
      end
      assert.equal(50, cut, "stalled connections not cut off in ~3 s")
      assert.equal(200, raw.normal_status())
    end)
  end)


  describe("client_body_timeout = 1s", function()
    it("a stalled body gets 408 or a close within ~2 s", function()
      local client = raw.connect(5000)
      assert(client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                                   "Content-Type: text/plain",
                                   "Content-Length: 10" }, "12345")))
      local t0 = helpers.now()
      local data, how = client:receive_raw_response(4000, { idle = 500 })
      local took = helpers.now() - t0
      assert.truthy(took >= 0.8, "cut off too early: " .. took .. " s")
      assert.truthy(took < 2.5, "took " .. took .. " s (" .. how .. ")")
      assert_408_or_close(data, how, client, "stalled body")
      client:close()
      assert.equal(200, raw.normal_status())
    end)

    it("a body trickled faster than the timeout is accepted", function()
      local client = raw.connect(5000)
      local body = "abcdef"
      assert(client:send_raw(req({ "POST /anything HTTP/1.1", "Host: a",
                                   "Content-Type: text/plain",
                                   "Content-Length: " .. #body })))
      for i = 1, #body do
        helpers.sleep(0.3)   -- 1.8 s in all, 0.3 s between reads
        assert(client.sock:send(body:sub(i, i)))
      end
      local data = client:receive_raw_response(3000, { idle = 300 })
      client:close()
      local res = raw.parse_responses(data)[1]
      assert.is_truthy(res, "no response: " .. data)
      assert.equal(200, res.status, data)
      assert.equal(body, cjson.decode(res.body).body)
    end)
  end)


  describe("keepalive", function()
    it("keepalive_timeout = 1s closes an idle keep-alive connection",
       function()
      local client = raw.connect(5000)
      assert(client:send_raw(req({ "GET /anything HTTP/1.1", "Host: a" })))
      local data, how = client:receive_raw_response(3000, { idle = 300 })
      assert.equal("complete", how)
      local res = raw.parse_responses(data)[1]
      assert.equal(200, res.status)
      assert.is_nil((res.headers.connection or ""):lower():find("close"))

      local t0 = helpers.now()
      local closed = raw.wait_closed(client, 3000)
      local took = helpers.now() - t0
      client:close()
      assert.is_true(closed, "idle connection still open after 3 s")
      assert.truthy(took >= 0.7, "closed too early: " .. took .. " s")
      assert.truthy(took < 2, "closed after " .. took .. " s")
    end)

    it("a connection in use before the timeout keeps being served",
       function()
      local client = raw.connect(5000)
      for i = 1, 2 do
        assert(client:send_raw(req({ "GET /anything/" .. i .. " HTTP/1.1",
                                     "Host: a" })))
        local data = client:receive_raw_response(3000, { idle = 300 })
        local res = raw.parse_responses(data)[1]
        assert.is_truthy(res, "request " .. i .. ": " .. data)
        assert.equal(200, res.status)
        helpers.sleep(0.5)
      end
      client:close()
    end)

    it("keepalive_requests = 3: the third response says Connection: close",
       function()
      local client = raw.connect(5000)
      for i = 1, 3 do
        assert(client:send_raw(req({ "GET /anything/" .. i .. " HTTP/1.1",
                                     "Host: a" })),
               "send " .. i .. " failed")
        local data, how = client:receive_raw_response(3000, { idle = 300 })
        local res = raw.parse_responses(data)[1]
        assert.is_truthy(res, "request " .. i .. ": " .. data)
        assert.equal(200, res.status)
        assert.equal("/anything/" .. i, cjson.decode(res.body).path)
        local conn = (res.headers.connection or ""):lower()
        if i < 3 then
          assert.is_nil(conn:find("close"), "response " .. i .. " closes")
          assert.is_not.equal("closed", how)
        else
          assert.matches("close", conn, 1, true)
          local closed = how == "closed" or raw.wait_closed(client, 1000)
          assert.is_true(closed, "not closed after the 3rd response")
        end
      end
      client:close()
    end)
  end)


  describe("send_timeout = 1s", function()
    it("a client that stops reading a large response is dropped", function()
      local client = raw.connect(5000)
      local total = 64 * 1024 * 1024
      assert(client:send_raw(req({ "GET /bytes/" .. total .. " HTTP/1.1",
                                   "Host: a" })))
      -- Do not read for a while: buffers fill, the gateway cannot send.
      helpers.sleep(4)
      -- Now read everything that is left, bounded.
      local sock = client.sock
      local got = 0
      local deadline = helpers.now() + 15
      local how = "timeout"
      while helpers.now() < deadline do
        sock:settimeout(1)
        local data, err, partial = sock:receive(1024 * 1024)
        data = data or partial
        got = got + (data and #data or 0)
        if err == "closed" then
          how = "closed"
          break
        elseif err and err ~= "timeout" then
          how = err
          break
        elseif err == "timeout" and (not data or #data == 0) then
          how = "stalled"
          break
        end
      end
      client:close()
      assert.equal("closed", how, "read " .. got .. " bytes")
      assert.truthy(got < total, "the whole response came (" .. got .. ")")
      assert.equal(200, raw.normal_status())
    end)
  end)
end)
