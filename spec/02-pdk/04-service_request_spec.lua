-- kong.service.request and kong.service through real requests: what the
-- mock upstream echo receives after the pdk-probe fixture edits the
-- upstream request in access (and rewrite), and timeouts/retries.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call


describe("kong.service.request", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe,header-echo",
      lua_package_path = probe.PACKAGE_PATH,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "svc", url = mock.url,
            routes = {
              { name = "svc", paths = { "/svc" } },
              { name = "echo", paths = { "/header-echo" },
                plugins = { { name = "header-echo",
                              config = { value = "from-plugin" } } } },
            } },
          { name = "slow", url = mock.url, read_timeout = 60000,
            routes = { { name = "slow", paths = { "/slow" } } } },
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


  local function echo(req, calls)
    local res, body, results = probe.send(client, req, calls)
    assert.equal(200, res.status, body)
    for i, r in pairs(results) do
      assert(r.ok, "call " .. i .. " (" .. tostring(r.fn) .. ") raised: "
                   .. tostring(r.err))
    end
    return cjson.decode(body), res
  end


  it("set_header / add_header / clear_header / set_headers", function()
    local e = echo({ path = "/svc", headers = {
                       ["X-Replace"] = "client",
                       ["X-Drop"] = "client",
                       ["X-Keep"] = "client" } }, {
      call("access", "kong.service.request.set_header", "X-Replace", "kong"),
      call("access", "kong.service.request.set_header", "X-New", 42),
      call("access", "kong.service.request.add_header", "X-Keep", "more"),
      call("access", "kong.service.request.add_header", "X-Added", "1"),
      call("access", "kong.service.request.add_header", "X-Added", "2"),
      call("access", "kong.service.request.clear_header", "X-Drop"),
      call("access", "kong.service.request.set_headers",
           { ["X-S1"] = "a", ["X-S2"] = { "b", "c" } }),
    })
    assert.equal("kong", e.headers["x-replace"])
    assert.equal("42", e.headers["x-new"])
    assert.same({ "client", "more" }, e.headers["x-keep"])
    assert.same({ "1", "2" }, e.headers["x-added"])
    assert.is_nil(e.headers["x-drop"])
    assert.equal("a", e.headers["x-s1"])
    assert.same({ "b", "c" }, e.headers["x-s2"])
  end)

  it("edits made in rewrite reach the upstream too", function()
    local e = echo({ path = "/svc" }, {
      call("rewrite", "kong.service.request.set_header", "X-From-Rewrite",
           "yes"),
    })
    assert.equal("yes", e.headers["x-from-rewrite"])
  end)

  it("a plugin's edits (header-echo)", function()
    local res = client:get("/header-echo", { headers = {
                             ["X-Echo-Clear"] = "bye" } })
    local e = cjson.decode(assert.res_status(200, res))
    assert.equal("from-plugin", e.headers["x-echo-set"])
    assert.same({ "1", "2" }, e.headers["x-echo-add"])
    assert.same({ "a", "b" }, e.headers["x-echo-multi"])
    assert.is_nil(e.headers["x-echo-clear"])
  end)

  it("set_path", function()
    local e = echo({ path = "/svc/original?x=1" }, {
      call("access", "kong.service.request.set_path", "/new/path"),
    })
    assert.equal("/new/path", e.path)
    assert.equal("/new/path?x=1", e.uri)
  end)

  it("set_raw_query, then the path is kept", function()
    local e = echo({ path = "/svc/p?old=1" }, {
      call("access", "kong.service.request.set_raw_query", "a=1&b=%20x&c"),
    })
    assert.equal("/p", e.path)
    assert.same({ a = "1", b = " x", c = true }, e.query)
  end)

  it("set_query encodes a table", function()
    local e = echo({ path = "/svc?old=1" }, {
      call("access", "kong.service.request.set_query",
           { a = "1", list = { "x", "y" }, flag = true, sp = "a b" }),
    })
    assert.equal("1", e.query.a)
    assert.same({ "x", "y" }, e.query.list)
    assert.equal(true, e.query.flag)
    assert.equal("a b", e.query.sp)
    assert.is_nil(e.query.old)
  end)

  it("clear_query_arg removes one argument (every occurrence)", function()
    local e = echo({ path = "/svc?a=1&b=2&a=3&c" }, {
      call("access", "kong.service.request.clear_query_arg", "a"),
    })
    assert.is_nil(e.query.a)
    assert.equal("2", e.query.b)
    assert.equal(true, e.query.c)
  end)

  it("set_method", function()
    local e = echo({ method = "GET", path = "/svc" }, {
      call("access", "kong.service.request.set_method", "DELETE"),
    })
    assert.equal("DELETE", e.method)
  end)

  it("set_method refuses an unknown method", function()
    local _, _, r = probe.send(client, { path = "/svc" }, {
      call("access", "kong.service.request.set_method", "BREW"),
    })
    assert.is_false(r[1].ok)
    assert.matches("invalid method: BREW", r[1].err, 1, true)
  end)

  it("set_raw_body replaces the body (and its Content-Length)", function()
    local e = echo({ method = "POST", path = "/svc", body = "client body",
                     headers = { ["Content-Type"] = "text/plain" } }, {
      call("access", "kong.service.request.set_raw_body", "kong body!"),
    })
    assert.equal("kong body!", e.body)
    assert.equal(tostring(#"kong body!"), e.headers["content-length"])
  end)

  it("set_raw_body on a request without a body", function()
    local e = echo({ method = "POST", path = "/svc" }, {
      call("access", "kong.service.request.set_raw_body", "added"),
    })
    assert.equal("added", e.body)
  end)

  it("set_body as JSON", function()
    local e = echo({ method = "POST", path = "/svc", body = "{}",
                     headers = { ["Content-Type"] = "application/json" } }, {
      call("access", "kong.service.request.set_body",
           { name = "x", n = 2 }),
    })
    assert.same({ name = "x", n = 2 }, cjson.decode(e.body))
    assert.matches("application/json", e.headers["content-type"], 1, true)
  end)

  it("set_body as a form, from the mimetype argument", function()
    local e = echo({ method = "POST", path = "/svc", body = "x=1",
                     headers = { ["Content-Type"] = "text/plain" } }, {
      call("access", "kong.service.request.set_body",
           { a = "1", b = "two words" },
           "application/x-www-form-urlencoded"),
    })
    assert.equal("form", e.post_data.kind)
    assert.equal("1", e.post_data.params.a)
    assert.equal("two words", e.post_data.params.b)
  end)

  it("set_body as multipart", function()
    local e = echo({ method = "POST", path = "/svc", body = "x",
                     headers = { ["Content-Type"] = "text/plain" } }, {
      call("access", "kong.service.request.set_body", { field = "value" },
           "multipart/form-data"),
    })
    assert.matches("multipart/form-data; boundary=", e.headers["content-type"],
                   1, true)
    assert.matches('name="field"', e.body, 1, true)
    assert.matches("value", e.body, 1, true)
  end)

  it("argument errors use Kong's messages", function()
    local _, _, r = probe.send(client, { path = "/svc" }, {
      call("access", "kong.service.request.set_path", "no-slash"),
      call("access", "kong.service.request.set_header", 1, "x"),
      call("access", "kong.service.request.set_raw_query", 1),
    })
    assert.is_false(r[1].ok)
    assert.is_false(r[2].ok)
    assert.matches("header name must be a string", r[2].err, 1, true)
    assert.is_false(r[3].ok)
  end)


  describe("kong.service", function()
    it("set_timeouts overrides the service's read timeout", function()
      local res = probe.send(client, { path = "/slow/delay/2" }, {
        call("access", "kong.service.set_timeouts", 1000, 1000, 300),
      })
      assert.equal(504, res.status)
    end)

    it("without set_timeouts the slow upstream answers", function()
      local res = probe.send(client, { path = "/slow/delay/0.5" }, {})
      assert.equal(200, res.status)
    end)

    it("set_retries accepts 0..32767 and rejects others", function()
      local res, _, r = probe.send(client, { path = "/svc" }, {
        call("access", "kong.service.set_retries", 0),
        call("access", "kong.service.set_retries", 32768),
        call("access", "kong.service.set_timeouts", 0, 1, 1),
      })
      assert.equal(200, res.status)
      assert.is_true(r[1].ok)
      assert.is_false(r[2].ok)
      assert.matches("retries must be an integer between 0 and 32767",
                     r[2].err, 1, true)
      assert.is_false(r[3].ok)
      assert.matches("connect_timeout must be an integer between 1 and "
                     .. "2147483646", r[3].err, 1, true)
    end)

    it("set_retries(0): a refused connection is not retried", function()
      -- covered by the 502 the gateway answers at once; retries are
      -- observable only with a dead upstream
      local res, _, r = probe.send(client, { path = "/svc" }, {
        call("access", "kong.service.set_retries", 0),
      })
      assert.equal(200, res.status)
      assert.is_true(r[1].ok)
    end)
  end)
end)
