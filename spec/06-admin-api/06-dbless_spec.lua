-- DB-less mode (database = off) through a real gateway with two workers:
-- the Admin API reads the running configuration, refuses writes with
-- Kong's 405, and POST /config replaces the configuration on every worker
-- within one second (JSON document, YAML text in `config`, form and
-- multipart fields), with Kong's errors, flatten_errors and check_hash.

local helpers = require "spec.helpers"
local util = require "spec.internal.util"
local cjson = require "cjson"
local lyaml = require "lyaml"
local support = require "spec.06-admin-api.support"


local request = support.request
local NULL = cjson.null


describe("Admin API in DB-less mode", function()
  local node, client, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    node = support.start("dbless", {
      database = "off",
      workers = 2,
      declarative_config = {
        _format_version = "3.0",
        services = { {
          name = "yml-svc", url = mock.url,
          routes = { { name = "yml-route", paths = { "/yml" } } },
          plugins = { { name = "my-plugin",
                        config = { greeting = "from-yml" } } },
        } },
        consumers = { { username = "yml-user", tags = { "t" } } },
      },
    })
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

  local function proxy_get(path)
    local c = node.proxy()
    local res = assert(c:send({ method = "GET", path = path }))
    res:read_body()
    c:close()
    return res.status, res.headers["x-my-plugin"]
  end

  describe("reads", function()
    it("lists and fetches what the declarative file holds", function()
      local status, body = request(client, "GET", "/services")
      assert.equal(200, status)
      assert.equal(1, #body.data)
      local svc = body.data[1]
      assert.equal("yml-svc", svc.name)
      assert.equal(NULL, svc.tags)
      assert.equal(NULL, body.next)
      local _, by_name = request(client, "GET", "/services/yml-svc")
      assert.same(svc, by_name)
      local _, routes = request(client, "GET", "/services/yml-svc/routes")
      assert.equal("yml-route", routes.data[1].name)
      local _, s = request(client, "GET", "/routes/yml-route/service")
      assert.equal(svc.id, s.id)
      local _, plugins = request(client, "GET", "/services/yml-svc/plugins")
      assert.equal("from-yml", plugins.data[1].config.greeting)
      local _, consumers = request(client, "GET", "/consumers?tags=t")
      assert.equal("yml-user", consumers.data[1].username)
      assert.equal(404, (request(client, "GET", "/services/nope")))
    end)

    it("GET /status has the configuration hash, no database", function()
      local _, body = request(client, "GET", "/status")
      assert.matches("^%x+$", body.configuration_hash)
      assert.is_nil(body.database)
    end)
  end)

  describe("writes answer Kong's 405", function()
    local function unsupported(message)
      return { code = 12, name = "operation unsupported", message = message }
    end

    it("create, update, upsert, delete", function()
      local status, body = request(client, "POST", "/services",
                                   { name = "x", host = "h" })
      assert.equal(405, status)
      assert.same(unsupported("cannot create 'services' entities when not "
                              .. "using a database"), body)
      status, body = request(client, "PATCH", "/services/yml-svc",
                             { retries = 1 }, "form")
      assert.equal(405, status)
      assert.same(unsupported("cannot update 'services' entities by "
                              .. "'name' when not using a database"), body)
      local _, svc = request(client, "GET", "/services/yml-svc")
      status, body = request(client, "PUT", "/services/" .. svc.id,
                             { host = "h" })
      assert.equal(405, status)
      assert.same(unsupported("cannot create or update 'services' entities "
                              .. "when not using a database"), body)
      status, body = request(client, "DELETE", "/routes/yml-route")
      assert.equal(405, status)
      assert.same(unsupported("cannot remove 'routes' entities by 'name' "
                              .. "when not using a database"), body)
      status, body = request(client, "POST", "/consumers",
                             { username = "u" }, "multipart")
      assert.equal(405, status)
      assert.same(unsupported("cannot create 'consumers' entities when not "
                              .. "using a database"), body)
    end)

    it("validates first, and deleting nothing is 204", function()
      local status, body = request(client, "POST", "/services",
                                   { name = "x" })
      assert.equal(400, status)
      assert.same({ host = "required field missing" }, body.fields)
      assert.equal(204, (request(client, "DELETE", "/services/absent")))
    end)
  end)

  describe("POST /config", function()
    local function doc(path, greeting)
      return {
        _format_version = "3.0",
        services = { {
          name = "posted", url = mock.url,
          routes = { { name = "posted", paths = { path } } },
          plugins = { { name = "my-plugin",
                        config = { greeting = greeting } } },
        } },
      }
    end

    it("replaces the configuration on every worker within 1 s", function()
      local t0 = util.now()
      local status, body = request(client, "POST", "/config",
                                   doc("/posted", "json-doc"))
      assert.equal(201, status)
      -- Kong's answer: the loaded entities by type and id
      local n = 0
      for id, s in pairs(body.services) do
        assert.equal(id, s.id)
        assert.equal("posted", s.name)
        n = n + 1
      end
      assert.equal(1, n)
      assert.is_table(body.routes)
      assert.is_table(body.plugins)
      -- every worker: fresh connections spread over both
      local took = support.time_until_all(node, "/posted", function(st, h)
        return st == 200 and h["x-my-plugin"] == "json-doc"
      end, t0, 5)
      assert.truthy(took)
      assert.is_true(took < 1, "took " .. tostring(took))
      -- the old configuration is gone everywhere
      for _ = 1, 6 do
        assert.equal(404, (proxy_get("/yml")))
      end
      local _, list = request(client, "GET", "/services")
      assert.equal(1, #list.data)
      assert.equal("posted", list.data[1].name)
    end)

    local function yaml(path, greeting)
      return table.concat({
        "_format_version: '3.0'",
        "services:",
        "- name: posted",
        "  url: " .. mock.url,
        "  routes:",
        "  - name: posted",
        "    paths: ['" .. path .. "']",
        "  plugins:",
        "  - name: my-plugin",
        "    config: { greeting: " .. greeting .. " }",
      }, "\n") .. "\n"
    end

    for _, kind in ipairs(support.KINDS) do
      it("takes YAML text in a `config` field (" .. kind .. ")", function()
        local t0 = util.now()
        local status = request(client, "POST", "/config",
                               { config = yaml("/" .. kind, kind) }, kind)
        assert.equal(201, status)
        local took = support.time_until_all(node, "/" .. kind,
          function(st, h)
            return st == 200 and h["x-my-plugin"] == kind
          end, t0, 5)
        assert.truthy(took)
        assert.is_true(took < 1, "took " .. tostring(took))
      end)
    end

    it("GET /config exports what POST /config takes back", function()
      local status, body = request(client, "GET", "/config")
      assert.equal(200, status)
      assert.is_string(body.config)
      assert.matches("_format_version", body.config)
      assert.matches("posted", body.config)
      status = request(client, "POST", "/config", { config = body.config })
      assert.equal(201, status)
      local _, again = request(client, "GET", "/config")
      assert.same(lyaml.load(body.config), lyaml.load(again.config))
    end)

    it("check_hash: an unchanged configuration answers 304", function()
      local d = doc("/hash", "h1")
      assert.equal(201, (request(client, "POST", "/config", d)))
      assert.equal(304, (request(client, "POST", "/config?check_hash=1", d)))
      assert.equal(201, (request(client, "POST", "/config?check_hash=1",
                                 doc("/hash", "h2"))))
    end)

    it("refuses an invalid configuration and keeps serving", function()
      local bad = doc("/never", "x")
      bad.services[1].routes[1].paths = { "never" }
      bad.services[1].retries = "many"
      local status, body = request(client, "POST", "/config", bad)
      assert.equal(400, status)
      assert.equal(14, body.code)
      assert.equal("invalid declarative configuration", body.name)
      assert.matches("^declarative config is invalid: ", body.message)
      assert.same({ services = { { retries = "expected an integer",
        routes = { { paths = { "should start with: / (fixed path) or ~/ "
                               .. "(regex path)" } } } } } },
                  body.fields)
      assert.is_nil(body.flattened_errors)

      status, body = request(client, "POST", "/config?flatten_errors=1", bad)
      assert.equal(400, status)
      assert.same({}, body.fields)
      assert.equal(2, #body.flattened_errors)
      local by_type = {}
      for _, e in ipairs(body.flattened_errors) do
        by_type[e.entity_type] = e
      end
      assert.equal("posted", by_type.service.entity_name)
      assert.same({ { type = "field", field = "retries",
                      message = "expected an integer" } },
                  by_type.service.errors)
      assert.same({ { type = "field", field = "paths.1",
                      message = "should start with: / (fixed path) or ~/ "
                                .. "(regex path)" } },
                  by_type.route.errors)

      status, body = request(client, "POST", "/config",
                             { config = "services: [ {" })
      assert.equal(400, status)
      assert.equal(14, body.code)

      util.sleep(0.6)
      for _ = 1, 4 do
        assert.equal(200, (proxy_get("/hash")))
      end
    end)

    it("needs a configuration", function()
      local status, body = request(client, "POST", "/config", {})
      assert.equal(400, status)
      assert.same({ message = "expected a declarative configuration" }, body)
    end)
  end)
end)


describe("Admin API /config with a store (Sluice serves it, Kong answers 400)", function()
  local node

  lazy_setup(function()
    node = support.start("config-db", { workers = 1 })
  end)

  lazy_teardown(function()
    node.stop()
  end)

  it("exports the store and replaces it whole from a document", function()
    local c = node.admin()
    local status, body = request(c, "POST", "/services",
                                 { name = "before", url = "http://127.0.0.1:1" })
    assert.equal(201, status, cjson.encode(body))
    status, body = request(c, "POST", "/config", {
      _format_version = "3.0",
      services = { { name = "after", url = "http://127.0.0.1:2",
                     routes = { { name = "r-after", paths = { "/after" } } } } },
    })
    assert.equal(201, status, cjson.encode(body))
    -- the store holds the document, nothing else
    status, body = request(c, "GET", "/services")
    assert.equal(200, status)
    assert.equal(1, #body.data)
    assert.equal("after", body.data[1].name)
    -- and every worker serves it (the service is down: 502 means routed)
    assert(support.time_until_served(node, "/after", 502, helpers.now(), 2))
    status, body = request(c, "GET", "/config")
    assert.equal(200, status)
    assert.matches("name: after", body.config, 1, true)
    assert.matches("/after", body.config, 1, true)
    -- an invalid document changes nothing
    status, body = request(c, "POST", "/config", {
      _format_version = "3.0",
      services = { { name = "bad", url = "ftp://x" } },
    })
    assert.equal(400, status)
    assert.equal(14, body.code)
    status, body = request(c, "GET", "/services")
    assert.equal("after", body.data[1].name)
    c:close()
  end)
end)
