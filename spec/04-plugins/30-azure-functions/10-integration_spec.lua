-- azure-functions through a real gateway against the Azure Functions mock
-- of spec/fixtures/mock_faas (plain and TLS). <appname>.<hostdomain>
-- resolves to the mock through a hosts file (kong.conf dns_hostsfile) and
-- the `port` extension points at the mock's port. Asserts on what the
-- client gets and on what the mock recorded: Kong's passthrough of method,
-- query, headers and body, the x-functions-key / x-functions-clientid
-- injection, the path (with and without the suffix), https_verify with
-- the right and a wrong CA, a platform that is down and one that is slow.

local helpers = require "spec.helpers"
local mf = require "spec.internal.mock_faas"
local fh = require "spec.internal.faas_plugins"


local APP = "myapp"
local DOMAIN = "azure.test"
local HOST = APP .. "." .. DOMAIN
local KEY = "mock-function-key"
local VIA_SUFFIX = "1.1 kong/" .. require("kong.meta").version


local it_io = fh.it_io()


describe("Plugin: azure-functions (access)", function()
  local plain, tls, rogue
  local down_port

  lazy_setup(function()
    local cert, key = fh.server_cert({ HOST })
    local rcert, rkey = fh.foreign_cert({ HOST })
    plain = assert(mf.start({ platform = "azure", function_key = KEY }))
    tls = assert(mf.start({ platform = "azure", function_key = KEY,
                            tls = true, cert = cert, key = key }))
    rogue = assert(mf.start({ platform = "azure", function_key = KEY,
                              tls = true, cert = rcert, key = rkey }))
    down_port = helpers.get_available_port()

    local function az(name, config, extra)
      config.appname = config.appname or APP
      config.hostdomain = config.hostdomain or DOMAIN
      config.functionname = config.functionname or "HttpTrigger"
      config.port = config.port or plain.port
      if config.https == nil then
        config.https = false
      end
      if config.apikey == nil then
        config.apikey = KEY
      elseif config.apikey == false then
        config.apikey = nil
      end
      return fh.route(name, config, "azure-functions", extra)
    end

    assert(helpers.start_kong({
      plugins = "bundled,azure-functions",
      dns_hostsfile = fh.hosts_file({ HOST }),
      lua_ssl_trusted_certificate = tls.ca_cert,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "unused", url = "http://127.0.0.1:1", routes = {
            az("plain", { clientid = "client-1" }, { paths = { "/azure" } }),
            az("fixed", { forward_path = false }, { paths = { "/azure" } }),
            az("slashes", { routeprefix = "/api/", functionname = "/Fn/" }),
            az("nokey", { apikey = false }),
            az("tls", { https = true, https_verify = true,
                        port = tls.port }),
            az("rogue", { https = true, https_verify = true,
                          port = rogue.port }),
            az("rogue-noverify", { https = true, port = rogue.port }),
            az("slow", { functionname = "slow", timeout = 500 }),
            az("down", { port = down_port }),
          } },
        },
      },
    }))
  end)

  local gw = fh.gateway({
    plugin = "azure-functions",
    stop = function() return { plain, tls, rogue } end,
    clear = function() return plain end,
  })
  local call = gw.call


  describe("the request to the function", function()
    it_io("passes the query", function()
      assert.response(call("plain", { path = "/azure?hello=world&a=1&a=2" }))
        .has.status(200)
      local r = plain.last_request()
      assert.same({ hello = "world", a = { "1", "2" } }, r.args)
      assert.equal("hello=world&a=1&a=2", r.query)
    end)

    it_io("passes the body", function()
      assert.response(call("plain", { path = "/azure",
                                      body = "I'll be back" }))
        .has.status(200)
      assert.equal("I'll be back", plain.last_request().body)
    end)

    it_io("passes the method", function()
      for _, m in ipairs({ "POST", "PUT", "DELETE", "PATCH" }) do
        assert.response(call("plain", { method = m, path = "/azure" }))
          .has.status(200)
        assert.equal(m, plain.last_request().method)
      end
    end)

    it_io("passes the headers, without Host", function()
      assert.response(call("plain", {
        path = "/azure",
        headers = { ["Just-A-Header"] = "just a value",
                    ["Content-Type"] = "text/plain" },
      })).has.status(200)
      local h = plain.last_request().headers
      assert.equal("just a value", h["just-a-header"])
      assert.equal("text/plain", h["content-type"])
      assert.equal(HOST .. ":" .. plain.port, h["host"])
    end)

    it_io("injects the apikey and clientid, replacing the client's",
          function()
      assert.response(call("plain", {
        path = "/azure",
        headers = { ["x-functions-key"] = "client-key",
                    ["x-functions-clientid"] = "client-id" },
      })).has.status(200)
      local r = plain.last_request()
      assert.equal(KEY, r.headers["x-functions-key"])
      assert.equal("client-1", r.headers["x-functions-clientid"])
      assert.equal("header", r.key_source)
      assert.equal("client-1", r.clientid)
    end)

    it_io("calls /<routeprefix>/<functionname> plus the path suffix",
          function()
      assert.response(call("plain", { path = "/azure/and/then/some" }))
        .has.status(200)
      local r = plain.last_request()
      assert.equal("/api/HttpTrigger/and/then/some", r.path)
      assert.equal("HttpTrigger", r["function"])
      assert.equal("/and/then/some", r.suffix)
    end)

    it_io("with forward_path = false, always the function path (Kong 3.6)",
          function()
      assert.response(call("fixed", { path = "/azure/and/then/some" }))
        .has.status(200)
      assert.equal("/api/HttpTrigger", plain.last_request().path)
    end)

    it_io("trims the slashes of routeprefix and functionname", function()
      assert.response(call("slashes")).has.status(200)
      assert.equal("/api/Fn", plain.last_request().path)
    end)

    it_io("without an apikey, lets the client's key or ?code= through",
          function()
      assert.response(call("nokey")).has.status(401)
      assert.equal("missing", plain.last_request().key_source)
      assert.response(call("nokey", { path = "/?code=" .. KEY }))
        .has.status(200)
      assert.equal("query", plain.last_request().key_source)
      assert.response(call("nokey", {
        headers = { ["x-functions-key"] = KEY },
      })).has.status(200)
      assert.equal("header", plain.last_request().key_source)
    end)
  end)

  describe("the response", function()
    it_io("relays the function's status, headers and body, Via appended",
          function()
      local res = call("plain", { path = "/azure/x",
                                  headers = { ["X-Mock-Status"] = "201" } })
      assert.response(res).has.status(201)
      local doc = fh.json(res)
      assert.equal("HttpTrigger", doc["function"])
      assert.equal("/x", doc.suffix)
      assert.equal("header", doc.key_source)
      assert.matches("application/json", res.headers["Content-Type"], 1,
                     true)
      assert.equal(VIA_SUFFIX, res.headers["Via"])
      assert.truthy(tonumber(res.headers["Content-Length"]) > 100)
    end)

    it_io("relays Azure's 401 for a missing key", function()
      local res = call("nokey")
      assert.response(res).has.status(401)
      assert.equal("", res:read_body())
    end)
  end)

  describe("over TLS", function()
    it_io("verifies <appname>.<hostdomain> against "
          .. "lua_ssl_trusted_certificate", function()
      tls.clear()
      local res = call("tls", { path = "/?x=1" })
      assert.response(res).has.status(200)
      local r = tls.last_request()
      assert.is_true(r.tls)
      assert.equal(HOST, r.sni)
      assert.equal(HOST .. ":" .. tls.port, r.headers["host"])
      assert.equal(KEY, r.headers["x-functions-key"])
    end)

    it_io("answers 502 for a certificate from a CA it does not trust", function()
      rogue.clear()
      local res = call("rogue")
      assert.response(res).has.status(502)
      assert.same({}, rogue.requests())
      assert.logfile().has.line("[azure-functions] could not invoke " .. HOST,
                                true)
    end)

    it_io("accepts it without verification (Kong's default)", function()
      assert.response(call("rogue-noverify")).has.status(200)
    end)

    it_io("does not reuse an unverified pooled connection when verifying",
          function()
      -- the unverified connection goes to the pool ...
      assert.response(call("rogue-noverify")).has.status(200)
      -- ... and the verifying config must not pick it up
      assert.response(call("rogue")).has.status(502)
    end)
  end)

  describe("a platform", function()
    it_io("that is down: 502 at once", function()
      local t0 = helpers.now()
      local res = call("down")
      assert.response(res).has.status(502)
      assert.equal("An invalid response was received from the upstream "
                   .. "server", fh.json(res).message)
      assert.is_true(helpers.now() - t0 < 2)
    end)

    it_io("that is slow: 504 within the timeout", function()
      local t0 = helpers.now()
      local res = call("slow", { headers = { ["X-Mock-Sleep"] = "3" } })
      local elapsed = helpers.now() - t0
      assert.response(res).has.status(504)
      assert.equal("The upstream server is timing out",
                   fh.json(res).message)
      assert.is_true(elapsed >= 0.45 and elapsed < 2, "took " .. elapsed)
      assert.logfile().has.line("[azure-functions] could not invoke " .. HOST
                                .. ":" .. plain.port .. "/api/slow: timeout",
                                true)
    end)
  end)

  it("answers 413 for a body over client_body_buffer_size", function()
    local res = call("plain", { method = "POST", path = "/azure",
                                body = ("x"):rep(64 * 1024) })
    assert.response(res).has.status(413)
    assert.matches("client_body_buffer_size", fh.json(res).message, 1, true)
    assert.same({}, plain.requests())
  end)
end)
