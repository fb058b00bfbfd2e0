-- kong.request through real requests: every getter, called by the pdk-probe
-- fixture plugin in access (and the body getters in rewrite), compared with
-- what the client sent.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call
local value = probe.value


describe("kong.request", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe",
      lua_package_path = probe.PACKAGE_PATH,
      trusted_ips = "127.0.0.1",
      client_body_buffer_size = "1k",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "req", url = mock.url,
            routes = {
              { name = "req", paths = { "/req" }, strip_path = false },
              { name = "users",
                paths = { [[~/users/(?<id>\d+)/(\w+)$]] } },
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


  local function get(fn_calls, req)
    local calls = {}
    for i, c in ipairs(fn_calls) do
      calls[i] = type(c) == "string" and call("access", c) or c
    end
    local res, body, results = probe.send(client, req or { path = "/req" },
                                          calls)
    return results, res, body
  end


  it("get_scheme, get_host, get_port, get_http_version, get_method", function()
    local r = get({ "kong.request.get_scheme", "kong.request.get_host",
                    "kong.request.get_port", "kong.request.get_http_version",
                    "kong.request.get_method" },
                  { method = "PATCH", path = "/req",
                    headers = { Host = "Api.Example.COM:8123" } })
    assert.equal("http", value(r[1]))
    assert.equal("api.example.com", value(r[2]))
    assert.equal(helpers.get_proxy_port(), value(r[3]))
    assert.equal(1.1, value(r[4]))
    assert.equal("PATCH", value(r[5]))
  end)

  it("get_http_version is 1.0 for an HTTP/1.0 request", function()
    local r = get({ "kong.request.get_http_version" },
                  { path = "/req", version = "1.0",
                    headers = { Host = "x" } })
    assert.equal(1.0, value(r[1]))
  end)

  it("get_path normalizes, get_raw_path / get_path_with_query / get_raw_query keep the raw form", function()
    local r = get({ "kong.request.get_path", "kong.request.get_raw_path",
                    "kong.request.get_path_with_query",
                    "kong.request.get_raw_query" },
                  { path = "/req/a/./b/../%7Euser//x%2fy?q=%20a&b" })
    assert.equal("/req/a/~user/x%2Fy", value(r[1]))
    assert.equal("/req/a/./b/../%7Euser//x%2fy", value(r[2]))
    assert.equal("/req/a/./b/../%7Euser//x%2fy?q=%20a&b", value(r[3]))
    assert.equal("q=%20a&b", value(r[4]))
  end)

  it("get_raw_query is an empty string without a query", function()
    local r = get({ "kong.request.get_raw_query",
                    "kong.request.get_path_with_query" }, { path = "/req/x" })
    assert.equal("", value(r[1]))
    assert.equal("/req/x", value(r[2]))
  end)

  it("get_query and get_query_arg: repeated, bare and encoded args", function()
    local r = get({ "kong.request.get_query",
                    call("access", "kong.request.get_query_arg", "a"),
                    call("access", "kong.request.get_query_arg", "flag"),
                    call("access", "kong.request.get_query_arg", "sp"),
                    call("access", "kong.request.get_query_arg", "none"),
                    call("access", "kong.request.get_query_arg", "empty"),
                    call("access", "kong.request.get_query", 2) },
                  { path = "/req?a=1&a=2&flag&sp=hello%20world&empty=" })
    assert.same({ a = { "1", "2" }, flag = true, sp = "hello world",
                  empty = "" }, value(r[1]))
    assert.equal("1", value(r[2]))
    assert.equal(true, value(r[3]))
    assert.equal("hello world", value(r[4]))
    assert.is_nil(value(r[5]))
    assert.equal("", value(r[6]))
    -- max_args
    local limited = value(r[7])
    local n = 0
    for _ in pairs(limited) do
      n = n + 1
    end
    assert.is_true(n <= 2)
  end)

  it("get_query validates max_args with Kong's messages", function()
    local r = get({ call("access", "kong.request.get_query", 0),
                    call("access", "kong.request.get_query", 1001),
                    call("access", "kong.request.get_query", "x") })
    assert.is_false(r[1].ok)
    assert.matches("max_args must be >= 1", r[1].err, 1, true)
    assert.matches("max_args must be <= 1000", r[2].err, 1, true)
    assert.matches("max_args must be a number", r[3].err, 1, true)
  end)

  it("get_header / get_headers: case-insensitive, repeated headers as arrays", function()
    local r = get({ call("access", "kong.request.get_header", "x-custom"),
                    call("access", "kong.request.get_header", "X-CUSTOM"),
                    call("access", "kong.request.get_header", "x_custom"),
                    call("access", "kong.request.get_header", "x-multi"),
                    call("access", "kong.request.get_header", "x-absent"),
                    "kong.request.get_headers" },
                  { path = "/req", headers = {
                      ["X-Custom"] = "v1",
                      ["X-Multi"] = { "m1", "m2" } } })
    assert.equal("v1", value(r[1]))
    assert.equal("v1", value(r[2]))
    assert.equal("v1", value(r[3]))
    assert.equal("m1", value(r[4]))
    assert.is_nil(value(r[5]))
    local h = value(r[6])
    assert.equal("v1", h["x-custom"])
    assert.same({ "m1", "m2" }, h["x-multi"])
    assert.is_nil(h["X-Custom"] and h["X-Custom"] ~= h["x-custom"] or nil)
  end)

  it("get_header rejects a non-string name", function()
    local r = get({ call("access", "kong.request.get_header", 1) })
    assert.is_false(r[1].ok)
    assert.matches("header name must be a string", r[1].err, 1, true)
  end)

  it("get_raw_body and get_body: JSON (access and rewrite)", function()
    local body = cjson.encode({ a = 1, b = { "x", "y" } })
    local r, res = get({ "kong.request.get_raw_body", "kong.request.get_body",
                         call("rewrite", "kong.request.get_raw_body") },
                       { method = "POST", path = "/req", body = body,
                         headers = { ["Content-Type"] = "application/json" } })
    assert.equal(body, value(r[1]))
    assert.same({ a = 1, b = { "x", "y" } }, value(r[2]))
    assert.equal(body, value(r[3]))
    -- the body still reaches the upstream
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal(body, echo.body)
  end)

  it("get_body: form body, with its mimetype as third value", function()
    local r = get({ "kong.request.get_body" },
                  { method = "POST", path = "/req",
                    body = "a=1&a=2&b=hello+world&c",
                    headers = { ["Content-Type"] =
                                  "application/x-www-form-urlencoded" } })
    local v = value(r[1])
    assert.same({ "1", "2" }, v.a)
    assert.equal("hello world", v.b)
    assert.equal(true, v.c)
    assert.matches("application/x-www-form-urlencoded", r[1].values[3], 1,
                   true)
  end)

  it("get_body: Kong's errors for a missing/unsupported type and bad JSON", function()
    local r1 = get({ "kong.request.get_body" },
                   { method = "POST", path = "/req", body = "x",
                     headers = { ["Content-Type"] = "text/weird" } })
    assert.equal("unsupported content type 'text/weird'", r1[1].values[2])
    local r2 = get({ "kong.request.get_body" },
                   { method = "POST", path = "/req", body = "[1,2",
                     headers = { ["Content-Type"] = "application/json" } })
    assert.is_nil(value(r2[1]))
    assert.equal("invalid json body", r2[1].values[2])
  end)

  it("get_body without Content-Type: 'missing content type'", function()
    local r = get({ "kong.request.get_body" },
                  { method = "POST", path = "/req", body = "abc" })
    assert.is_nil(value(r[1]))
    assert.equal("missing content type", r[1].values[2])
  end)

  it("get_raw_body over client_body_buffer_size: nil and Kong's error", function()
    local big = string.rep("x", 4096)
    local r, res = get({ "kong.request.get_raw_body" },
                       { method = "POST", path = "/req", body = big,
                         headers = { ["Content-Type"] = "text/plain" } })
    assert.is_nil(value(r[1]))
    assert.equal("request body did not fit into client body buffer, "
                 .. "consider raising 'client_body_buffer_size'",
                 r[1].values[2])
    -- the body is still proxied untouched
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal(big, echo.body)
  end)

  it("get_start_time: ms since the epoch, at the start of the request", function()
    local before = math.floor(ngx and ngx.now() * 1000
                              or require("socket").gettime() * 1000)
    local r = get({ "kong.request.get_start_time" })
    local after = math.floor(require("socket").gettime() * 1000)
    local t = value(r[1])
    assert.is_number(t)
    assert.is_true(t >= before - 1000 and t <= after + 1000,
                   "start time " .. t .. " not in [" .. before .. ", "
                   .. after .. "]")
  end)

  it("get_uri_captures from a regex route", function()
    local r = get({ "kong.request.get_uri_captures" },
                  { path = "/users/123/profile" })
    local caps = value(r[1])
    assert.equal("123", caps.named.id)
    -- unnamed[0] is the whole match, then the groups in order
    assert.equal("/users/123/profile", caps.unnamed["0"] or caps.unnamed[0])
    assert.equal("123", caps.unnamed["1"] or caps.unnamed[1])
    assert.equal("profile", caps.unnamed["2"] or caps.unnamed[2])
  end)

  it("get_uri_captures is empty on a prefix route", function()
    local r = get({ "kong.request.get_uri_captures" })
    local caps = value(r[1])
    assert.same({}, caps.named)
  end)

  describe("forwarded getters from a trusted peer", function()
    it("use X-Forwarded-*", function()
      local r = get({ "kong.request.get_forwarded_scheme",
                      "kong.request.get_forwarded_host",
                      "kong.request.get_forwarded_port",
                      "kong.request.get_forwarded_path",
                      "kong.request.get_forwarded_prefix" },
                    { path = "/req", headers = {
                        ["X-Forwarded-Proto"] = "HTTPS",
                        ["X-Forwarded-Host"] = "Front.Example.com:99",
                        ["X-Forwarded-Port"] = "8443",
                        ["X-Forwarded-Path"] = "/front/req",
                        ["X-Forwarded-Prefix"] = "/front" } })
      assert.equal("https", value(r[1]))
      assert.equal("front.example.com", value(r[2]))
      assert.equal(8443, value(r[3]))
      assert.equal("/front/req", value(r[4]))
      assert.equal("/front", value(r[5]))
    end)

    it("fall back to the request's own values", function()
      local r = get({ "kong.request.get_forwarded_scheme",
                      "kong.request.get_forwarded_host",
                      "kong.request.get_forwarded_port",
                      "kong.request.get_forwarded_path",
                      "kong.request.get_forwarded_prefix" },
                    { path = "/req/p", headers = { Host = "own.test" } })
      assert.equal("http", value(r[1]))
      assert.equal("own.test", value(r[2]))
      assert.equal(helpers.get_proxy_port(), value(r[3]))
      assert.equal("/req/p", value(r[4]))
      assert.is_nil(value(r[5]))
    end)
  end)

  it("getters answer the same in header_filter, body_filter and log", function()
    local r = get({ call("header_filter", "kong.request.get_method"),
                    call("body_filter", "kong.request.get_path"),
                    call("log", "kong.request.get_query_arg", "k") },
                  { method = "DELETE", path = "/req/z?k=v" })
    assert.equal("DELETE", value(r[1]))
    assert.equal("/req/z", value(r[2]))
    assert.equal("v", value(r[3]))
  end)
end)
