-- kong.response through real requests: exit (string/table bodies, headers,
-- Kong's delayed exit in access), error (templates by Accept), header and
-- status edits in access and header_filter, the getters in header_filter
-- and log, and body_filter rewriting via ngx.arg and get/set_raw_body.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call
local value = probe.value


describe("kong.response", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    local function route(name, plugins)
      return { name = name, paths = { "/" .. name }, plugins = plugins }
    end
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe,short-circuit,order-a,header-echo,"
                .. "raise-error",
      lua_package_path = probe.PACKAGE_PATH,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "resp", url = mock.url,
            routes = {
              route("resp"),
              route("short", {
                { name = "short-circuit",
                  config = { status = 429, message = "slow down" } },
                { name = "order-a", config = { tag = "after-short" } },
              }),
              route("echo-raw", {
                { name = "header-echo",
                  config = { body_mode = "raw", suffix = "-END",
                             status = 201, value = "v1" } },
              }),
              route("echo-arg", {
                { name = "header-echo", config = { body_mode = "arg" } },
              }),
              route("boom", {
                { name = "raise-error", config = { message = "kaboom" } },
                { name = "order-a", config = { tag = "after-boom" } },
              }),
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


  describe("exit()", function()
    it("with a string body and headers", function()
      local res, body = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.exit", 418, "I am a teapot",
             { ["X-Exit"] = "yes", ["X-Multi"] = { "1", "2" } }),
      })
      assert.equal(418, res.status)
      assert.equal("I am a teapot", body)
      assert.equal("yes", res.headers["X-Exit"])
      assert.same({ "1", "2" }, res.headers["X-Multi"])
      assert.equal(tostring(#"I am a teapot"), res.headers["Content-Length"])
      -- not proxied
      assert.is_nil(res.headers["X-Powered-By"])
    end)

    it("with a table body: JSON with Kong's Content-Type", function()
      local res, body = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.exit", 403, { message = "nope",
                                                    n = 1 }),
      })
      assert.equal(403, res.status)
      assert.equal("application/json; charset=utf-8",
                   res.headers["Content-Type"])
      assert.same({ message = "nope", n = 1 }, cjson.decode(body))
      assert.equal(tostring(#body), res.headers["Content-Length"])
    end)

    it("without a body", function()
      local res, body = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.exit", 204),
      })
      assert.equal(204, res.status)
      assert.equal("", body or "")
    end)

    it("in rewrite", function()
      local res, body = probe.send(client, { path = "/resp" }, {
        call("rewrite", "kong.response.exit", 200, "from rewrite"),
      })
      assert.equal(200, res.status)
      assert.equal("from rewrite", body)
    end)

    it("validates its arguments with Kong's messages", function()
      local _, _, r = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.exit", 99),
        call("access", "kong.response.exit", "200"),
        call("access", "kong.response.exit", 200, 5),
      })
      assert.matches("code must be a number between 100 and 599", r[1].err,
                     1, true)
      assert.matches("code must be a number", r[2].err, 1, true)
      assert.matches("body must be a nil, string or table", r[3].err, 1, true)
    end)

    it("is delayed in access: later plugins' access is skipped, their header_filter and log still run", function()
      helpers.clean_logfile()
      local res = client:get("/short")
      local body = assert.res_status(429, res)
      assert.same({ status = 429, message = "slow down" }, cjson.decode(body))
      assert.equal("yes", res.headers["X-Short-Circuit"])
      -- order-a (PRIORITY 500) comes after short-circuit (900000)
      assert.is_nil(res.headers["X-Order-Resp-Access"])
      assert.is_nil(res.headers["X-Tag-order-a"])
      assert.equal("order-a", res.headers["X-Order-Hf"])
      assert.logfile().has.line("order-trace order-a log after-short 429",
                                true, 5)
      assert.logfile().has.line("short-circuit log phase ran, response "
                                .. "status 429", true, 5)
    end)
  end)


  describe("error()", function()
    local cases = {
      { accept = nil, ctype = "application/json; charset=utf-8",
        check = function(body)
          local j = cjson.decode(body)
          assert.equal("Forbidden", j.message)
          assert.is_string(j.request_id)
        end },
      { accept = "application/json", ctype = "application/json; charset=utf-8",
        check = function(body)
          assert.equal("Forbidden", cjson.decode(body).message)
        end },
      { accept = "text/html", ctype = "text/html; charset=utf-8",
        check = function(body)
          assert.matches("<html>", body, 1, true)
          assert.matches("Forbidden", body, 1, true)
        end },
      { accept = "application/xml", ctype = "application/xml; charset=utf-8",
        check = function(body)
          assert.matches("<message>Forbidden</message>", body, 1, true)
        end },
      { accept = "text/plain", ctype = "text/plain; charset=utf-8",
        check = function(body)
          assert.matches("^Forbidden", body)
        end },
    }
    for _, c in ipairs(cases) do
      it("with Accept: " .. tostring(c.accept), function()
        local res, body = probe.send(client, { path = "/resp",
            headers = { Accept = c.accept } },
          { call("access", "kong.response.error", 403) })
        assert.equal(403, res.status)
        assert.equal(c.ctype, res.headers["Content-Type"])
        c.check(body)
      end)
    end

    it("with a custom message and headers", function()
      local res, body = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.error", 401, "Who are you?",
             { ["WWW-Authenticate"] = "Basic" }),
      })
      assert.equal(401, res.status)
      assert.equal("Basic", res.headers["WWW-Authenticate"])
      assert.equal("Who are you?", cjson.decode(body).message)
    end)

    it("default messages of Kong's table", function()
      for status, msg in pairs({ [404] = "Not found",
                                 [429] = "Too many requests",
                                 [500] = "An unexpected error occurred",
                                 [503] = "The upstream server is currently unavailable",
                                 [418] = "The upstream server responded with 418" }) do
        local res, body = probe.send(client, { path = "/resp" }, {
          call("access", "kong.response.error", status),
        })
        assert.equal(status, res.status)
        assert.equal(msg, cjson.decode(body).message)
      end
    end)

    it("rejects a status outside 400..599", function()
      local _, _, r = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.error", 302),
      })
      assert.is_false(r[1].ok)
      assert.matches("code must be a number between 400 and 599", r[1].err,
                     1, true)
    end)
  end)


  describe("header edits", function()
    it("in access apply to the proxied response", function()
      local res = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.set_header", "X-A", "1"),
        call("access", "kong.response.add_header", "X-B", "1"),
        call("access", "kong.response.add_header", "X-B", "2"),
        call("access", "kong.response.set_headers",
             { ["X-C"] = "c", ["X-D"] = { "d1", "d2" } }),
        call("access", "kong.response.set_header", "X-Gone", "1"),
        call("access", "kong.response.clear_header", "X-Gone"),
      })
      assert.equal(200, res.status)
      assert.equal("1", res.headers["X-A"])
      assert.same({ "1", "2" }, res.headers["X-B"])
      assert.equal("c", res.headers["X-C"])
      assert.same({ "d1", "d2" }, res.headers["X-D"])
      assert.is_nil(res.headers["X-Gone"])
      assert.equal("mock_upstream", res.headers["X-Powered-By"])
    end)

    it("in header_filter edit the upstream's head, set_status included", function()
      local res, body = probe.send(client, { path = "/echo-raw" }, {})
      assert.equal(201, res.status)
      assert.equal("v1", res.headers["X-Echo-Access"])
      assert.same({ "1", "2" }, res.headers["X-Echo-Access-Add"])
      assert.equal("v1", res.headers["X-Echo-Hf"])
      assert.same({ "x", "y" }, res.headers["X-Echo-Hf-Add"])
      assert.same({ "p", "q" }, res.headers["X-Echo-Hf-Multi"])
      assert.is_nil(res.headers["X-Powered-By"])
      -- header-echo (PRIORITY 700) runs after pdk-probe (2000): in
      -- header_filter the probe sees the upstream's head, in log the result
      local r = select(3, probe.send(client, { path = "/echo-raw" }, {
        call("header_filter", "kong.response.get_status"),
        call("log", "kong.response.get_status"),
        call("log", "kong.response.get_header", "X-ECHO-HF"),
      }))
      assert.equal(200, value(r[1]))
      assert.equal(201, value(r[2]))
      assert.equal("v1", value(r[3]))
      assert.is_string(body)
    end)

    it("validates header names and values", function()
      local _, _, r = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.set_header", 1, "x"),
        call("access", "kong.response.set_header", "X-Fn", "@nil"),
        call("access", "kong.response.set_status", 700),
      })
      assert.matches("header name must be a string", r[1].err, 1, true)
      assert.matches('invalid header value for "X-Fn": got nil, expected '
                     .. "string, number, boolean or array of strings",
                     r[2].err, 1, true)
      assert.matches("code must be a number between 100 and 599", r[3].err,
                     1, true)
    end)
  end)


  describe("getters", function()
    it("get_status, get_header(s) in header_filter and log see the upstream's response", function()
      local res, _, r = probe.send(client, { path = "/resp/status/202" }, {
        call("header_filter", "kong.response.get_status"),
        call("header_filter", "kong.response.get_header", "X-POWERED-BY"),
        call("header_filter", "kong.response.get_headers"),
        call("header_filter", "kong.response.get_source"),
        call("log", "kong.response.get_status"),
        call("log", "kong.response.get_source"),
        call("log", "kong.response.get_header", "x-powered-by"),
      })
      assert.equal(202, res.status)
      assert.equal(202, value(r[1]))
      assert.equal("mock_upstream", value(r[2]))
      assert.equal("mock_upstream", value(r[3])["x-powered-by"])
      assert.equal(202, value(r[5]))
      assert.equal("mock_upstream", value(r[7]))
    end)

    it("get_source is 'service' for a proxied response in header_filter and log", function()
      local res, _, r = probe.send(client, { path = "/resp/status/202" }, {
        call("header_filter", "kong.response.get_source"),
        call("log", "kong.response.get_source"),
      })
      assert.equal(202, res.status)
      assert.equal("service", value(r[1]))
      assert.equal("service", value(r[2]))
    end)

    it("get_source is 'exit' after kong.response.exit", function()
      local res, _, r = probe.send(client, { path = "/resp" }, {
        call("header_filter", "kong.response.get_source"),
        call("log", "kong.response.get_source"),
        call("log", "kong.response.get_status"),
        call("access", "kong.response.exit", 409, "conflict"),
      })
      assert.equal(409, res.status)
      assert.equal("exit", value(r[1]))
      assert.equal("exit", value(r[2]))
      assert.equal(409, value(r[3]))
    end)

    it("get_source is 'error' after a plugin error", function()
      local res, body, r = probe.send(client, { path = "/boom" }, {
        call("log", "kong.response.get_source"),
        call("log", "kong.response.get_status"),
      })
      assert.equal(500, res.status)
      assert.equal("An unexpected error occurred",
                   cjson.decode(body).message)
      assert.equal("error", value(r[1]))
      assert.equal(500, value(r[2]))
    end)
  end)


  describe("body_filter", function()
    it("get_raw_body / set_raw_body replace the whole body", function()
      local res, body = probe.send(client, { path = "/echo-raw/abc" }, {})
      assert.equal(201, res.status)
      assert.is_nil(res.headers["Content-Length"] ~= nil
                    and res.headers["Content-Length"] ~= tostring(#body)
                    or nil)
      assert.matches('"PATH":"\\/ABC"', body, 1, true)
      assert.matches("%-END$", body)
    end)

    it("ngx.arg[1] rewrites each chunk", function()
      local res, body = probe.send(client, { path = "/echo-arg/stream/3" },
                                   {})
      assert.equal(200, res.status)
      assert.equal(body:upper(), body)
      assert.matches('"PATH":"\\/STREAM\\/3"', body, 1, true)
      assert.matches('"ID":2', body, 1, true)
    end)

    it("set_raw_body outside body_filter is refused", function()
      local _, _, r = probe.send(client, { path = "/resp" }, {
        call("access", "kong.response.set_raw_body", "x"),
      })
      assert.is_false(r[1].ok)
    end)
  end)
end)
