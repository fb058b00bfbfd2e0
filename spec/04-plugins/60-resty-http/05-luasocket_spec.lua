-- resty.http on real sockets, without the gateway: the scenarios of
-- scenarios.lua run in the spec process with ngx.socket.tcp() provided by
-- LuaSocket/LuaSec (luasocket_cosocket.lua), against the nginx mock
-- upstream and spec.helpers.tcp_server. This checks the HTTP layer (framing,
-- keep-alive with a real server, TLS, proxies) independently of Sluice's
-- cosockets; 10-integration_spec.lua runs the same scenarios through the
-- gateway.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"
local cosocket = require "spec.04-plugins.60-resty-http.luasocket_cosocket"
local scenarios = require "spec.04-plugins.60-resty-http.scenarios"


-- kong.response.exit, as seen by the chunk: stops it with the result
local EXIT = {}


local function fake_kong(headers)
  return {
    request = {
      get_header = function(name)
        return headers[name:lower()]
      end,
    },
    response = {
      exit = function(status, body)
        error({ [EXIT] = true, status = status, body = body }, 0)
      end,
    },
  }
end


-- Runs `code` as the gateway would run pre-function code with
-- untrusted_lua = on; returns the exit's body, JSON round-tripped.
local function run(code, headers)
  local env = setmetatable({ kong = fake_kong(headers) }, { __index = _G })
  local chunk = assert(loadstring(scenarios.PRELUDE .. code, "=scenario"))
  setfenv(chunk, env)
  local ok, err = pcall(chunk)
  assert.is_false(ok, "the scenario did not exit")
  if type(err) ~= "table" or not err[EXIT] then
    error(err, 0)
  end
  assert.equal(200, err.status)
  return cjson.decode(cjson.encode(err.body))
end


describe("resty.http over LuaSocket against real servers", function()
  local mock, saved_ngx

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    saved_ngx = _G.ngx
    _G.ngx = {
      socket = { tcp = cosocket.tcp },
      config = { ngx_lua_version = 10025 },
      now = socket.gettime,
      var = {},
      req = {},
    }
    package.loaded["resty.http"] = nil
    package.loaded["resty.http_connect"] = nil
    package.loaded["resty.http_headers"] = nil
  end)

  lazy_teardown(function()
    cosocket.drain()
    _G.ngx = saved_ngx
    if mock then
      mock.stop()
    end
  end)

  for _, scenario in ipairs(scenarios.list) do
    if not scenario.gateway_only then
      it(scenario.name, function()
        local server
        if scenario.server then
          server = helpers.tcp_server(nil, scenario.server)
        end
        local ctx = {
          mock = mock,
          tcp_port = server and server.port,
          closed_port = helpers.get_available_port(),
        }
        local ok, result = pcall(run, scenario.code, {
          ["x-mock-port"] = tostring(mock.port),
          ["x-mock-ssl-port"] = tostring(mock.ssl_port),
          ["x-tcp-port"] = server and tostring(server.port),
          ["x-closed-port"] = tostring(ctx.closed_port),
          ["x-run-id"] = tostring(math.random(1, 1e9)),
        })
        if server then
          local _, received = server:join(5)
          ctx.received = received
        end
        assert(ok, result)
        scenario.check(result, ctx)
      end)
    end
  end
end)
