-- kong.client, kong.ctx, kong.log, kong.router, kong.configuration,
-- kong.version/version_num, kong.node and kong.ip through real requests.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call
local get = probe.get
local value = probe.value


local ALICE_ID = "5f1a4a3e-8e1f-4c8e-9d43-2b1f7a0c0a11"


describe("kong.client / kong.ctx / kong.log", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe,fake-auth,ctx-checker,ctx-checker-last",
      lua_package_path = probe.PACKAGE_PATH,
      trusted_ips = "127.0.0.1",
      real_ip_header = "X-Real-IP",
      node_id = "a3c3a1c2-5a6b-4a7e-8f9a-0b1c2d3e4f50",
      declarative_config = {
        _format_version = "3.0",
        consumers = {
          { username = "alice", id = ALICE_ID, custom_id = "a-1" },
          { username = "bob" },
        },
        services = {
          { name = "cc", url = mock.url,
            routes = {
              { name = "plain", paths = { "/plain" } },
              { name = "auth", paths = { "/auth" },
                plugins = { { name = "fake-auth" } } },
              { name = "shared", paths = { "/shared" },
                plugins = {
                  { name = "ctx-checker",
                    config = { ctx_set_field = "greeting",
                               ctx_set_value = "hello shared" } },
                  { name = "ctx-checker-last",
                    config = { ctx_check_field = "greeting" } },
                } },
              { name = "plugin-ns", paths = { "/plugin-ns" },
                plugins = {
                  { name = "ctx-checker",
                    config = { ctx_kind = "kong.ctx.plugin",
                               ctx_set_field = "secret",
                               ctx_set_value = "mine",
                               ctx_check_field = "secret" } },
                  { name = "ctx-checker-last",
                    config = { ctx_kind = "kong.ctx.plugin",
                               ctx_check_field = "secret" } },
                } },
              { name = "ngx-ctx", paths = { "/ngx-ctx" },
                plugins = {
                  { name = "ctx-checker",
                    config = { ctx_kind = "ngx.ctx", ctx_set_field = "k",
                               ctx_set_value = "via ngx.ctx" } },
                  { name = "ctx-checker-last",
                    config = { ctx_kind = "ngx.ctx",
                               ctx_check_field = "k" } },
                } },
              { name = "unset", paths = { "/unset" },
                plugins = {
                  { name = "ctx-checker-last",
                    config = { ctx_check_field = "greeting" } },
                } },
            } },
        },
        plugins = { { name = "pdk-probe" } },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  before_each(function()
    client = helpers.proxy_client()
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  describe("kong.client", function()
    it("get_ip is the peer, get_forwarded_ip follows real_ip_header from a trusted peer", function()
      local _, _, r = probe.send(client, { path = "/plain",
          headers = { ["X-Real-IP"] = "10.1.2.3" } }, {
        call("access", "kong.client.get_ip"),
        call("access", "kong.client.get_forwarded_ip"),
        call("access", "kong.client.get_port"),
        call("log", "kong.client.get_forwarded_ip"),
        call("access", "kong.client.get_protocol"),
      })
      assert.equal("127.0.0.1", value(r[1]))
      assert.equal("10.1.2.3", value(r[2]))
      local port = value(r[3])
      assert.is_number(port)
      assert.is_true(port > 0 and port < 65536)
      assert.equal("10.1.2.3", value(r[4]))
      assert.equal("http", value(r[5]))
    end)

    it("get_forwarded_ip is the peer without the header", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.client.get_forwarded_ip"),
      })
      assert.equal("127.0.0.1", value(r[1]))
    end)

    it("authenticate, get_consumer, get_credential (fake-auth), load_consumer by username", function()
      local res = client:get("/auth", { headers = { ["X-Consumer"] = "alice" } })
      local e = cjson.decode(assert.res_status(200, res))
      assert.equal("alice", e.headers["x-authenticated-consumer"])
      assert.equal(ALICE_ID, res.headers["X-Access-Consumer-Id"])
      assert.equal("cred-alice", res.headers["X-Access-Credential"])
      -- still there in header_filter and log
      assert.equal("alice", res.headers["X-Hf-Consumer"])
      assert.equal("cred-alice", res.headers["X-Hf-Credential"])
      assert.logfile().has.line("fake-auth log consumer=alice", true, 5)
    end)

    it("an unknown consumer is refused by the plugin", function()
      local res = client:get("/auth", { headers = { ["X-Consumer"] = "eve" } })
      assert.res_status(401, res)
    end)

    it("load_consumer by id and by username; get_consumer is nil without auth", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.client.load_consumer", ALICE_ID),
        call("access", "kong.client.load_consumer", "bob", true),
        call("access", "kong.client.load_consumer", "bob"),
        call("access", "kong.client.get_consumer"),
        call("access", "kong.client.get_credential"),
      })
      assert.equal("alice", value(r[1]).username)
      assert.equal("a-1", value(r[1]).custom_id)
      assert.equal("bob", value(r[2]).username)
      assert.is_string(value(r[2]).id)
      -- Kong: without search_by_username a non-uuid id is an error
      assert.is_true(not r[3].ok or value(r[3]) == nil)
      assert.is_nil(value(r[4]))
      assert.is_nil(value(r[5]))
    end)

    it("authenticate validates its arguments", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.client.authenticate"),
        call("access", "kong.client.authenticate", "x"),
      })
      assert.matches("either credential or consumer must be provided",
                     r[1].err, 1, true)
      assert.matches("consumer must be a table or nil", r[2].err, 1, true)
    end)
  end)


  describe("kong.ctx", function()
    it("kong.ctx.shared is shared by plugins across phases", function()
      local res = client:get("/shared")
      assert.res_status(200, res)
      assert.equal("hello shared", res.headers["X-Ctx-ctx-checker-last-Access"])
      assert.equal("hello shared", res.headers["X-Ctx-ctx-checker-last-Hf"])
      assert.logfile().has.line("ctx-check ctx-checker-last body_filter "
                                .. "hello shared", true, 5)
      assert.logfile().has.line("ctx-check ctx-checker-last log hello shared",
                                true, 5)
    end)

    it("kong.ctx.shared starts empty on every request", function()
      local res = client:get("/unset")
      assert.res_status(200, res)
      assert.equal("nil", res.headers["X-Ctx-ctx-checker-last-Access"])
      assert.equal("nil", res.headers["X-Ctx-ctx-checker-last-Hf"])
    end)

    it("kong.ctx.plugin is namespaced per plugin", function()
      local res = client:get("/plugin-ns")
      assert.res_status(200, res)
      assert.equal("mine", res.headers["X-Ctx-ctx-checker-Access"])
      assert.equal("mine", res.headers["X-Ctx-ctx-checker-Hf"])
      assert.equal("nil", res.headers["X-Ctx-ctx-checker-last-Access"])
      assert.equal("nil", res.headers["X-Ctx-ctx-checker-last-Hf"])
    end)

    it("ngx.ctx is shared by plugins too", function()
      local res = client:get("/ngx-ctx")
      assert.res_status(200, res)
      assert.equal("via ngx.ctx", res.headers["X-Ctx-ctx-checker-last-Access"])
      assert.equal("via ngx.ctx", res.headers["X-Ctx-ctx-checker-last-Hf"])
    end)
  end)


  describe("kong.log", function()
    it("writes every level as '[kong] file:line [plugin] msg'", function()
      local id = probe.new_id()
      local res = client:get("/plain", { headers = { ["X-Probe-Log"] = id } })
      assert.res_status(200, res)
      local levels = { debug = "debug", info = "info", notice = "notice",
                       warn = "warn", err = "error", crit = "crit" }
      for name, tag in pairs(levels) do
        assert.logfile().has.line("%[" .. tag .. "%] .-%[kong%] %S*handler%.lua:%d+ "
                                  .. "%[pdk%-probe%] probe " .. name .. " "
                                  .. id:gsub("%-", "%%-"), false, 5)
      end
      assert.logfile().has.line("probe err " .. id .. " 1 true", true, 1)
      assert.logfile().has.line("%[notice%] .-%[kong%] %S*handler%.lua:%d+ "
                                .. "%[pdk%-probe%] probe call "
                                .. id:gsub("%-", "%%-"), false, 1)
      assert.logfile().has.line("probe_inspect", true, 1)
      assert.logfile().has.line(id, true, 1)
    end)

    it("names the file by its base name, as Kong's %file_src", function()
      local id = probe.new_id()
      local res = client:get("/plain", { headers = { ["X-Probe-Log"] = id } })
      assert.res_status(200, res)
      assert.logfile().has.line("[kong] handler.lua:", true, 5)
    end)

    it("serialize() in log describes the request, response, route and service", function()
      local _, _, r = probe.send(client, { path = "/plain/x?a=1",
          headers = { Authorization = "Basic c2VjcmV0",
                      ["X-Real-IP"] = "10.9.9.9" } }, {
        call("access", "kong.log.set_serialize_value", "custom.field", "v1"),
        call("log", "kong.log.serialize"),
      })
      local s = value(r[2])
      assert.equal("GET", s.request.method)
      assert.equal("/plain/x?a=1", s.request.uri)
      assert.same({ a = "1" }, s.request.querystring)
      assert.equal("REDACTED", s.request.headers.authorization)
      assert.equal(200, s.response.status)
      assert.equal("plain", s.route.name)
      assert.equal("cc", s.service.name)
      assert.equal("10.9.9.9", s.client_ip)
      assert.is_number(s.started_at)
      assert.is_table(s.latencies)
      assert.equal("v1", s.custom.field)
    end)

    it("serialize() outside log is refused", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.log.serialize"),
      })
      assert.is_false(r[1].ok)
      assert.matches("function cannot be called in access phase "
                     .. "(only in: log)", r[1].err, 1, true)
    end)
  end)


  describe("kong.router, kong.configuration, kong.version, kong.node, kong.ip", function()
    it("router.get_route / get_service", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.router.get_route"),
        call("access", "kong.router.get_service"),
        call("log", "kong.router.get_route"),
      })
      assert.equal("plain", value(r[1]).name)
      assert.same({ "/plain" }, value(r[1]).paths)
      assert.equal("cc", value(r[2]).name)
      assert.equal(value(r[1]).service.id, value(r[2]).id)
      assert.equal("plain", value(r[3]).name)
    end)

    it("configuration is kong.conf as Kong types it, read-only", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        get("access", "kong.configuration.plugins"),
        get("access", "kong.configuration.trusted_ips"),
        get("access", "kong.configuration.real_ip_header"),
        get("access", "kong.configuration.node_id"),
        call("access", "rawset", "@nil", "x", 1),
      })
      assert.same({ "bundled", "pdk-probe", "fake-auth", "ctx-checker",
                    "ctx-checker-last" }, value(r[1]))
      assert.same({ "127.0.0.1" }, value(r[2]))
      assert.equal("X-Real-IP", value(r[3]))
      assert.equal("a3c3a1c2-5a6b-4a7e-8f9a-0b1c2d3e4f50", value(r[4]))
    end)

    it("version and version_num", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        get("access", "kong.version"),
        get("access", "kong.version_num"),
      })
      local v = value(r[1])
      assert.matches("^%d+%.%d+%.%d+", v)
      local major, minor, patch = v:match("^(%d+)%.(%d+)%.(%d+)")
      assert.equal(tonumber(string.format("%d%.2d%.2d", major * 100,
                                          minor * 10, patch)), value(r[2]))
    end)

    it("node.get_id is node_id; ip.is_trusted follows trusted_ips", function()
      local _, _, r = probe.send(client, { path = "/plain" }, {
        call("access", "kong.node.get_id"),
        call("access", "kong.ip.is_trusted", "127.0.0.1"),
        call("access", "kong.ip.is_trusted", "10.0.0.1"),
        call("access", "kong.nginx.get_subsystem"),
      })
      assert.equal("a3c3a1c2-5a6b-4a7e-8f9a-0b1c2d3e4f50", value(r[1]))
      assert.is_true(value(r[2]))
      assert.is_false(value(r[3]))
      assert.equal("http", value(r[4]))
    end)
  end)
end)
