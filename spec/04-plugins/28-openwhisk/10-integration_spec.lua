-- openwhisk through a real gateway against the OpenWhisk mock of
-- spec/fixtures/mock_faas (plain and TLS), asserting on what the client
-- gets and on what the mock recorded. Covers the README walk-through of
-- Kong/kong-plugin-openwhisk (the `hello` action with parameters from the
-- query, a form, JSON and multipart), result=false, Kong's 405/400, the
-- mapping of OpenWhisk's 202/502/401/404, invalid JSON from the platform,
-- https_verify with the right and a wrong CA, a platform that is down and
-- one that never answers.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local mf = require "spec.internal.mock_faas"
local fh = require "spec.internal.faas_plugins"


local TOKEN = "mock-uuid:mock-key"
local NS_PATH = "/api/v1/namespaces/guest"
local OW_HOST = "openwhisk.test"
local VIA = "kong/" .. require("kong.meta").version


-- The plugin calls out through cosockets; until they exist its requests
-- fail, so the cases that need them wait.
local it_io = fh.it_io()
local b64 = fh.b64


describe("Plugin: openwhisk (access)", function()
  local plain, tls, rogue, broken, silent
  local down_port

  lazy_setup(function()
    local cert, key = fh.server_cert({ OW_HOST })
    local rcert, rkey = fh.foreign_cert({ OW_HOST })
    plain = assert(mf.start({ platform = "openwhisk" }))
    tls = assert(mf.start({ platform = "openwhisk", tls = true,
                            cert = cert, key = key }))
    rogue = assert(mf.start({ platform = "openwhisk", tls = true,
                              cert = rcert, key = rkey }))
    broken = assert(mf.start({ platform = "openwhisk", force_status = 200,
                               force_body = "<html>not json</html>" }))
    silent = helpers.tcp_server(nil, { mode = "silent", n = 2,
                                       timeout = 30 })
    down_port = helpers.get_available_port()

    local function ow(name, config, extra)
      config.host = config.host or "127.0.0.1"
      config.port = config.port or plain.port
      config.path = config.path or NS_PATH
      config.action = config.action or "hello"
      if config.https == nil then
        config.https = false
      end
      if config.service_token == nil then
        config.service_token = TOKEN
      elseif config.service_token == false then
        config.service_token = nil
      end
      return fh.route(name, config, "openwhisk", extra)
    end

    assert(helpers.start_kong({
      plugins = "bundled,openwhisk",
      dns_hostsfile = fh.hosts_file({ OW_HOST }),
      lua_ssl_trusted_certificate = tls.ca_cert,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "unused", url = "http://127.0.0.1:1", routes = {
            ow("hello", {}),
            ow("echo", { action = "echo" }),
            ow("pkg", { action = "pkg/echo" }),
            ow("record", { result = false }),
            ow("fail", { action = "fail" }),
            ow("missing", { action = "nope" }),
            ow("badtoken", { service_token = "mock-uuid:wrong" }),
            ow("notoken", { service_token = false }),
            ow("slow", { action = "slow", timeout = 1500 }),
            ow("tls", { host = OW_HOST, port = tls.port, https = true,
                        https_verify = true }),
            ow("rogue", { host = OW_HOST, port = rogue.port, https = true,
                          https_verify = true }),
            ow("rogue-noverify", { host = OW_HOST, port = rogue.port,
                                   https = true, https_verify = false }),
            ow("broken", { port = broken.port }),
            ow("down", { port = down_port, timeout = 2000 }),
            ow("silent", { port = silent.port, timeout = 500 }),
          } },
        },
      },
    }))
  end)

  local gw = fh.gateway({
    plugin = "openwhisk",
    method = "POST",
    stop = function() return { plain, tls, rogue, broken, silent } end,
    clear = function() return plain end,
  })
  local post = gw.call


  describe("the README walk-through (hello)", function()
    it_io("without parameters says Hello, World!", function()
      local res = post("hello")
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, World!" }, fh.json(res))
    end)

    it_io("takes the name from a form", function()
      local res = post("hello", {
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = "name=bar",
      })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, bar!" }, fh.json(res))
    end)

    it_io("takes the name from a JSON body", function()
      local res = post("hello", {
        headers = { ["Content-Type"] = "application/json" },
        body = '{"name":"bar"}',
      })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, bar!" }, fh.json(res))
    end)

    it_io("takes the name from a multipart form", function()
      local res = post("hello", {
        headers = { ["Content-Type"] = "multipart/form-data" },
        body = { name = "bar" },
      })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, bar!" }, fh.json(res))
    end)

    it_io("takes the name from the query string", function()
      local res = post("hello", { path = "/?name=foo" })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, foo!" }, fh.json(res))
    end)

    it_io("returns the activation record with result = false", function()
      local res = post("record", { path = "/?name=foo" })
      assert.response(res).has.status(200)
      local rec = fh.json(res)
      assert.same({ payload = "Hello, foo!" }, rec.response.result)
      assert.is_true(rec.response.success)
      assert.equal("success", rec.response.status)
      assert.equal("hello", rec.name)
      assert.equal("guest", rec.namespace)
      assert.matches("^%x+$", rec.activationId)
      assert.equal(rec.activationId, res.headers["X-Openwhisk-Activation-Id"])
    end)
  end)

  describe("the invocation", function()
    it_io("is a blocking JSON POST with Basic auth to the action", function()
      local res = post("hello", { path = "/?name=foo" })
      assert.response(res).has.status(200)
      local reqs = plain.requests()
      assert.equal(1, #reqs)
      local r = reqs[1]
      assert.equal("POST", r.method)
      assert.equal(NS_PATH .. "/actions/hello", r.path)
      assert.same({ blocking = "true", result = "true", timeout = "59000" },
                  r.args)
      assert.equal("Basic " .. b64(TOKEN), r.headers["authorization"])
      assert.equal("application/json", r.headers["content-type"])
      assert.same({ name = "foo" }, cjson.decode(r.body))
      assert.equal("ok", r.auth)
      assert.equal("length", r.framing)
      assert.is_false(r.tls)
    end)

    it_io("merges the query with a JSON body, the body winning", function()
      local res = post("echo", {
        path = "/?name=query&only_query=1&flag",
        headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ name = "body", n = 3, list = { 1, 2 },
                              nested = { a = true } }),
      })
      assert.response(res).has.status(200)
      assert.same({ name = "body", only_query = "1", flag = true, n = 3,
                    list = { 1, 2 }, nested = { a = true } }, fh.json(res))
    end)

    it_io("merges the query with a multipart body (fields and files)",
          function()
      local boundary = "sluice-spec-boundary"
      local body = "--" .. boundary .. "\r\n"
        .. 'Content-Disposition: form-data; name="name"\r\n\r\nmulti\r\n'
        .. "--" .. boundary .. "\r\n"
        .. 'Content-Disposition: form-data; name="doc"; filename="d.txt"'
        .. "\r\nContent-Type: text/plain\r\n\r\nline1\r\nline2\r\n"
        .. "--" .. boundary .. "--\r\n"
      local res = post("echo", {
        path = "/?name=query&q=1",
        headers = { ["Content-Type"] = "multipart/form-data; boundary="
                                       .. boundary },
        body = body,
      })
      assert.response(res).has.status(200)
      assert.same({ name = "multi", q = "1", doc = "line1\r\nline2" },
                  fh.json(res))
    end)

    it_io("merges repeated form fields into an array", function()
      local res = post("echo", {
        path = "/?x=0",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = "tag=a&tag=b&x=1",
      })
      assert.response(res).has.status(200)
      assert.same({ tag = { "a", "b" }, x = "1" }, fh.json(res))
    end)

    it_io("invokes a packaged action", function()
      local res = post("pkg", { path = "/?a=1" })
      assert.response(res).has.status(200)
      assert.same({ a = "1" }, fh.json(res))
      local r = plain.last_request()
      assert.equal(NS_PATH .. "/actions/pkg/echo", r.path)
      assert.equal("pkg", r.package)
      assert.equal("echo", r.action)
    end)

    it_io("relays the platform's headers, with Kong's Via", function()
      local res = post("hello")
      assert.response(res).has.status(200)
      assert.matches("application/json", res.headers["Content-Type"], 1,
                     true)
      assert.matches("^%x+$", res.headers["X-Openwhisk-Activation-Id"])
      assert.equal(VIA, res.headers["Via"])
      assert.is_nil(res.headers["Transfer-Encoding"])
      assert.equal(#assert(res:read_body()),
                   tonumber(res.headers["Content-Length"]))
    end)

    it_io("reuses the platform connection (keepalive)", function()
      assert.response(post("hello")).has.status(200)
      assert.response(post("hello")).has.status(200)
      local reqs = plain.requests()
      assert.equal(2, #reqs)
      assert.equal(reqs[1].client, reqs[2].client)
    end)

    it_io("sends no Authorization without a service_token", function()
      local res = post("notoken")
      assert.response(res).has.status(401)
      local r = plain.last_request()
      assert.is_nil(r.headers["authorization"])
      assert.equal("missing", r.auth)
    end)
  end)

  describe("refuses", function()
    for _, method in ipairs({ "GET", "PUT", "DELETE", "PATCH" }) do
      it(method .. " with Kong's 405, without calling the platform",
         function()
        local res = post("hello", { method = method })
        assert.response(res).has.status(405)
        assert.same({ message = "Method not allowed" }, fh.json(res))
        assert.same({}, plain.requests())
      end)
    end

    it("an invalid JSON body with 400", function()
      local res = post("hello", {
        headers = { ["Content-Type"] = "application/json" },
        body = "{nope",
      })
      assert.response(res).has.status(400)
      assert.matches("^Expected", fh.json(res).message)
      assert.same({}, plain.requests())
    end)

    it("a JSON body that is not an object with 400", function()
      local res = post("hello", {
        headers = { ["Content-Type"] = "application/json" },
        body = "[1,2,3]",
      })
      assert.response(res).has.status(400)
      assert.same({ message = "JSON body must be an object" }, fh.json(res))
    end)
  end)

  describe("maps OpenWhisk's answers", function()
    it_io("an action error: 502 with OpenWhisk's error body", function()
      local res = post("fail", { path = "/?error=kaput" })
      assert.response(res).has.status(502)
      assert.same({ error = "kaput" }, fh.json(res))
      assert.matches("^%x+$", res.headers["X-Openwhisk-Activation-Id"])
    end)

    it_io("an unfinished activation (202): 504 with the activation id",
          function()
      local t0 = helpers.now()
      local res = post("slow", { path = "/?sleep=10" })
      local elapsed = helpers.now() - t0
      assert.response(res).has.status(504)
      local body = fh.json(res)
      assert.equal("The action did not complete within the timeout",
                   body.message)
      assert.matches("^%x+$", body.activationId)
      assert.equal(body.activationId, res.headers["X-Openwhisk-Activation-Id"])
      -- OpenWhisk was told to wait 1350 ms of the 1500 ms timeout
      local r = plain.last_request()
      assert.equal("1350", r.args.timeout)
      assert.equal("accepted", r.activation)
      assert.is_true(elapsed >= 1.3 and elapsed < 3, "took " .. elapsed)
    end)

    it_io("an unknown action: OpenWhisk's 404", function()
      local res = post("missing")
      assert.response(res).has.status(404)
      assert.equal("The requested resource does not exist.",
                   fh.json(res).error)
    end)

    it_io("a rejected token: OpenWhisk's 401", function()
      local res = post("badtoken")
      assert.response(res).has.status(401)
      assert.equal("The supplied authentication is invalid",
                   fh.json(res).error)
    end)

    it_io("a 200 that is not JSON: 502", function()
      local res = post("broken")
      assert.response(res).has.status(502)
      assert.equal("An invalid response was received from the upstream "
                   .. "server", fh.json(res).message)
      assert.logfile().has.line("[openwhisk] invalid JSON in the OpenWhisk "
                                .. "response (status 200)", true)
    end)
  end)

  describe("over TLS", function()
    it_io("verifies the platform against lua_ssl_trusted_certificate",
          function()
      tls.clear()
      local res = post("tls", { path = "/?name=tls" })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, tls!" }, fh.json(res))
      local r = tls.last_request()
      assert.is_true(r.tls)
      assert.equal(OW_HOST, r.sni)
      assert.equal("Basic " .. b64(TOKEN), r.headers["authorization"])
      assert.equal(OW_HOST .. ":" .. tls.port, r.headers["host"])
    end)

    it_io("answers 502 for a certificate from a CA it does not trust", function()
      rogue.clear()
      local res = post("rogue")
      assert.response(res).has.status(502)
      assert.same({}, rogue.requests())
      assert.logfile().has.line("[openwhisk] could not invoke the action at "
                                .. OW_HOST, true)
    end)

    it_io("accepts that certificate with https_verify = false", function()
      local res = post("rogue-noverify", { path = "/?name=x" })
      assert.response(res).has.status(200)
      assert.same({ payload = "Hello, x!" }, fh.json(res))
    end)

    it_io("does not reuse an unverified pooled connection when verifying",
          function()
      -- the unverified connection goes to the pool ...
      assert.response(post("rogue-noverify", { path = "/?name=x" })).has.status(200)
      -- ... and the verifying config must not pick it up
      assert.response(post("rogue")).has.status(502)
    end)
  end)

  describe("a platform", function()
    it_io("that is down: 502 with Kong's message, at once", function()
      local t0 = helpers.now()
      local res = post("down")
      assert.response(res).has.status(502)
      assert.equal("An invalid response was received from the upstream "
                   .. "server", fh.json(res).message)
      assert.is_true(helpers.now() - t0 < 2)
      assert.logfile().has.line("[openwhisk] could not invoke the action at "
                                .. "127.0.0.1:" .. down_port, true)
    end)

    it_io("that never answers: 504 within the timeout", function()
      local t0 = helpers.now()
      local res = post("silent")
      local elapsed = helpers.now() - t0
      assert.response(res).has.status(504)
      assert.equal("The upstream server is timing out",
                   fh.json(res).message)
      assert.is_true(elapsed >= 0.45 and elapsed < 2, "took " .. elapsed)
    end)

    it_io("that is slow does not block the worker", function()
      -- one worker: a request to another route is served while the slow
      -- action is being waited for
      local slow_client = helpers.proxy_client(10000)
      assert(slow_client:send_raw("POST /?sleep=10 HTTP/1.1\r\n"
                                  .. "Host: slow.openwhisk.test\r\n"
                                  .. "Content-Length: 0\r\n\r\n"))
      local t0 = helpers.now()
      local res = post("hello")
      assert.response(res).has.status(200)
      assert.is_true(helpers.now() - t0 < 1)
      local slow = slow_client:read_response({ method = "POST" })
      assert.equal(504, slow.status)
      slow_client:close()
    end)
  end)
end)
