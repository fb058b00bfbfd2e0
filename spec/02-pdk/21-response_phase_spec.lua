-- Kong's `response` phase and buffered proxying through the real gateway
-- and the mock upstream: a plugin with a response handler (or
-- kong.service.request.enable_buffering in access) makes Sluice read the
-- whole upstream response first; the response handlers read it
-- (kong.service.response.*) and edit what the client gets (kong.response.*,
-- exit), may yield (ngx.sleep), fail with Kong's 500; header_filter,
-- body_filter (once, eof) and log run after it. Without buffering the
-- response still streams. Bodies over 64 MiB are answered with 502; chunked,
-- close-delimited, HEAD, 204 and 304 answers; upstream errors.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local socket = require "socket"


local PATH = helpers.ROOT .. "/spec/fixtures/custom_plugins/?.lua;;"
local NO_BUFFER = "service body is only available with buffered proxying "
                  .. "(see: kong.service.request.enable_buffering function)"
local MSG_502 = "An invalid response was received from the upstream server"
local MAX = 64 * 1024 * 1024


local function as_list(v)
  if type(v) == "table" then
    return v
  end
  return { v }
end


-- asserts the status and returns the body as received (res_status strips it)
local function raw_body(status, res)
  local body = assert(res:read_body())
  assert.equal(status, res.status, body)
  return body
end


-- the buffer-observer log line of the last request with that status
local function observed(status)
  local pat = "buffer%-observer log: status=" .. status
              .. " calls=(%d+) eofs=(%d+) bytes=(%d+) order=([%w_,]+)"
  local found
  helpers.wait_until(function()
    local f = io.open(helpers.error_log(), "r")
    if not f then
      return false
    end
    for line in f:lines() do
      local calls, eofs, bytes, order = line:match(pat)
      if calls then
        found = { calls = tonumber(calls), eofs = tonumber(eofs),
                  bytes = tonumber(bytes), order = order }
      end
    end
    f:close()
    return found ~= nil
  end, 5)
  return found
end


