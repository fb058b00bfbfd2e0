-- The OpenWhisk walk-through of the plugin's documentation, done through
-- the Admin API exactly as its curl commands do it (form bodies): create a
-- service, a route, enable the `openwhisk` plugin on the service, call it
-- through the proxy. The platform is spec/internal/mock_faas's OpenWhisk
-- mock (the `hello` action answers {"payload":"Hello, <name>!"}).

local helpers = require "spec.helpers"
local support = require "spec.06-admin-api.support"


local request = support.request


local READY = helpers.file.exists(helpers.ROOT
                                  .. "/plugins/openwhisk/handler.lua")
              and helpers.file.exists(helpers.ROOT
                                      .. "/spec/internal/mock_faas.lua")


describe("OpenWhisk walk-through through the Admin API", function()
  if not READY then
    pending("WAITS: openwhisk plugin (plugins/openwhisk) and its mock "
            .. "(spec/internal/mock_faas.lua)")
    return
  end

  local mf = require "spec.internal.mock_faas"
  local node, ow, client

  lazy_setup(function()
    ow = assert(mf.start({ platform = "openwhisk" }))
    node = support.start("openwhisk", {
      workers = 1,
      plugins = "bundled,openwhisk",
    })
  end)

  lazy_teardown(function()
    if node then
      node.stop()
    end
    if ow then
      ow.stop()
    end
  end)

  before_each(function()
    client = node.admin()
  end)

  after_each(function()
    client:close()
  end)

  it("creates the service, the route and the plugin, then calls it",
     function()
    -- 1. a service (its URL is never called: the plugin answers)
    local status, svc = request(client, "POST", "/services/",
                                { name = "openwhisk-test",
                                  url = "http://example.com" }, "form")
    assert.equal(201, status)
    assert.equal("example.com", svc.host)

    -- 2. a route for it
    local route
    status, route = request(client, "POST",
                            "/services/openwhisk-test/routes/",
                            { ["hosts[]"] = "example.com" }, "form")
    assert.equal(201, status)
    assert.same({ "example.com" }, route.hosts)

    -- 3. the plugin, configured with form fields
    local plugin
    status, plugin = request(client, "POST",
                             "/services/openwhisk-test/plugins", {
      name = "openwhisk",
      ["config.host"] = "127.0.0.1",
      ["config.port"] = tostring(ow.port),
      ["config.https"] = "false",
      ["config.service_token"] = "mock-uuid:mock-key",
      ["config.action"] = "hello",
      ["config.path"] = "/api/v1/namespaces/guest",
    }, "form")
    assert.equal(201, status)
    assert.equal("openwhisk", plugin.name)
    assert.equal(ow.port, plugin.config.port)
    assert.is_false(plugin.config.https)
    assert.same({ id = svc.id }, plugin.service)

    -- 4. the call, through the proxy, served within a second
    local took = support.time_until_all(node, "/", function(st)
      return st ~= 404
    end, nil, 5, 2, { Host = "example.com" })
    assert.truthy(took)
    ow.clear()
    local proxy = node.proxy(10000)
    local res = assert(proxy:send({
      method = "POST", path = "/",
      headers = { Host = "example.com",
                  ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "name=foo",
    }))
    local body = res:read_body()
    proxy:close()
    if res.status == 500 and not helpers.file.exists(
         helpers.ROOT .. "/lua/sluice/ngx/socket.lua") then
      pending("WAITS: cosockets for the openwhisk plugin")
      return
    end
    assert.equal(200, res.status)
    assert.same({ payload = "Hello, foo!" }, require("cjson").decode(body))
    local reqs = ow.requests()
    assert.equal(1, #reqs)
    assert.equal("POST", reqs[1].method)
  end)

  it("lists what was created", function()
    local _, plugins = request(client, "GET",
                               "/services/openwhisk-test/plugins")
    assert.equal(1, #plugins.data)
    assert.equal("hello", plugins.data[1].config.action)
    local _, routes = request(client, "GET", "/services/openwhisk-test/routes")
    assert.equal(1, #routes.data)
  end)
end)
