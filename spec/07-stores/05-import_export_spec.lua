-- `sluice config db_import FILE` and `sluice config db_export [FILE]`
-- through the real build/sluice, on an embedded file and on a real
-- PostgreSQL: an import validates the whole file first (errors name the
-- file, the entity and the field, and change nothing), then replaces the
-- store's content in one transaction; an export is a declarative file
-- (`_format_version: "3.0"`, YAML or JSON) that imports back to the same
-- content. Then the Kong plugin workshop flow: a kong.yml imported with
-- db_import, listed back through the Admin API, the plugin's own endpoint
-- answering.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local pg = require "spec.internal.postgres"
local support = require "spec.07-stores.support"
local cjson = require "cjson"
local lyaml = require "lyaml"


local FIXTURES = helpers.ROOT .. "/spec/fixtures/custom_plugins/?.lua;"


local KONG_YML = [[
_format_version: "3.0"
services:
  - name: orders
    url: http://127.0.0.1:%d/orders
    routes:
      - name: orders-route
        paths: [/orders]
        plugins:
          - name: pre-function
            config:
              access: ["kong.response.set_header('x-imported', 'yes')"]
  - name: users
    url: http://127.0.0.1:%d/users
    tags: [team-a]
consumers:
  - username: alice
    custom_id: "42"
]]


local BAD_YML = [[
_format_version: "3.0"
services:
  - name: fine
    url: http://127.0.0.1:1/
  - name: broken
    url: http://127.0.0.1:1/
    retries: many
]]


local function by_name(rows, field)
  local out = {}
  for _, r in ipairs(rows) do
    out[r[field or "name"]] = r
  end
  return out
end


