-- Two Sluice nodes (own prefixes and ports, two workers each) on one real
-- PostgreSQL (spec/internal/postgres.lua): a change made on node A is served
-- by node B within one second; with PostgreSQL stopped both keep serving
-- their last config and log the outage once; after it comes back they
-- follow changes again; a restarted node serves the config from the
-- database. Writes go through node A's Admin API when it answers, else
-- straight into the database from this process.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local pg = require "spec.internal.postgres"
local support = require "spec.07-stores.support"
local cjson = require "cjson"


if not pg.available() then
  pending("two nodes on PostgreSQL: " .. select(2, pg.available()))
  return
end


describe("two nodes on one PostgreSQL", function()
  local srv, mock, a, b, s

  -- a service + route on `path`, through A's Admin API when it answers
  local function change(path)
    if support.admin_ready(a) then
      local admin = helpers.http_client("127.0.0.1",
                                        support.port(a.admin_listen), 5000)
      local name = "svc" .. path:gsub("%W", "")
      local res = admin:post("/services", {
        headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ name = name, url = mock.url }),
      })
      assert.equal(201, res.status, res:read_body())
      res:read_body()
      res = admin:post("/services/" .. name .. "/routes", {
        headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ paths = { path } }),
      })
      assert.equal(201, res.status, res:read_body())
      res:read_body()
      admin:close()
      return "admin"
    end
    support.write_route(s, path, mock.url)
    return "store"
  end

  lazy_setup(function()
    srv = assert(pg.start())
    mock = helpers.start_mock_upstream()
    a = support.node_conf("pg-node-a", srv)
    b = support.node_conf("pg-node-b", srv)
    s = support.store(a)
  end)

  lazy_teardown(function()
    if s then
      s:close()
    end
    helpers.stop_kong(a.prefix)
    helpers.stop_kong(b.prefix)
    if mock then
      mock.stop()
    end
    if srv then
      srv:stop()
    end
  end)

  it("a node refuses to start on a database that is not bootstrapped",
     function()
    local ok, err = support.start(a)
    if ok then
      helpers.stop_kong(a.prefix)
    end
    assert.is_falsy(ok)
    assert.matches("Database needs bootstrapping", err, 1, true)
    assert.matches("sluice migrations bootstrap", err, 1, true)
  end)

  it("a change made on node A is served by node B within one second",
     function()
    support.bootstrap(a)
    assert(support.start(a))
    assert(support.start(b))
    assert.equal(404, (support.get(b, "/shared")))
    local t0 = util.now()
    local via = change("/shared")
    local took = support.time_until_served(b, "/shared", 200, t0, 5)
    assert.truthy(took < 1.0, string.format("took %.2f s (via %s)", took,
                                            via))
    support.time_until_served(a, "/shared", 200, t0, 2)
    local status, body = support.get(b, "/shared/echo")
    assert.equal(200, status)
    assert.matches("/echo", body, 1, true)
  end)

  it("with PostgreSQL stopped both nodes keep serving their last config",
     function()
    support.time_until_served(b, "/shared", 200, util.now(), 5)
    s:close()
    assert(srv:pause())
    local t0 = util.now()
    -- several poll intervals with the database gone
    while util.now() - t0 < 1.6 do
      assert.equal(200, (support.get(a, "/shared")))
      assert.equal(200, (support.get(b, "/shared")))
      util.sleep(0.1)
    end
    -- each worker says so once, not every poll
    for _, node in ipairs({ a, b }) do
      local log = util.read_file(helpers.error_log(node.prefix)) or ""
      local n = support.count(log, "configuration store unreachable")
      assert.truthy(n >= 1 and n <= 2, "logged " .. n .. " times")
    end
  end)

  it("after PostgreSQL is back, both nodes follow changes again",
     function()
    assert(srv:resume())
    s = support.store(a)
    -- the pollers reconnect by themselves
    helpers.wait_until(function()
      local log = util.read_file(helpers.error_log(b.prefix)) or ""
      return log:find("configuration store reachable again", 1, true)
    end, 5)
    local t0 = util.now()
    change("/after-outage")
    local took = support.time_until_served(b, "/after-outage", 200, t0, 5)
    assert.truthy(took < 1.0, string.format("took %.2f s", took))
    support.time_until_served(a, "/after-outage", 200, t0, 2)
  end)

  it("a restarted node serves the config from the database", function()
    helpers.stop_kong(b.prefix)
    assert(support.start(b))
    support.time_until_served(b, "/shared", 200, util.now(), 2)
    support.time_until_served(b, "/after-outage", 200, util.now(), 2)
  end)

  it("both nodes report the same configuration hash", function()
    assert(support.admin_ready(a))
    local hashes = {}
    for i, node in ipairs({ a, b }) do
      local admin = helpers.http_client("127.0.0.1",
                                        support.port(node.admin_listen), 5000)
      local res = admin:get("/status")
      local body = res:read_body()
      admin:close()
      assert.equal(200, res.status, body)
      hashes[i] = cjson.decode(body).configuration_hash
    end
    assert.is_string(hashes[1])
    assert.equal(hashes[1], hashes[2])
  end)
end)
