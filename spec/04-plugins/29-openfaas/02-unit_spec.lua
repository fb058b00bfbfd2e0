-- openfaas without the gateway: the function path (namespace, async) and
-- the headers of the platform request (X-Forwarded-*, credentials, the
-- callback URL and a client's X-Callback-Url).

-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
local plugin_schema = require "spec.internal.plugin_schema"
plugin_schema.map_plugins("kong.plugins.openfaas.handler")


local crypto = require "sluice.ngx.crypto"


local FWD = { ip = "10.0.0.7", host = "api.example.test", proto = "https" }


describe("Plugin: openfaas (handler functions)", function()
  local handler

  lazy_setup(function()
    local args = require "sluice.ngx.args"
    _G.ngx = _G.ngx or {
      encode_base64 = crypto.encode_base64,
      escape_uri = args.escape_uri,
      decode_args = args.decode_args,
      re = require "sluice.ngx.re",
    }
    _G.kong = _G.kong or { configuration = {} }
    handler = require "kong.plugins.openfaas.handler"
  end)

  it("has a PRIORITY and the Kong version", function()
    assert.equal(749, handler.PRIORITY)
    assert.equal(require("kong.meta").version, handler.VERSION)
  end)

  local paths = {
    { { function_name = "echo" }, "/function/echo" },
    { { function_name = "echo", namespace = "staging" },
      "/function/echo.staging" },
    { { function_name = "echo", async = true }, "/async-function/echo" },
    { { function_name = "echo", namespace = "fn", async = true },
      "/async-function/echo.fn" },
  }
  for _, c in ipairs(paths) do
    it("calls " .. c[2], function()
      assert.equal(c[2], handler.function_path(c[1]))
    end)
  end

  describe("build_headers", function()
    it("adds X-Forwarded-* to the client's headers", function()
      local h = handler.build_headers({}, { ["content-type"] = "text/plain",
                                            ["x-custom"] = "1" }, FWD)
      assert.same({
        ["content-type"] = "text/plain",
        ["x-custom"] = "1",
        ["x-forwarded-for"] = "10.0.0.7",
        ["x-forwarded-host"] = "api.example.test",
        ["x-forwarded-proto"] = "https",
      }, h)
    end)

    it("appends to the client's X-Forwarded-For, sets -Host/-Proto",
       function()
      local h = handler.build_headers({}, {
        ["x-forwarded-for"] = { "1.1.1.1", "2.2.2.2" },
        ["x-forwarded-host"] = "orig.test",
        ["x-forwarded-proto"] = "http",
      }, FWD)
      assert.equal("1.1.1.1, 2.2.2.2, 10.0.0.7", h["x-forwarded-for"])
      -- (the handler passes kong.request.get_forwarded_host/scheme, which
      -- take a trusted peer's values)
      assert.equal("api.example.test", h["x-forwarded-host"])
      assert.equal("https", h["x-forwarded-proto"])
    end)

    it("adds nothing when the client's headers are not forwarded",
       function()
      assert.same({}, handler.build_headers({}, false, FWD))
    end)

    it("never forwards a client's X-Callback-Url", function()
      local h = handler.build_headers({ async = true },
        { ["x-callback-url"] = "http://evil.test/" }, FWD)
      assert.is_nil(h["x-callback-url"])
    end)

    it("sends callback_url in async mode", function()
      local h = handler.build_headers({ async = true,
                                        callback_url = "http://cb.test/x" },
        { ["x-callback-url"] = "http://evil.test/" }, FWD)
      assert.equal("http://cb.test/x", h["x-callback-url"])
    end)

    it("replaces the client's Authorization with basic_auth", function()
      local h = handler.build_headers({
        basic_auth = { username = "admin", password = "p:w" },
      }, { authorization = "Bearer client" }, FWD)
      assert.equal("Basic " .. crypto.encode_base64("admin:p:w"),
                   h.authorization)
    end)

    it("replaces the client's Authorization with bearer_token", function()
      local h = handler.build_headers({ bearer_token = "tok" },
                                      { authorization = "Basic x" }, FWD)
      assert.equal("Bearer tok", h.authorization)
    end)

    it("lets the client's Authorization through without credentials",
       function()
      local h = handler.build_headers({}, { authorization = "Basic x" }, FWD)
      assert.equal("Basic x", h.authorization)
    end)
  end)
end)
