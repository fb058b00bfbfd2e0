-- A real gateway with `database = embedded` (two workers): the SQLite file
-- under the prefix is the configuration; a committed change reaches every
-- worker within one second; a change that does not load is refused while
-- the old config keeps serving; a restart serves what the file holds.
-- Changes are written from this process straight into the node's file
-- (another process on the same store, as a second worker would be), and
-- through the Admin API once it answers.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local support = require "spec.07-stores.support"
local migrations = require "sluice.db.migrations"
local cjson = require "cjson"


describe("embedded store, one node with two workers", function()
  local conf, mock, s

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    conf = support.node_conf("embedded-node", "embedded")
    assert(support.start(conf))
    s = support.store(conf)
  end)

  lazy_teardown(function()
    if s then
      s:close()
    end
    helpers.stop_kong(conf.prefix)
    if mock then
      mock.stop()
    end
  end)

  it("creates and migrates its database at start", function()
    helpers.wait_until(function()
      return util.exists(conf.prefix .. "/sluice.db")
    end, 5)
    local state = assert(migrations.state(s))
    assert.is_falsy(state.needs_bootstrap)
    assert.same({}, state.pending)
    -- WAL: the workers and the CLI share the file
    local rows = assert(s:query("PRAGMA journal_mode"))
    assert.equal("wal", rows[1].journal_mode)
  end)

  it("serves a change written to the store on every worker within one "
     .. "second", function()
    support.bootstrap(conf)
    assert.equal(404, (support.get(conf, "/first")))
    local t0 = util.now()
    support.write_route(s, "/first", mock.url)
    local took = support.time_until_served(conf, "/first", 200, t0, 5)
    assert.truthy(took < 1.0, string.format("took %.2f s", took))
    -- the request reached the mock through the new service
    local status, body = support.get(conf, "/first/x")
    assert.equal(200, status)
    assert.matches("/x", body, 1, true)
  end)

  it("a deletion is followed the same way", function()
    support.bootstrap(conf)
    local service, route = support.write_route(s, "/gone", mock.url)
    support.time_until_served(conf, "/gone", 200, util.now(), 5)
    local t0 = util.now()
    assert(s:tx(function(st)
      assert(st:delete("routes", route.id))
      assert(st:delete("services", service.id))
      return true
    end))
    local took = support.time_until_served(conf, "/gone", 404, t0, 5)
    assert.truthy(took < 1.0, string.format("took %.2f s", took))
  end)

  it("refuses a stored change that does not load and keeps serving the "
     .. "old config", function()
    support.bootstrap(conf)
    support.write_route(s, "/kept", mock.url)
    support.time_until_served(conf, "/kept", 200, util.now(), 5)
    helpers.clean_logfile(helpers.error_log(conf.prefix))
    -- a route whose paths is not an array: the loader refuses it
    local bad = { id = require("sluice.uuid").generate_v4(),
                  name = "bad-route", paths = "/not-an-array",
                  service = { id = "00000000-0000-0000-0000-00000000dead" } }
    assert(s:insert("routes", bad, { name = "bad-route" }))
    helpers.wait_until(function()
      local log = util.read_file(helpers.error_log(conf.prefix)) or ""
      return log:find("refused", 1, true)
    end, 5)
    for _ = 1, 6 do
      assert.equal(200, (support.get(conf, "/kept")))
    end
    -- once fixed, the next generation applies
    assert(s:delete("routes", bad.id))
    local t0 = util.now()
    support.write_route(s, "/after-fix", mock.url)
    support.time_until_served(conf, "/after-fix", 200, t0, 5)
  end)

  it("serves what the file holds after a restart, with no write",
     function()
    support.bootstrap(conf)
    support.write_route(s, "/persisted", mock.url)
    support.time_until_served(conf, "/persisted", 200, util.now(), 5)
    s:close()
    helpers.stop_kong(conf.prefix, true)
    assert(support.start(conf, true))
    support.time_until_served(conf, "/persisted", 200, util.now(), 2)
  end)

  it("serves a change made through the Admin API within one second",
     function()
    assert(support.admin_ready(conf))
    local admin = helpers.http_client("127.0.0.1",
                                      support.port(conf.admin_listen), 5000)
    local t0 = util.now()
    local res = admin:post("/services", {
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ name = "via-admin", url = mock.url }),
    })
    assert.equal(201, res.status, res:read_body())
    res:read_body()
    res = admin:post("/services/via-admin/routes", {
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ paths = { "/via-admin" } }),
    })
    assert.equal(201, res.status, res:read_body())
    res:read_body()
    admin:close()
    local took = support.time_until_served(conf, "/via-admin", 200, t0, 5)
    assert.truthy(took < 1.0, string.format("took %.2f s", took))
    -- and it is in the file
    s = support.store(conf)
    assert.equal("via-admin", s:get_by("services", "name", "via-admin").name)
  end)
end)