describe("response phase (buffered proxying)", function()
  local mock, client
  local raw_port = helpers.get_available_port()
  local refused_port = helpers.get_available_port()

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    local function route(name, plugins)
      return { name = name, paths = { "/" .. name }, plugins = plugins }
    end
    local function resp(conf)
      return { name = "buffered-response", config = conf or {} }
    end
    local function obs(conf)
      return { name = "buffer-observer", config = conf or {} }
    end
    assert(helpers.start_kong({
      plugins = "bundled,buffered-response,buffer-observer",
      lua_package_path = PATH,
      worker_processes = 1,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "mock", url = mock.url,
            routes = {
              route("none"),
              route("stream", { obs() }),
              route("eb", { obs({ buffer = true }) }),
              route("eb-upper", { obs({ buffer = true, upper = true }) }),
              route("rw", { resp(), obs() }),
              route("rw-status", { resp({ status = 201 }), obs() }),
              route("json", { resp({ mode = "json" }) }),
              route("exit", { resp({ mode = "exit", status = 418 }),
                              obs() }),
              route("err", { resp({ mode = "error" }), obs() }),
              route("sleep", { resp({ mode = "sleep", sleep = 0.5 }) }),
            } },
          { name = "slow", url = mock.url, read_timeout = 500, retries = 0,
            routes = { route("slow-eb", { obs({ buffer = true }) }) } },
          { name = "raw", url = "http://127.0.0.1:" .. raw_port,
            read_timeout = 3000, retries = 0,
            routes = { route("raw-eb", { obs({ buffer = true }) }) } },
          { name = "refused", url = "http://127.0.0.1:" .. refused_port,
            retries = 0,
            routes = { route("refused-eb", { obs({ buffer = true }) }) } },
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

  before_each(function()
    client = helpers.proxy_client(20000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  describe("off", function()
    it("without a response handler or enable_buffering the response streams",
       function()
      helpers.clean_logfile()
      local res = assert(client:get("/stream/bytes-chunked/300000"))
      local body = assert.res_status(200, res)
      assert.equal(300000, #body)
      -- chunked as the upstream sent it: nothing waited for the whole body
      assert.equal("chunked", res.headers["Transfer-Encoding"])
      assert.is_nil(res.headers["Content-Length"])
      assert.matches(NO_BUFFER, res.headers["X-Hf-Body-Err"], 1, true)
      local o = observed(200)
      assert.is_true(o.calls >= 2, "body_filter ran per chunk")
      assert.equal(1, o.eofs)
      assert.equal(300000, o.bytes)
    end)

    it("a route without plugins proxies as before", function()
      local res = assert(client:get("/none/bytes/1000"))
      assert.equal(1000, #assert.res_status(200, res))
      assert.equal("1000", res.headers["Content-Length"])
    end)
  end)


  describe("enable_buffering()", function()
    it("buffers a chunked body: one Content-Length, body_filter once with eof",
       function()
      helpers.clean_logfile()
      local res = assert(client:get("/eb/bytes-chunked/300000"))
      local body = assert.res_status(200, res)
      assert.equal(300000, #body)
      assert.equal("300000", res.headers["Content-Length"])
      assert.is_nil(res.headers["Transfer-Encoding"])
      assert.equal("300000", res.headers["X-Hf-Body-Len"])
      assert.equal("none", res.headers["X-Hf-Saw"])
      local o = observed(200)
      assert.same({ 1, 1, 300000 }, { o.calls, o.eofs, o.bytes })
    end)

    it("body_filter may rewrite the whole body; Content-Length follows",
       function()
      local res = assert(client:get("/eb-upper/anything"))
      local body = raw_body(200, res)
      assert.equal(tostring(#body), res.headers["Content-Length"])
      assert.equal(body:upper(), body)
      assert.matches('"URL"', body, 1, true)
    end)

    it("a close-delimited body", function()
      local res = assert(client:get("/eb/close-delimited/5000"))
      assert.equal(5000, #assert.res_status(200, res))
      assert.equal("5000", res.headers["Content-Length"])
    end)

    it("keeps the client connection alive across buffered responses",
       function()
      for i = 1, 3 do
        local res = assert(client:get("/eb/bytes/" .. (1000 * i)))
        assert.equal(1000 * i, #assert.res_status(200, res))
        assert.equal("keep-alive", res.headers["Connection"])
      end
    end)

    it("HEAD: no body, the upstream's Content-Length", function()
      local res = assert(client:send({ method = "HEAD",
                                       path = "/eb/bytes/1000" }))
      assert.equal(200, res.status)
      assert.equal("1000", res.headers["Content-Length"])
      assert.equal("", res:read_body() or "")
      -- the connection is still usable
      res = assert(client:get("/eb/bytes/10"))
      assert.equal(10, #assert.res_status(200, res))
    end)

    it("an upgrade request is never buffered", function()
      local res = assert(client:get("/eb/anything", {
        headers = { Connection = "Upgrade", Upgrade = "websocket" },
      }))
      assert.res_status(200, res)
      assert.matches(NO_BUFFER, res.headers["X-Hf-Body-Err"], 1, true)
    end)
  end)


  describe("response handler", function()
    it("reads the upstream answer and edits status-less headers", function()
      helpers.clean_logfile()
      local res = assert(client:get("/rw/anything"))
      local body = raw_body(200, res)
      local json = assert(cjson.decode(body))
      assert.equal("GET", json.method)
      assert.equal("200", res.headers["X-Resp-Upstream-Status"])
      assert.equal("application/json", res.headers["X-Resp-Ct"])
      assert.equal(tostring(#body), res.headers["X-Resp-Body-Len"])
      assert.equal(tostring(#body), res.headers["Content-Length"])
      assert.equal("1", res.headers["X-Resp-Set"])
      assert.same({ "a", "b" }, as_list(res.headers["X-Resp-Add"]))
      assert.same({ "p", "q" }, as_list(res.headers["X-Resp-Multi"]))
      assert.is_nil(res.headers["X-Powered-By"])
      -- Kong's PDK has no body setter in this phase
      assert.equal("function cannot be called in response phase (only in: "
                   .. "body_filter)", res.headers["X-Resp-Set-Raw-Body"])
      -- header_filter ran after it and saw its edits
      assert.equal("1", res.headers["X-Hf-Saw"])
      assert.equal(tostring(#body), res.headers["X-Hf-Body-Len"])
      local o = observed(200)
      assert.same({ 1, 1 }, { o.calls, o.eofs })
      assert.equal("access,response,header_filter,body_filter,log", o.order)
    end)

    it("set_status changes the client's status, not the upstream's", function()
      local res = assert(client:get("/rw-status/anything"))
      assert.res_status(201, res)
      assert.equal("200", res.headers["X-Resp-Upstream-Status"])
      assert.equal("201", res.headers["X-Hf-Status"])
    end)

    it("get_body + exit rewrites the body, keeping the upstream headers",
       function()
      local res = assert(client:get("/json/anything?x=1"))
      local body = raw_body(200, res)
      local json = assert(cjson.decode(body))
      assert.is_true(json.modified)
      assert.equal("1", json.uri_args.x)
      assert.equal("yes", res.headers["Modified"])
      assert.equal("mock_upstream", res.headers["X-Powered-By"])
      assert.equal(tostring(#body), res.headers["Content-Length"])
      assert.matches("application/json", res.headers["Content-Type"], 1, true)
    end)

    it("kong.response.exit answers; header_filter, body_filter, log still run",
       function()
      helpers.clean_logfile()
      local res = assert(client:get("/exit/anything"))
      assert.equal("short-circuit\n", raw_body(418, res))
      assert.equal("1", res.headers["X-Exit"])
      assert.equal("418", res.headers["X-Hf-Status"])
      local o = observed(418)
      assert.same({ 1, 1, #"short-circuit\n" }, { o.calls, o.eofs, o.bytes })
    end)

    it("an error: Kong's 500, a log line naming the plugin, log still runs",
       function()
      helpers.clean_logfile()
      local res = assert(client:get("/err/anything"))
      local body = assert.res_status(500, res)
      local json = assert(cjson.decode(body))
      assert.equal("An unexpected error occurred", json.message)
      assert.matches("^%x+$", json.request_id)
      assert.logfile().has.line("buffered%-response plugin's response "
                                .. "handler: .*response boom", false, 5)
      local o = observed(500)
      assert.equal(1, o.eofs)
      -- the worker goes on
      res = assert(client:get("/rw/anything"))
      assert.res_status(200, res)
    end)

    it("may yield (ngx.sleep) while other requests are served", function()
      local other = helpers.proxy_client(5000)
      local t0 = socket.gettime()
      assert(client:send_raw("GET /sleep/anything HTTP/1.1\r\n"
                             .. "Host: test\r\n\r\n"))
      local res = assert(other:get("/rw/anything"))
      assert.res_status(200, res)
      local t_other = socket.gettime() - t0
      other:close()
      res = assert(client:read_response({ method = "GET" }))
      assert.res_status(200, res)
      local slept = tonumber(res.headers["X-Slept"])
      assert.is_true(slept >= 0.49, "slept " .. tostring(slept))
      assert.is_true(t_other < 0.45, "the other request waited "
                     .. t_other .. " s")
    end)

    it("a client gone while the handler sleeps costs nothing else",
       function()
      helpers.clean_logfile()
      local c = helpers.proxy_client(5000)
      assert(c:send_raw("GET /sleep/anything HTTP/1.1\r\nHost: test\r\n\r\n"))
      socket.sleep(0.1)
      c:close()
      socket.sleep(0.6)
      local res = assert(client:get("/rw/anything"))
      assert.res_status(200, res)
      assert.logfile().has.no.line("[alert]", true)
      assert.logfile().has.no.line("[crit]", true)
    end)

    it("a request body still goes up as it comes", function()
      local res = assert(client:post("/rw/anything", {
        body = string.rep("b", 100000),
        headers = { ["Content-Type"] = "text/plain" },
      }))
      local json = assert(cjson.decode(raw_body(200, res)))
      assert.equal(100000, #json.post_data.text)
    end)

    it("a chunked upstream body", function()
      local res = assert(client:get("/rw/stream/5"))
      local body = raw_body(200, res)
      assert.equal(5, select(2, body:gsub("\n", "")))
      assert.equal(tostring(#body), res.headers["X-Resp-Body-Len"])
      assert.equal(tostring(#body), res.headers["Content-Length"])
    end)

    it("204 and 304 upstream answers: no body", function()
      for _, code in ipairs({ 204, 304 }) do
        local res = assert(client:get("/rw/status/" .. code))
        assert.equal(code, res.status)
        assert.equal("", res:read_body() or "")
        assert.equal(tostring(code), res.headers["X-Resp-Upstream-Status"])
        assert.equal("0", res.headers["X-Resp-Body-Len"])
        if code == 204 then
          assert.is_nil(res.headers["Content-Length"])
        end
      end
      -- the connection is still in sync
      local res = assert(client:get("/rw/anything"))
      assert.res_status(200, res)
    end)
  end)


  describe("limits and upstream errors", function()
    it("a body over 64 MiB with a Content-Length: 502 at once, logged",
       function()
      helpers.clean_logfile()
      local res = assert(client:get("/eb/bytes/" .. (MAX + 1)))
      local body = assert.res_status(502, res)
      assert.matches(MSG_502, body, 1, true)
      assert.logfile().has.line("larger than the " .. MAX .. " bytes "
                                .. "buffered proxying holds", true, 5)
    end)

    it("a chunked body growing over 64 MiB: 502, logged", function()
      helpers.clean_logfile()
      local res = assert(client:get("/eb/bytes-chunked/" .. (MAX + 1)))
      assert.matches(MSG_502, assert.res_status(502, res), 1, true)
      assert.logfile().has.line("larger than the " .. MAX .. " bytes "
                                .. "buffered proxying holds", true, 5)
      -- exactly the bound still passes
      local c = helpers.proxy_client(20000)
      res = assert(c:get("/eb/bytes-chunked/" .. MAX))
      assert.equal(MAX, #assert.res_status(200, res))
      c:close()
    end)

    it("connection refused: 502 as before", function()
      local res = assert(client:get("/refused-eb/x"))
      assert.matches(MSG_502, assert.res_status(502, res), 1, true)
    end)

    it("read timeout before the head: 504 as before", function()
      local res = assert(client:get("/slow-eb/delay/2"))
      assert.res_status(504, res)
    end)

    it("an upstream dying mid-body: 502 (nothing was sent yet)", function()
      helpers.clean_logfile()
      local srv = helpers.tcp_server(raw_port, {
        responses = { { "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n"
                        .. "\r\n" .. string.rep("a", 1000), 0.2 } },
      })
      local res = assert(client:get("/raw-eb/x"))
      assert.matches(MSG_502, assert.res_status(502, res), 1, true)
      srv:join(5)
      assert.logfile().has.line("upstream prematurely closed connection",
                                true, 5)
    end)
  end)
end)
