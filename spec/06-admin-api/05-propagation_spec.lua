-- Traffic follows the Admin API (database = embedded, two workers): a
-- service, route and plugin created through the Admin API are served by
-- every worker within one second; changes and deletions too; a refused
-- write changes nothing and the old configuration keeps serving; what was
-- written survives a restart.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local support = require "spec.06-admin-api.support"


local request = support.request


describe("Admin API writes reach the proxy", function()
  local node, client, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    node = support.start("propagation", { workers = 2 })
  end)

  lazy_teardown(function()
    node.stop()
    mock.stop()
  end)

  before_each(function()
    client = node.admin()
  end)

  after_each(function()
    client:close()
  end)

  local function header_of(path)
    local c = node.proxy()
    local res = assert(c:send({ method = "GET", path = path }))
    res:read_body()
    c:close()
    return res.status, res.headers["x-my-plugin"]
  end

  it("service + route + plugin are served within one second", function()
    assert.equal(404, (header_of("/flow")))
    local t0 = util.now()
    assert.equal(201, (request(client, "POST", "/services",
                               { name = "flow", url = mock.url }, "form")))
    assert.equal(201, (request(client, "POST", "/services/flow/routes",
                               { name = "flow", ["paths[]"] = "/flow" },
                               "form")))
    assert.equal(201, (request(client, "POST", "/routes/flow/plugins",
                               { name = "my-plugin",
                                 ["config.greeting"] = "from-admin" },
                               "form")))
    -- on every worker: fresh connections spread over both
    local took = support.time_until_all(node, "/flow", function(st, h)
      return st == 200 and h["x-my-plugin"] == "from-admin"
    end, t0, 5)
    assert.truthy(took, "never served")
    assert.is_true(took < 1, "took " .. tostring(took) .. " s")
  end)

  it("a PATCH changes what every worker runs within one second", function()
    local _, list = request(client, "GET", "/routes/flow/plugins")
    local t0 = util.now()
    assert.equal(200, (request(client, "PATCH", "/plugins/" .. list.data[1].id,
                               { config = { greeting = "patched" } })))
    local took = support.time_until_all(node, "/flow", function(_, h)
      return h["x-my-plugin"] == "patched"
    end, t0, 5)
    assert.truthy(took)
    assert.is_true(took < 1, "took " .. tostring(took) .. " s")
  end)

  it("a refused write changes nothing and the old config serves", function()
    local _, before = request(client, "GET", "/routes/flow")
    local status = request(client, "PATCH", "/routes/flow",
                           { paths = { "~/(broken" } })
    assert.equal(400, status)
    status = request(client, "POST", "/services/flow/routes",
                     { name = "flow", paths = { "/other" } })
    assert.equal(409, status)
    local _, after = request(client, "GET", "/routes/flow")
    assert.same(before, after)
    assert.equal(404, (request(client, "GET", "/routes/other")))
    util.sleep(0.6)
    for _ = 1, 4 do
      local st, h = header_of("/flow")
      assert.equal(200, st)
      assert.equal("patched", h)
    end
    assert.equal(404, (header_of("/other")))
  end)

  it("survives a restart", function()
    node.restart()
    local c = node.admin()
    local status, svc = request(c, "GET", "/services/flow")
    c:close()
    assert.equal(200, status)
    assert.equal("flow", svc.name)
    assert.truthy(support.time_until_served(node, "/flow", 200, nil, 5))
    local _, h = header_of("/flow")
    assert.equal("patched", h)
  end)

  it("a write after which the whole configuration would not load is "
     .. "rolled back", function()
    -- the store holds a my-plugin instance; this node no longer has it
    node.conf.plugins = "bundled"
    node.restart()
    local c = node.admin()
    local status, body = request(c, "POST", "/services",
                                 { name = "after", host = "h" })
    assert.equal(400, status)
    assert.equal(14, body.code)
    assert.equal("invalid declarative configuration", body.name)
    assert.matches("my%-plugin", body.message)
    assert.equal(404, (request(c, "GET", "/services/after")))
    c:close()
    node.conf.plugins = support.PLUGINS
    node.restart()
  end)

  it("a DELETE stops the traffic within one second", function()
    local c = node.admin()
    local t0 = util.now()
    assert.equal(204, (request(c, "DELETE", "/routes/flow")))
    c:close()
    local took = support.time_until_all(node, "/flow", function(st)
      return st == 404
    end, t0, 5)
    assert.truthy(took)
    assert.is_true(took < 1, "took " .. tostring(took) .. " s")
  end)
end)
