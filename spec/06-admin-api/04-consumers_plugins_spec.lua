-- Consumers, plugins and plugins' own Admin API (api.lua, daos.lua)
-- through a real gateway (database = embedded), with the my-plugin fixture
-- (spec/fixtures/custom_plugins/kong/plugins/my-plugin).

local cjson = require "cjson"
local support = require "spec.06-admin-api.support"


local request = support.request
local NULL = cjson.null


describe("Admin API consumers and plugins", function()
  local node, client

  lazy_setup(function()
    node = support.start("plugins", { workers = 1 })
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

  describe("consumers", function()
    it("CRUD by id or username", function()
      local status, c = request(client, "POST", "/consumers",
                                { username = "alice", custom_id = "a1" },
                                "form")
      assert.equal(201, status)
      assert.same({ "alice", "a1", NULL }, { c.username, c.custom_id, c.tags })
      local _, by_name = request(client, "GET", "/consumers/alice")
      assert.same(c, by_name)
      status, c = request(client, "PATCH", "/consumers/alice",
                          { tags = { "vip" } }, "multipart")
      assert.equal(200, status)
      assert.same({ "vip" }, c.tags)
      status = request(client, "POST", "/consumers", { custom_id = "a1" })
      assert.equal(409, status)
      status, c = request(client, "POST", "/consumers", {})
      assert.equal(400, status)
      assert.same({ ["@entity"] = {
        "at least one of these fields must be non-empty: 'custom_id', "
        .. "'username'" } }, c.fields)
    end)
  end)

  describe("plugins", function()
    local svc, route, consumer

    lazy_setup(function()
      local c = node.admin()
      local _
      _, svc = request(c, "POST", "/services", { name = "ps", host = "h" })
      _, route = request(c, "POST", "/services/ps/routes",
                         { name = "pr", paths = { "/pr" } })
      _, consumer = request(c, "POST", "/consumers", { username = "pc" })
      c:close()
    end)

    for _, kind in ipairs(support.KINDS) do
      it("POST /plugins types the config by the plugin's schema (" .. kind
         .. ")", function()
        local body
        if kind == "json" then
          body = { name = "my-plugin", instance_name = "mp-" .. kind,
                   config = { greeting = "hi", times = 3, loud = true,
                              words = { "a", "b" } },
                   route = { id = route.id } }
        else
          body = { name = "my-plugin", instance_name = "mp-" .. kind,
                   ["config.greeting"] = "hi", ["config.times"] = "3",
                   ["config.loud"] = "true",
                   ["config.words[]"] = { "a", "b" },
                   ["route.name"] = "pr" }
        end
        local status, p = request(client, "POST", "/plugins", body, kind)
        assert.equal(201, status)
        assert.same({ greeting = "hi", times = 3, loud = true,
                      words = { "a", "b" } }, p.config)
        assert.same({ id = route.id }, p.route)
        assert.same({ NULL, NULL }, { p.service, p.consumer })
        assert.is_true(p.enabled)
        assert.same({ "grpc", "grpcs", "http", "https" }, p.protocols)
        assert.equal(204, (request(client, "DELETE", "/plugins/" .. p.id)))
      end)
    end

    it("fills config defaults and refuses bad configs", function()
      local status, p = request(client, "POST", "/plugins",
                                { name = "my-plugin" })
      assert.equal(201, status)
      assert.same({ greeting = "hello", times = 1, loud = false, words = {} },
                  p.config)
      local _, _, _, text = request(client, "GET", "/plugins/" .. p.id)
      assert.matches('"words":%[%]', text)
      status, p = request(client, "POST", "/plugins",
                          { name = "my-plugin", config = { times = 0 },
                            service = { id = svc.id } })
      assert.equal(400, status)
      assert.same({
        code = 2,
        name = "schema violation",
        message = "schema violation (config.times: value should be between "
                  .. "1 and 10)",
        fields = { config = { times = "value should be between 1 and 10" } },
      }, p)
      status, p = request(client, "POST", "/plugins", { name = "nope" })
      assert.equal(400, status)
      assert.same({ name = "plugin 'nope' not enabled; add it to the "
                           .. "'plugins' configuration property" }, p.fields)
    end)

    it("one plugin of a name per route/service/consumer (409)", function()
      local status, p = request(client, "POST", "/services/ps/plugins",
                                { name = "my-plugin" })
      assert.equal(201, status)
      assert.same({ id = svc.id }, p.service)
      local body
      status, body = request(client, "POST", "/plugins",
                             { name = "my-plugin", service = { id = svc.id } })
      assert.equal(409, status)
      assert.equal(5, body.code)
      assert.equal("UNIQUE violation detected on '{consumer=null,"
                   .. "name=\"my-plugin\",route=null,service={id=\""
                   .. svc.id .. "\"}}'", body.message)
      -- the same plugin on a consumer is another scope
      status = request(client, "POST", "/consumers/pc/plugins",
                       { name = "my-plugin" })
      assert.equal(201, status)
    end)

    it("nested plugin endpoints", function()
      local _, list = request(client, "GET", "/services/ps/plugins")
      assert.equal(1, #list.data)
      local p = list.data[1]
      local status, got = request(client, "GET", "/services/ps/plugins/"
                                                 .. p.id)
      assert.equal(200, status)
      assert.same(p, got)
      status, got = request(client, "GET", "/plugins/" .. p.id .. "/service")
      assert.equal(200, status)
      assert.equal("ps", got.name)
      assert.equal(404, (request(client, "GET", "/plugins/" .. p.id
                                                .. "/route")))
      _, list = request(client, "GET", "/consumers/pc/plugins")
      assert.equal(1, #list.data)
      assert.same({ id = consumer.id }, list.data[1].consumer)
      assert.equal(404, (request(client, "GET", "/routes/pr/plugins/"
                                                .. p.id)))
    end)

    it("PATCH merges the config, PUT replaces it", function()
      local _, list = request(client, "GET", "/services/ps/plugins")
      local id = list.data[1].id
      local status, p = request(client, "PATCH", "/plugins/" .. id,
                                { ["config.times"] = "5" }, "form")
      assert.equal(200, status)
      assert.same({ greeting = "hello", times = 5, loud = false, words = {} },
                  p.config)
      status, p = request(client, "PATCH", "/plugins/" .. id,
                          { config = { greeting = "yo" }, enabled = false })
      assert.equal(200, status)
      assert.same({ "yo", 5, false }, { p.config.greeting, p.config.times,
                                        p.enabled })
      status, p = request(client, "PUT", "/plugins/" .. id,
                          { name = "my-plugin", service = { id = svc.id },
                            config = { loud = true } })
      assert.equal(200, status)
      assert.equal(id, p.id)
      assert.same({ greeting = "hello", times = 1, loud = true, words = {} },
                  p.config)
      assert.is_true(p.enabled)
    end)

    it("plugins go with the entity they are scoped to", function()
      assert.equal(204, (request(client, "DELETE", "/consumers/pc")))
      local _, list = request(client, "GET", "/plugins?size=1000")
      for _, p in ipairs(list.data) do
        assert.not_equal(consumer.id, p.consumer ~= NULL and p.consumer.id)
      end
      assert.equal(204, (request(client, "DELETE", "/routes/pr")))
      assert.equal(204, (request(client, "DELETE", "/services/ps")))
      _, list = request(client, "GET", "/plugins")
      for _, p in ipairs(list.data) do
        assert.equal(NULL, p.service)
      end
    end)

    it("plugin ids must be UUIDs", function()
      local status, body = request(client, "GET", "/plugins/not-a-uuid")
      assert.equal(400, status)
      assert.same({ code = 1, name = "invalid primary key",
                    message = "invalid primary key: '{id=\"expected a valid "
                              .. "UUID\"}'",
                    fields = { id = "expected a valid UUID" } }, body)
    end)
  end)

  describe("a plugin's api.lua", function()
    it("GET /my-plugin/ping answers PONG", function()
      local status, body = request(client, "GET", "/my-plugin/ping")
      assert.equal(200, status)
      assert.equal("PONG", body)
    end)

    it("self.params merges captures, query and body", function()
      local status, body = request(client, "GET", "/my-plugin/echo/hi?q=1")
      assert.equal(200, status)
      assert.same({ word = "hi", params = { "q", "word" } }, body)
      status, body = request(client, "POST", "/my-plugin/echo/yo",
                             { a = { "1", "2" }, ["b.c"] = "3" }, "form")
      assert.equal(201, status)
      assert.same({ word = "yo", body = { a = { "1", "2" },
                                          b = { c = "3" } } }, body)
    end)

    it("handlers get a db with Kong's DAO calls", function()
      local status, body = request(client, "PUT", "/my-plugin/consumers/dbc",
                                   {})
      assert.equal(201, status)
      local id = body.id
      status, body = request(client, "GET", "/my-plugin/consumers/dbc")
      assert.equal(200, status)
      assert.equal(id, body.id)
      assert.is_true(body.count >= 1)
      local _, c = request(client, "GET", "/consumers/dbc")
      assert.equal(id, c.id)
      status, body = request(client, "PUT", "/my-plugin/consumers/dbc", {})
      assert.equal(400, status)
      assert.equal(5, body.code)
      assert.equal(404, (request(client, "GET", "/my-plugin/consumers/no")))
    end)

    it("helpers.yield_error answers Kong's error", function()
      local status, body = request(client, "POST", "/my-plugin/echo/x",
                                   { fail = true })
      assert.equal(400, status)
      assert.same({ code = 2, name = "schema violation",
                    message = "fail requested",
                    fields = { fail = "requested" } }, body)
      assert.equal(405, (request(client, "DELETE", "/my-plugin/ping")))
    end)
  end)

  describe("a plugin's daos.lua", function()
    it("CRUD under /consumers/{c}/<dao> and /<dao>", function()
      local _, c = request(client, "POST", "/consumers",
                           { username = "keyed" })
      local status, k = request(client, "POST",
                                "/consumers/keyed/my-plugin-key",
                                { key = "k-1" }, "form")
      assert.equal(201, status)
      assert.same({ id = c.id }, k.consumer)
      assert.is_number(k.created_at)
      local _, got = request(client, "GET", "/my-plugin-keys/k-1")
      assert.same(k, got)
      local _, list = request(client, "GET", "/consumers/keyed/my-plugin-key")
      assert.equal(1, #list.data)
      assert.equal(409, (request(client, "POST", "/my-plugin-keys",
                                 { key = "k-1", consumer = { id = c.id } })))
      status, got = request(client, "POST", "/my-plugin-keys", { key = "x" })
      assert.equal(400, status)
      assert.same({ consumer = "required field missing" }, got.fields)
      -- deleting the consumer deletes its keys
      assert.equal(204, (request(client, "DELETE", "/consumers/keyed")))
      assert.equal(404, (request(client, "GET", "/my-plugin-keys/k-1")))
    end)
  end)
end)
