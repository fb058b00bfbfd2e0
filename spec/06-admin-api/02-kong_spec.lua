-- The node endpoints of the Admin API through a real gateway (database =
-- embedded): GET /, /status, /endpoints, /plugins/enabled, the schema
-- endpoints and validators, and the router's answers (404, 405, 415,
-- OPTIONS, trailing slash, bad JSON).

local helpers = require "spec.helpers"
local support = require "spec.06-admin-api.support"


local request = support.request


describe("Admin API node endpoints", function()
  local node, client

  lazy_setup(function()
    node = support.start("kong", { workers = 1 })
  end)

  lazy_teardown(function()
    node.stop()
  end)

  before_each(function()
    client = node.admin()
  end)

  after_each(function()
    client:close()
  end)

  it("GET / describes the node", function()
    local status, body = request(client, "GET", "/")
    assert.equal(200, status)
    assert.equal("Welcome to kong", body.tagline)
    assert.equal("community", body.edition)
    assert.matches("^%d+%.%d+%.%d+", body.version)
    assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$", body.node_id)
    assert.is_string(body.hostname)
    assert.matches("LuaJIT", body.lua_version)
    assert.is_number(body.timers.running)
    assert.is_number(body.timers.pending)
    -- plugins: what the node can run, with version and priority
    assert.same({ version = "0.1.0", priority = 900 },
                body.plugins.available_on_server["my-plugin"])
    assert.is_table(body.plugins.available_on_server["pre-function"])
    assert.same({}, body.plugins.enabled_in_cluster)
    -- configuration without secrets
    assert.equal("embedded", body.configuration.database)
    assert.equal(node.conf.admin_listen, body.configuration.admin_listen[1])
    assert.is_nil(body.configuration.pg_password)
    -- pids: the master and its workers
    assert.equal(helpers.get_pid(node.conf.prefix), body.pids.master)
    assert.equal(1, #body.pids.workers)
  end)

  it("GET / lists the plugins in use", function()
    local status = request(client, "POST", "/plugins",
                           { name = "my-plugin" })
    assert.equal(201, status)
    local _, body = request(client, "GET", "/")
    assert.same({ "my-plugin" }, body.plugins.enabled_in_cluster)
  end)

  it("GET /status reports server, memory and the database", function()
    local status, body = request(client, "GET", "/status")
    assert.equal(200, status)
    for _, k in ipairs({ "connections_active", "connections_reading",
                         "connections_writing", "connections_waiting",
                         "connections_accepted", "connections_handled",
                         "total_requests" }) do
      assert.is_number(body.server[k], k)
    end
    assert.matches("^%d+%.%d%d MiB$", body.memory.lua_shared_dicts.kong
                                        .capacity)
    assert.equal("5.00 MiB", body.memory.lua_shared_dicts.kong.capacity)
    assert.equal(1, #body.memory.workers_lua_vms)
    assert.is_number(body.memory.workers_lua_vms[1].pid)
    assert.same({ reachable = true }, body.database)
    assert.matches("^%x+$", body.configuration_hash)

    local _, bytes = request(client, "GET", "/status?unit=b")
    assert.equal(5 * 1024 * 1024,
                 bytes.memory.lua_shared_dicts.kong.capacity)
    local _, k = request(client, "GET", "/status?unit=k&scale=0")
    assert.equal("5120 KiB", k.memory.lua_shared_dicts.kong.capacity)
    assert.equal(400, (request(client, "GET", "/status?unit=x")))
  end)

  it("GET /status counts the node's connections and requests", function()
    local _, before = request(client, "GET", "/status")
    -- three requests on three proxy connections (404s count too)
    for _ = 1, 3 do
      local c = node.proxy()
      local res = assert(c:send({ method = "GET", path = "/no-such-route" }))
      res:read_body()
      c:close()
    end
    -- a fourth connection stays open, idle between requests
    local idle = node.proxy()
    assert(idle:send({ method = "GET", path = "/no-such-route" })):read_body()
    local _, after = request(client, "GET", "/status")
    local b, a = before.server, after.server
    assert.is_true(a.connections_accepted >= b.connections_accepted + 4)
    assert.equal(a.connections_accepted, a.connections_handled)
    assert.is_true(a.total_requests >= b.total_requests + 5)
    -- this admin connection is being answered, the idle one waits
    assert.is_true(a.connections_writing >= 1)
    assert.is_true(a.connections_waiting >= 1)
    assert.equal(a.connections_active, a.connections_reading
                 + a.connections_writing + a.connections_waiting)
    idle:close()
  end)

  it("GET /endpoints lists every route, params in braces", function()
    local status, body = request(client, "GET", "/endpoints")
    assert.equal(200, status)
    local set = {}
    for _, e in ipairs(body.data) do
      set[e] = true
    end
    for _, e in ipairs({ "/", "/status", "/services",
                         "/services/{services}",
                         "/services/{services}/routes",
                         "/services/{services}/routes/{routes}",
                         "/routes/{routes}/service",
                         "/routes/{routes}/plugins",
                         "/consumers/{consumers}/plugins",
                         "/plugins/enabled", "/schemas/plugins/{name}",
                         "/config", "/my-plugin/ping",
                         "/consumers/{consumers}/my-plugin-key" }) do
      assert.is_true(set[e], e)
    end
  end)

  it("GET /plugins/enabled", function()
    local status, body = request(client, "GET", "/plugins/enabled")
    assert.equal(200, status)
    -- the bundled ones and the spec's own, sorted
    local bundled = require("sluice.plugins").BUNDLED_NAMES
    local want = { "my-plugin" }
    for _, name in ipairs(bundled) do
      want[#want + 1] = name
    end
    table.sort(want)
    assert.same(want, body.enabled_plugins)
  end)

  it("GET /schemas/plugins/{name}", function()
    local status, body = request(client, "GET", "/schemas/plugins/my-plugin")
    assert.equal(200, status)
    local config
    for _, f in ipairs(body.fields) do
      if f.config then
        config = f.config
      end
    end
    assert.equal("record", config.type)
    local fields = {}
    for _, f in ipairs(config.fields) do
      local name, def = next(f)
      fields[name] = def
    end
    assert.same({ type = "string", default = "hello" }, fields.greeting)
    assert.same({ 1, 10 }, fields.times.between)
    assert.same({}, fields.words.default)
    assert.equal("[]", (select(4, request(client, "GET",
      "/schemas/plugins/my-plugin"))):match('"words":{[^}]-"default":(%[%])'))

    status, body = request(client, "GET", "/schemas/plugins/nope")
    assert.equal(404, status)
    assert.same({ message = "No plugin named 'nope'" }, body)
  end)

  it("GET /schemas/{entity}", function()
    local status, body = request(client, "GET", "/schemas/services")
    assert.equal(200, status)
    local names = {}
    for _, f in ipairs(body.fields) do
      names[#names + 1] = next(f)
    end
    assert.same("id", names[1])
    assert.truthy(table.concat(names, ","):find("host,port,path", 1, true))
    assert.equal(404, (request(client, "GET", "/schemas/nopes")))
  end)

  describe("validators", function()
    for _, kind in ipairs(support.KINDS) do
      it("POST /schemas/plugins/validate (" .. kind .. ")", function()
        local status, body = request(client, "POST",
          "/schemas/plugins/validate",
          { name = "my-plugin", ["config.times"] = "3" }, kind)
        if kind == "json" then
          -- JSON is taken as sent: "config.times" is an unknown field
          assert.equal(400, status)
        else
          assert.equal(200, status)
          assert.same({ message = "schema validation successful" }, body)
        end
        status, body = request(client, "POST", "/schemas/plugins/validate",
                               { name = "my-plugin",
                                 ["config.times"] = "11" }, kind)
        assert.equal(400, status)
        assert.equal(2, body.code)
        assert.equal("schema violation", body.name)
      end)
    end

    it("POST /schemas/plugins/validate reports Kong's fields", function()
      local status, body = request(client, "POST",
        "/schemas/plugins/validate",
        { name = "my-plugin", config = { times = 11, nope = 1 } })
      assert.equal(400, status)
      assert.same({ config = { times = "value should be between 1 and 10",
                               nope = "unknown field" } }, body.fields)
      assert.equal("2 schema violations (config.nope: unknown field; "
                   .. "config.times: value should be between 1 and 10)",
                   body.message)
      status, body = request(client, "POST", "/schemas/plugins/validate",
                             { name = "nope" })
      assert.equal(400, status)
      assert.equal("plugin 'nope' not enabled; add it to the 'plugins' "
                   .. "configuration property", body.fields.name)
    end)

    it("POST /schemas/{entity}/validate", function()
      local status, body = request(client, "POST",
        "/schemas/services/validate", { url = "http://example.test" })
      assert.equal(200, status)
      assert.same({ message = "schema validation successful" }, body)
      status, body = request(client, "POST", "/schemas/routes/validate",
                             { protocols = { "http" } })
      assert.equal(400, status)
      assert.equal("schema violation (must set one of 'methods', 'hosts', "
                   .. "'headers', 'paths' when 'protocols' is 'http')",
                   body.message)
      status = request(client, "POST", "/schemas/services/validate",
                       { port = "x", host = "h" }, "form")
      assert.equal(400, status)
    end)
  end)

  describe("router", function()
    it("404 for unknown paths", function()
      local status, body = request(client, "GET", "/nope")
      assert.equal(404, status)
      assert.same({ message = "Not found" }, body)
      assert.equal(404, (request(client, "GET", "/services/a/b/c/d")))
    end)

    it("405 for a method a path does not have", function()
      local status, body = request(client, "DELETE", "/services")
      assert.equal(405, status)
      assert.same({ message = "Method not allowed" }, body)
      assert.equal(405, (request(client, "POST", "/status")))
      assert.equal(405, (request(client, "GET",
                                 "/schemas/plugins/validate")))
    end)

    it("OPTIONS answers 204 with Allow", function()
      local status, _, res = request(client, "OPTIONS", "/services")
      assert.equal(204, status)
      assert.equal("GET, HEAD, OPTIONS, POST", res.headers["allow"])
      status, _, res = request(client, "OPTIONS", "/services/x")
      assert.equal("DELETE, GET, HEAD, OPTIONS, PATCH, PUT",
                   res.headers["allow"])
    end)

    it("HEAD runs GET", function()
      local status = request(client, "HEAD", "/services")
      assert.equal(200, status)
    end)

    it("ignores a trailing slash", function()
      local status, body = request(client, "GET", "/services/")
      assert.equal(200, status)
      assert.is_table(body.data)
    end)

    it("415 for bodies of other types", function()
      local status, body = request(client, "POST", "/services", "name=x",
                                   nil, { ["Content-Type"] = "text/plain" })
      assert.equal(415, status)
      assert.same({ message = "Unsupported Media Type" }, body)
      status = request(client, "POST", "/services", "name=x")
      assert.equal(415, status)
    end)

    it("400 for JSON that does not parse", function()
      local status, body = request(client, "POST", "/services", "{nope",
        nil, { ["Content-Type"] = "application/json" })
      assert.equal(400, status)
      assert.same({ message = "Cannot parse JSON body" }, body)
    end)
  end)
end)
