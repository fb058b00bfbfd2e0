-- azure-functions and the shared _upstream module without the gateway:
-- the path suffix after a route's match (prefix and regex paths, dot
-- segments), path joining and escaping, the Host header, the headers
-- relayed from the platform, the Via switch and the function URL built
-- from a config (Kong's slash trimming).

-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
local plugin_schema = require "spec.internal.plugin_schema"
plugin_schema.map_plugins("kong.plugins.azure-functions.handler")


-- the modules capture `kong` and `ngx` when they load
local fake_kong = { configuration = {} }


local function load(name)
  local args = require "sluice.ngx.args"
  local crypto = require "sluice.ngx.crypto"
  _G.ngx = _G.ngx or {
    encode_base64 = crypto.encode_base64,
    escape_uri = args.escape_uri,
    decode_args = args.decode_args,
    re = require "sluice.ngx.re",
  }
  _G.kong = _G.kong or fake_kong
  return require(name)
end


describe("Plugin: azure-functions (_upstream)", function()
  local up

  lazy_setup(function()
    up = load("kong.plugins.azure-functions._upstream")
  end)

  describe("suffix_of", function()
    -- { request path, route paths, suffix }
    local cases = {
      { "/azure/hello/world", { "/azure" }, "/hello/world" },
      { "/azure/hello", { "/azure/" }, "hello" },
      { "/azure", { "/azure" }, "" },
      { "/azure/", { "/azure" }, "/" },
      { "/azurex", { "/azure" }, "x" },
      { "/a/b/c", { "/a", "/a/b" }, "/c" },            -- longest prefix
      { "/a/b/c", { "/x", "/" }, "a/b/c" },
      { "/fn/v1/items", { "~/fn/v\\d+" }, "/items" },   -- regex, anchored
      { "/x/fn/v1", { "~/fn/v\\d+" }, "/x/fn/v1" },     -- not at the start
      { "/fn/v1/items", { "/fn", "~/fn/v\\d+" }, "/items" },
      { "/any/thing", nil, "/any/thing" },              -- no paths
      { "/a/%2E%2E/b", { "/a" }, "/%2E%2E/b" },         -- still encoded
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " after " .. table.concat(c[2] or { "(none)" }, ",")
         .. " -> '" .. c[3] .. "'", function()
        assert.equal(c[3], up.suffix_of(c[1], c[2]))
      end)
    end

    for _, p in ipairs({ "/a/../b", "/a/./b", "/a/..", "/a/b/." }) do
      it("refuses the dot segments of " .. p, function()
        local s, err = up.suffix_of(p, { "/a" })
        assert.is_nil(s)
        assert.equal("dot segment in the path suffix", err)
      end)
    end
  end)

  describe("join_path", function()
    local cases = {
      { "/api/fn", "", "/api/fn" },
      { "/api/fn", "/", "/api/fn" },
      { "/api/fn", "/x/y", "/api/fn/x/y" },
      { "/api/fn", "x", "/api/fn/x" },
      { "/api/fn/", "//x", "/api/fn/x" },
      { "/api/fn", "/x/", "/api/fn/x/" },
    }
    for _, c in ipairs(cases) do
      it("'" .. c[1] .. "' + '" .. c[2] .. "' = '" .. c[3] .. "'", function()
        assert.equal(c[3], up.join_path(c[1], c[2]))
      end)
    end
  end)

  describe("escape_path", function()
    local cases = {
      { "/a b/c", "/a%20b/c" },
      { "/ä", "/%C3%A4" },
      { "/keep/%2F/encoded", "/keep/%2F/encoded" },
      { "/sub-delims!$&'()*+,;=:@~._-", "/sub-delims!$&'()*+,;=:@~._-" },
      { "/q?x#y\"<>", "/q%3Fx%23y%22%3C%3E" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " -> " .. c[2], function()
        assert.equal(c[2], up.escape_path(c[1]))
      end)
    end
  end)

  describe("host_header", function()
    local cases = {
      { "app.example.test", 443, true, "app.example.test" },
      { "app.example.test", 80, false, "app.example.test" },
      { "app.example.test", 443, false, "app.example.test:443" },
      { "app.example.test", 8443, true, "app.example.test:8443" },
      { "::1", 8080, false, "[::1]:8080" },
    }
    for _, c in ipairs(cases) do
      it(c[4], function()
        assert.equal(c[4], up.host_header(c[1], c[2], c[3]))
      end)
    end
  end)

  it("drops hop-by-hop and framing headers of the platform's answer",
     function()
    local got = up.response_headers({
      ["Content-Type"] = "application/json",
      ["Content-Length"] = "12",
      ["Transfer-Encoding"] = "chunked",
      ["Connection"] = "keep-alive",
      ["Keep-Alive"] = "timeout=5",
      ["Set-Cookie"] = { "a=1", "b=2" },
      ["X-Call-Id"] = "abc",
    })
    assert.same({
      ["Content-Type"] = "application/json",
      ["Set-Cookie"] = { "a=1", "b=2" },
      ["X-Call-Id"] = "abc",
    }, got)
  end)

  it("tells timeouts apart from other errors", function()
    assert.is_true(up.is_timeout("timeout"))
    assert.is_true(up.is_timeout("failed to read: timeout"))
    assert.is_false(up.is_timeout("connection refused"))
    assert.is_false(up.is_timeout(nil))
  end)

  describe("via_enabled", function()
    local cases = {
      { nil, true },
      { "server_tokens, latency_tokens", true },
      { { "server_tokens", "latency_tokens" }, true },
      { "Via", true },
      { "latency_tokens", false },
      { "off", false },
      { { "X-Kong-Request-Id" }, false },
    }
    for _, c in ipairs(cases) do
      it(tostring(type(c[1]) == "table" and table.concat(c[1], ",") or c[1])
         .. " -> " .. tostring(c[2]), function()
        fake_kong.configuration = { headers = c[1] }
        assert.equal(c[2], up.via_enabled())
      end)
    end
  end)
end)


describe("Plugin: azure-functions (handler)", function()
  local handler

  lazy_setup(function()
    handler = load("kong.plugins.azure-functions.handler")
  end)

  it("has Kong's PRIORITY and the Kong version", function()
    assert.equal(749, handler.PRIORITY)
    assert.equal(require("kong.meta").version, handler.VERSION)
  end)

  -- { config, host, port, path }
  local cases = {
    { { appname = "app", hostdomain = "azurewebsites.net",
        routeprefix = "api", functionname = "HttpTrigger", https = true },
      "app.azurewebsites.net", 443, "/api/HttpTrigger" },
    { { appname = "app", hostdomain = "example.test", routeprefix = "/r/",
        functionname = "/fn/", https = false },
      "app.example.test", 80, "/r/fn" },
    { { appname = "app", hostdomain = "example.test", routeprefix = "/",
        functionname = "fn", https = true },
      "app.example.test", 443, "/fn" },
    { { appname = "app", hostdomain = "example.test", routeprefix = "a/b",
        functionname = "my fn", https = true, port = 8443 },
      "app.example.test", 8443, "/a/b/my%20fn" },
  }
  for _, c in ipairs(cases) do
    it("calls " .. c[2] .. ":" .. c[3] .. c[4], function()
      local t = handler.target(c[1])
      assert.same({ host = c[2], port = c[3], path = c[4] }, t)
      -- computed once per config table
      assert.equal(t, handler.target(c[1]))
    end)
  end
end)
