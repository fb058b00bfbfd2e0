-- kong.db in plugin handlers (lua/sluice/kong_db.lua): a key-auth-like
-- plugin (spec/fixtures/.../db-reader) finds a credential of my-plugin's
-- daos.lua by key through kong.cache + kong.db, then its consumer; with the
-- embedded store (entities written through the Admin API) and DB-less
-- (consumers from kong.yml).

local helpers = require "spec.helpers"
local cjson = require "cjson"
local support = require "spec.06-admin-api.support"


local request = support.request


local function get(node, headers)
  local c = node.proxy()
  local res = assert(c:send({ method = "GET", path = "/r", headers = headers }))
  local body = res:read_body()
  c:close()
  return res.status, body, res.headers
end


describe("kong.db in plugin handlers, embedded store", function()
  local node, admin

  lazy_setup(function()
    node = support.start("kong-db", {
      workers = 1,
      plugins = support.PLUGINS .. ",db-reader",
    })
    admin = node.admin()
    local function ok(status, body)
      assert(status == 201, cjson.encode(body))
    end
    ok(request(admin, "POST", "/consumers", { username = "bob" }))
    ok(request(admin, "POST", "/consumers/bob/my-plugin-key", { key = "s3cret" }))
    ok(request(admin, "POST", "/services", {
      name = "s", url = "http://127.0.0.1:" .. node.admin_port .. "/status" }))
    ok(request(admin, "POST", "/services/s/routes", { paths = { "/r" } }))
    ok(request(admin, "POST", "/plugins", { name = "db-reader" }))
    -- the plugin runs once the worker has the new configuration
    assert(support.time_until_served(node, "/r", 401, helpers.now(), 3,
                                     { apikey = "nope" }))
  end)

  lazy_teardown(function()
    admin:close()
    node.stop()
  end)

  it("finds the credential by key, then its consumer", function()
    local status, body, headers = get(node, { apikey = "s3cret" })
    assert.equal(200, status, body)
    assert.equal("bob", headers["X-Consumer"])
  end)

  it("answers 401 for a key it does not know", function()
    local status, body = get(node, { apikey = "nope" })
    assert.equal(401, status)
    assert.same({ message = "Invalid authentication credentials" }, cjson.decode(body))
  end)

  it("selects a consumer by its endpoint key", function()
    local status, body = get(node, { ["x-username"] = "bob" })
    assert.equal(200, status)
    assert.equal("bob", cjson.decode(body).username)
    status = get(node, { ["x-username"] = "alice" })
    assert.equal(404, status)
  end)

  it("sees credentials created later", function()
    local _, c = request(admin, "POST", "/consumers", { username = "carol" })
    assert.equal("carol", c.username)
    assert.equal(201, (request(admin, "POST", "/consumers/carol/my-plugin-key",
                               { key = "k2" })))
    helpers.wait_until(function()
      local _, _, headers = get(node, { apikey = "k2" })
      return headers["X-Consumer"] == "carol"
    end, 3)
  end)
end)


describe("kong.db in plugin handlers, DB-less", function()
  local node

  lazy_setup(function()
    node = support.start("kong-db-off", {
      workers = 1,
      database = "off",
      plugins = support.PLUGINS .. ",db-reader",
      declarative_config = helpers.make_yaml_file({
        _format_version = "3.0",
        consumers = { { username = "dave" } },
        services = { { name = "s", url = "http://127.0.0.1:1",
                       routes = { { name = "r", paths = { "/r" } } } } },
        plugins = { { name = "db-reader" } },
      }),
    })
  end)

  lazy_teardown(function()
    node.stop()
  end)

  it("reads the running configuration", function()
    local status, body = get(node, { ["x-username"] = "dave" })
    assert.equal(200, status, body)
    assert.equal("dave", cjson.decode(body).username)
    assert.equal(404, (get(node, { ["x-username"] = "erin" })))
  end)
end)
