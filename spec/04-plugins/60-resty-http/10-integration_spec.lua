-- resty.http through a real gateway, on Sluice's cosockets: every scenario
-- of scenarios.lua runs as pre-function access code (untrusted_lua = on)
-- on its own route and answers with its result as JSON; the same checks as
-- 05-luasocket_spec.lua are applied. Plus what only the gateway has: the
-- phases where cosockets are disabled (header_filter, log), cosockets in a
-- timer, and two requests waiting on upstreams at the same time in one
-- worker (the cosocket yields the request, not the worker).
--
-- PENDING until the cosockets exist (lua/sluice/ngx/socket.lua): every
-- test is pending("WAITS: cosockets") and no gateway is started.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"
local scenarios = require "spec.04-plugins.60-resty-http.scenarios"


local COSOCKETS = helpers.file.exists(helpers.ROOT
                                      .. "/lua/sluice/ngx/socket.lua")
local WAITS = "WAITS: cosockets"


local SLOW_CODE = [[
  local httpc = http.new()
  httpc:set_timeout(5000)
  local res, err = httpc:request_uri(mock_url("/delay/1"))
  return done({ status = res and res.status, err = err })
]]

-- an attempt to use resty.http where cosockets are disabled; OpenResty
-- raises in ngx.socket.tcp() already, Sluice at the first operation
local TRY_IN_PHASE = [[
  local ok, err = pcall(function()
    local httpc = http.new()
    httpc:set_timeout(1000)
    return httpc:request_uri(mock_url("/get"))
  end)
  local what = ok and "no error" or tostring(err)
]]

local PHASES_HEADER_FILTER = TRY_IN_PHASE .. [[
  kong.response.set_header("X-Resty-Http", what)
]]

local PHASES_LOG = TRY_IN_PHASE .. [[
  ngx.log(ngx.ERR, "resty-http-in-log: ", what)
]]


describe("resty.http in the gateway", function()
  local mock, client
  local run_id = tostring(os.time()) .. "-" .. tostring(math.random(1, 1e6))

  lazy_setup(function()
    if not COSOCKETS then
      return
    end
    mock = helpers.start_mock_upstream()
    local routes = {}
    for _, scenario in ipairs(scenarios.list) do
      routes[#routes + 1] = {
        name = "s-" .. scenario.name,
        paths = { "/s/" .. scenario.name },
        plugins = { { name = "pre-function", config = {
          access = { scenarios.PRELUDE .. scenario.code },
        } } },
      }
    end
    routes[#routes + 1] = {
      name = "slow",
      paths = { "/slow" },
      plugins = { { name = "pre-function", config = {
        access = { scenarios.PRELUDE .. SLOW_CODE },
      } } },
    }
    routes[#routes + 1] = {
      name = "phases",
      paths = { "/phases" },
      plugins = { { name = "pre-function", config = {
        header_filter = { scenarios.PRELUDE .. PHASES_HEADER_FILTER },
        log = { scenarios.PRELUDE .. PHASES_LOG },
      } } },
    }
    assert(helpers.start_kong({
      untrusted_lua = "on",
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "mock", url = mock.url, routes = routes } },
      },
    }))
  end)

  lazy_teardown(function()
    if not COSOCKETS then
      return
    end
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  before_each(function()
    if COSOCKETS then
      client = helpers.proxy_client()
    end
  end)

  after_each(function()
    if client then
      client:close()
      client = nil
    end
  end)


  for _, scenario in ipairs(scenarios.list) do
    it(scenario.name, function()
      if not COSOCKETS then
        pending(WAITS)
        return
      end
      local server
      if scenario.server then
        server = helpers.tcp_server(nil, scenario.server)
      end
      local ctx = {
        mock = mock,
        tcp_port = server and server.port,
        closed_port = helpers.get_available_port(),
      }
      local res = assert(client:send({
        method = "GET",
        path = "/s/" .. scenario.name,
        headers = {
          ["X-Mock-Port"] = mock.port,
          ["X-Mock-Ssl-Port"] = mock.ssl_port,
          ["X-Tcp-Port"] = server and server.port or nil,
          ["X-Closed-Port"] = ctx.closed_port,
          ["X-Run-Id"] = run_id,
        },
      }))
      local body = assert.res_status(200, res)
      if server then
        local _, received = server:join(5)
        ctx.received = received
      end
      scenario.check(cjson.decode(body), ctx)
    end)
  end


  it("keep-alive pools live across requests of one worker", function()
    if not COSOCKETS then
      pending(WAITS)
      return
    end
    local function get()
      local res = assert(client:send({
        method = "GET",
        path = "/s/keepalive_reuse",
        headers = { ["X-Mock-Port"] = mock.port, ["X-Run-Id"] = run_id
                                                               .. "-x" },
      }))
      return cjson.decode(assert.res_status(200, res))
    end
    local first = get()
    local second = get()
    -- worker_processes = 1: the second request finds the first one's
    -- connection in the pool
    assert.same({ 0, 1, 2 }, first.reused)
    assert.same({ 3, 4, 5 }, second.reused)
    assert.equal(first.conns[1], second.conns[1])
  end)


  it("cosockets yield the request, not the worker", function()
    if not COSOCKETS then
      pending(WAITS)
      return
    end
    -- two requests on two connections, each waiting 1 s on the mock
    local conns = {}
    local t0 = socket.gettime()
    for i = 1, 2 do
      local c = assert(socket.tcp())
      c:settimeout(10)
      assert(c:connect(helpers.get_proxy_ip(), helpers.get_proxy_port()))
      assert(c:send("GET /slow HTTP/1.1\r\nHost: test\r\nX-Mock-Port: "
                    .. mock.port .. "\r\nConnection: close\r\n\r\n"))
      conns[i] = c
    end
    for i = 1, 2 do
      local data = conns[i]:receive("*a")
      conns[i]:close()
      assert.matches("^HTTP/1%.1 200 ", data)
      assert.matches('"status":200', data, nil, true)
    end
    local elapsed = socket.gettime() - t0
    assert.is_true(elapsed >= 0.9, "elapsed " .. elapsed)
    assert.is_true(elapsed < 1.8, "served one after the other: "
                                  .. elapsed .. " s")
  end)


  it("cosockets are disabled in header_filter and log", function()
    if not COSOCKETS then
      pending(WAITS)
      return
    end
    local res = assert(client:send({
      method = "GET",
      path = "/phases/get",
      headers = { ["X-Mock-Port"] = mock.port },
    }))
    assert.res_status(200, res)
    assert.equal("mock_upstream", res.headers["X-Powered-By"])
    assert.matches("API disabled in the ", res.headers["X-Resty-Http"], nil,
                   true)
    helpers.pwait_until(function()
      local log = helpers.file.read(helpers.error_log()) or ""
      assert.matches("resty%-http%-in%-log: [^\n]*API disabled in the ",
                     log)
    end, 5)
  end)
end)
