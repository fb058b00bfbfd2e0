-- A new configuration is built beside the running one and swapped in whole
-- (lua/sluice/config.lua, core/conf/sl_decl.h): new requests use it at once,
-- a request in flight finishes with the generation it was routed with, and a
-- configuration that does not load changes nothing. Driven here from a
-- pre-function (trusted Lua) calling sluice.config.apply in one worker.

local helpers = require "spec.helpers"
local cjson = require "cjson"


local SWAP = [[
return function()
  local cjson = require "cjson.safe"
  local doc = cjson.decode(kong.request.get_raw_body())
  local ok, err, err_t = require("sluice.config").apply(doc, "spec")
  if not ok then
    return kong.response.exit(400, { message = err, err_t = err_t })
  end
  return kong.response.exit(200, { hash = require("sluice.config").hash() })
end
]]

local SLOW = [[
return function()
  local before = kong.router.get_route().name
  ngx.sleep(tonumber(kong.request.get_query_arg("sleep")) or 0.5)
  kong.service.request.set_header("X-Route-Before", before)
  kong.service.request.set_header("X-Route-After", kong.router.get_route().name)
  kong.service.request.set_header("X-Service-After", kong.router.get_service().name)
end
]]


local function config(mock_url, extra_route)
  local routes = {
    { name = "swap", paths = { "/swap" },
      plugins = { { name = "pre-function", config = { access = { SWAP } } } } },
    { name = "slow", paths = { "/slow" },
      plugins = { { name = "pre-function", config = { access = { SLOW } } } } },
  }
  if extra_route then
    routes[#routes + 1] = extra_route
  end
  return {
    _format_version = "3.0",
    services = { { name = "mock", url = mock_url, routes = routes } },
  }
end


describe("configuration swap in a running worker", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled",
      nginx_worker_processes = 1,
      untrusted_lua = "on",
      declarative_config = config(mock.url,
                                  { name = "old", paths = { "/old" } }),
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    mock:stop()
  end)

  before_each(function()
    client = helpers.proxy_client()
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)

  local function swap(doc)
    local res = assert(client:send {
      method = "POST", path = "/swap",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode(doc),
    })
    return res, cjson.decode((res:read_body()))
  end

  it("routes new requests with the new configuration at once", function()
    assert.res_status(200, client:get("/old"))
    assert.res_status(404, client:get("/new"))
    local res, body = swap(config(mock.url, { name = "new", paths = { "/new" } }))
    assert.equal(200, res.status, cjson.encode(body))
    assert.matches("^%x+$", body.hash)
    assert.res_status(200, client:get("/new"))
    assert.res_status(404, client:get("/old"))
  end)

  it("refuses a configuration that does not load and keeps the old one", function()
    assert(swap(config(mock.url, { name = "keep", paths = { "/keep" } })))
    assert.res_status(200, client:get("/keep"))
    local bad = config(mock.url, { name = "bad", paths = { "no-slash" } })
    local res, body = swap(bad)
    assert.equal(400, res.status)
    assert.equal(14, body.err_t.code)
    assert.matches("paths", body.message)
    assert.res_status(200, client:get("/keep"))
    assert.res_status(404, client:get("/no-slash"))
  end)

  it("lets a request in flight finish with the generation it was routed with",
     function()
    assert(swap(config(mock.url)))
    -- a second connection swaps while the first request sleeps in access
    local slow = helpers.proxy_client()
    assert(slow:send_raw("GET /slow?sleep=0.6 HTTP/1.1\r\nHost: x\r\n\r\n"))
    helpers.sleep(0.2)
    local renamed = config(mock.url)
    renamed.services[1].name = "mock2"
    renamed.services[1].routes[2].paths = { "/slow2" }
    renamed.services[1].routes[2].name = "slow2"
    local res = swap(renamed)
    assert.equal(200, res.status)
    assert.res_status(404, client:get("/slow"))
    local sres = assert(slow:read_response())
    local body = cjson.decode(assert.res_status(200, sres))
    slow:close()
    assert.equal("slow", body.headers["x-route-before"])
    assert.equal("slow", body.headers["x-route-after"])
    assert.equal("mock", body.headers["x-service-after"])
  end)
end)