local function suite(kind)
  local srv, conf, yml, port

  lazy_setup(function()
    port = helpers.get_available_port()
    if kind == "postgres" then
      srv = assert(pg.start())
      conf = support.node_conf("import-pg", srv)
    else
      conf = support.node_conf("import-embedded", "embedded")
    end
    util.mkdir(conf.prefix)
    yml = util.tmpname("import") .. ".yml"
    util.write_file(yml, string.format(KONG_YML, port, port))
  end)

  lazy_teardown(function()
    if srv then
      srv:stop()
    end
    util.rm_rf(conf.prefix)
  end)

  it("imports a kong.yml: every entity, with the loader's ids and unique "
     .. "keys", function()
    support.need_cli(pending)
    if kind == "postgres" then
      -- PostgreSQL must be bootstrapped first (embedded is created)
      local ok, out, err = support.cli("config db_import " .. yml, conf)
      assert.is_false(ok)
      assert.matches("Database needs bootstrapping", out .. err, 1, true)
      assert(support.cli("migrations bootstrap", conf))
    end
    local ok, out, err = support.cli("config db_import " .. yml, conf)
    assert.is_true(ok, out .. err)
    assert.matches("import successful", out, 1, true)

    local s = support.store(conf)
    local everything = assert(s:all())
    local services = by_name(everything.services)
    assert.equal(port, services.orders.port)
    assert.equal("/users", services.users.path)
    assert.same({ "team-a" }, services.users.tags)
    assert.equal(1, #everything.routes)
    assert.equal(services.orders.id, everything.routes[1].service.id)
    assert.equal("pre-function", everything.plugins[1].name)
    assert.equal(everything.routes[1].id, everything.plugins[1].route.id)
    assert.equal("alice", everything.consumers[1].username)
    assert.equal(services.orders.id,
                 s:get_by("services", "name", "orders").id)
    assert.equal("alice", s:get_by("consumers", "custom_id", "42").username)
    assert.truthy(s:generation() >= 1)
    s:close()
  end)

  it("an invalid file names the file, entity and field, and changes "
     .. "nothing", function()
    support.need_cli(pending)
    local s = support.store(conf)
    local before, gen = assert(s:snapshot())
    local bad = util.tmpname("bad") .. ".yml"
    util.write_file(bad, BAD_YML)
    local ok, out, err = support.cli("config db_import " .. bad, conf)
    assert.is_false(ok)
    assert.matches(bad, err, 1, true)
    assert.matches("services[2]", err, 1, true)
    assert.matches("broken", err, 1, true)
    assert.matches("retries", err, 1, true)
    assert.not_matches("import successful", out, 1, true)
    local after, gen2 = assert(s:snapshot())
    assert.same(before, after)
    assert.equal(gen, gen2)

    ok, out, err = support.cli("config db_import "
                               .. util.tmpname("missing") .. ".yml", conf)
    assert.is_false(ok)
    assert.matches("missing", err, 1, true)
    s:close()
  end)

  it("a second import replaces the content", function()
    support.need_cli(pending)
    local other = util.tmpname("other") .. ".yml"
    util.write_file(other, [[
_format_version: "3.0"
services:
  - name: only-one
    url: http://127.0.0.1:1/
]])
    local ok, out, err = support.cli("config db_import " .. other, conf)
    assert.is_true(ok, out .. err)
    local s = support.store(conf)
    local everything = s:all()
    assert.equal(1, #everything.services)
    assert.equal("only-one", everything.services[1].name)
    assert.same({}, everything.routes)
    assert.same({}, everything.consumers)
    -- the old unique keys went with their rows
    assert.is_nil(s:get_by("services", "name", "orders"))
    s:close()
  end)

  it("exports YAML that imports back to the same content", function()
    support.need_cli(pending)
    assert(support.cli("config db_import " .. yml, conf))
    local s = support.store(conf)
    local original = s:all()

    local ok, out, err = support.cli("config db_export", conf)
    assert.is_true(ok, err)
    assert.matches("^_format_version: '3.0'", out)
    local doc = lyaml.load(out)
    assert.equal("3.0", doc._format_version)
    assert.equal(2, #doc.services)

    local exported = util.tmpname("export") .. ".yml"
    util.write_file(exported, out)
    -- something else in between, then the export back
    s:replace_all({ services = { { id = "x", name = "x", host = "x" } } })
    ok, out, err = support.cli("config db_import " .. exported, conf)
    assert.is_true(ok, out .. err)
    assert.same(original, s:all())
    s:close()
  end)

  it("exports JSON to a file, refuses to overwrite it without -y",
     function()
    support.need_cli(pending)
    local file = util.tmpname("export") .. ".json"
    local ok, out, err = support.cli("config db_export " .. file, conf)
    assert.is_true(ok, out .. err)
    local doc = cjson.decode(util.read_file(file))
    assert.equal("3.0", doc._format_version)
    assert.equal(2, #doc.services)
    assert.equal(1, #doc.plugins)

    util.write_file(file, "keep me")
    ok, out, err = support.cli("config db_export " .. file, conf)
    assert.is_false(ok)
    assert.matches("already exists", err, 1, true)
    assert.equal("keep me", util.read_file(file))
    os.remove(file)
    ok, out, err = support.cli("config db_export " .. file, conf)
    assert.is_true(ok, out .. err)
    -- the JSON imports back too
    local s = support.store(conf)
    local original = s:all()
    ok, out, err = support.cli("config db_import " .. file, conf)
    assert.is_true(ok, out .. err)
    assert.same(original, s:all())
    s:close()
  end)
  it("db_export -y overwrites an existing file", function()
    support.need_cli(pending)
    local file = util.tmpname("export") .. ".yml"
    util.write_file(file, "old")
    local ok, out, err = support.cli("config db_export " .. file .. " -y",
                                     conf)
    assert.is_true(ok, out .. err)
    assert.matches("^_format_version: '3.0'", util.read_file(file))
  end)
end


describe("db_import / db_export #embedded", function()
  suite("embedded")
end)


if pg.available() then
  describe("db_import / db_export #postgres", function()
    suite("postgres")
  end)
else
  pending("db_import / db_export #postgres: " .. select(2, pg.available()))
end


describe("db_import on a running node", function()
  local conf, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
  end)

  lazy_teardown(function()
    if conf then
      helpers.stop_kong(conf.prefix)
    end
    if mock then
      mock.stop()
    end
  end)

  it("the node serves an import within one second", function()
    support.need_cli(pending)
    conf = support.node_conf("import-live", "embedded")
    assert(support.start(conf))
    support.bootstrap(conf)
    local file = util.tmpname("live") .. ".yml"
    util.write_file(file, string.format([[
_format_version: "3.0"
services:
  - name: live
    url: %s
    routes:
      - paths: [/live]
]], mock.url))
    local t0 = util.now()
    local ok, out, err = support.cli("config db_import " .. file, conf)
    assert.is_true(ok, out .. err)
    local took = support.time_until_served(conf, "/live", 200, t0, 5)
    assert.truthy(took < 1.5, string.format("took %.2f s", took))
  end)
end)


describe("the Kong plugin workshop flow", function()
  local conf, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
  end)

  lazy_teardown(function()
    if conf then
      helpers.stop_kong(conf.prefix)
    end
    if mock then
      mock.stop()
    end
  end)

  it("kong.yml imported with db_import, listed back through the Admin "
     .. "API, the plugin's endpoint answering", function()
    support.need_cli(pending)
    conf = support.node_conf("workshop", "embedded", {
      plugins = "bundled,my-plugin",
      lua_package_path = FIXTURES,
    })
    util.mkdir(conf.prefix)
    local file = util.tmpname("workshop") .. ".yml"
    util.write_file(file, string.format([[
_format_version: "3.0"
services:
  - name: example-service
    url: %s
    routes:
      - name: example-route
        paths: [/mock]
plugins:
  - name: my-plugin
    service: example-service
    config:
      greeting: hello-workshop
]], mock.url))
    local ok, out, err = support.cli("config db_import " .. file, conf)
    assert.is_true(ok, out .. err)
    assert(support.start(conf, true))

    local ready, why = support.admin_ready(conf)
    if not ready then
      pending(why)
    end
    local admin = helpers.http_client("127.0.0.1",
                                      support.port(conf.admin_listen), 5000)
    local res = admin:get("/services")
    local body = cjson.decode(res:read_body())
    assert.equal(200, res.status)
    assert.equal("example-service", body.data[1].name)
    res = admin:get("/routes")
    body = cjson.decode(res:read_body())
    assert.equal("example-route", body.data[1].name)
    res = admin:get("/plugins")
    body = cjson.decode(res:read_body())
    assert.equal("my-plugin", body.data[1].name)
    assert.equal("hello-workshop", body.data[1].config.greeting)
    res = admin:get("/my-plugin/ping")
    assert.equal(200, res.status)
    assert.matches("PONG", res:read_body(), 1, true)
    admin:close()

    local status, _, headers = support.get(conf, "/mock/anything")
    assert.equal(200, status)
    assert.equal("hello-workshop", headers["x-my-plugin"]
                                   or headers["X-My-Plugin"])
  end)
end)
