-- The ngx API as Kong plugins use it (the `ngx` global over Sluice's
-- runtime), through real requests: ngx.var, ngx.req, ngx.resp, ngx.status,
-- ngx.say/print/exit, ngx.log, ngx.re, digests and encodings, URI args,
-- ngx.null, ngx.shared across two workers, ngx.sleep, ngx.worker.

local helpers = require "spec.helpers"
local cjson = require "cjson.safe"
local probe = require "spec.fixtures.custom_plugins.kong.plugins.pdk-probe.client"


local call = probe.call
local get = probe.get
local method = probe.method
local value = probe.value


local function hex(v)
  if type(v) == "table" and v.hex then
    return v.hex
  end
  return (tostring(v):gsub(".", function(c)
    return string.format("%02x", c:byte())
  end))
end


local function config(mock)
  return {
    _format_version = "3.0",
    services = {
      { name = "ngx", url = mock.url,
        routes = { { name = "ngx", paths = { "/ngx" } } } },
    },
    plugins = { { name = "pdk-probe" } },
  }
end


describe("ngx API", function()
  local mock, client

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled,pdk-probe",
      lua_package_path = probe.PACKAGE_PATH,
      worker_processes = 2,
      declarative_config = config(mock),
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


  local function results(req, calls)
    local res, body, r = probe.send(client, req, calls)
    return r, res, body
  end


  it("ngx.var", function()
    local r = results({ path = "/ngx/p?a=1&b=two", headers = {
                          Host = "Var.Test", ["X-Foo"] = "bar",
                          Cookie = "c1=v1; c2=v2" } }, {
      get("access", "ngx.var.request_uri"),
      get("access", "ngx.var.uri"),
      get("access", "ngx.var.args"),
      get("access", "ngx.var.host"),
      get("access", "ngx.var.request_method"),
      get("access", "ngx.var.http_x_foo"),
      get("access", "ngx.var.arg_b"),
      get("access", "ngx.var.cookie_c2"),
      get("access", "ngx.var.scheme"),
      get("access", "ngx.var.server_port"),
      get("access", "ngx.var.remote_addr"),
      get("access", "ngx.var.is_args"),
      get("log", "ngx.var.status"),
    })
    assert.equal("/ngx/p?a=1&b=two", value(r[1]))
    assert.equal("/ngx/p", value(r[2]))
    assert.equal("a=1&b=two", value(r[3]))
    assert.equal("var.test", value(r[4]))
    assert.equal("GET", value(r[5]))
    assert.equal("bar", value(r[6]))
    assert.equal("two", value(r[7]))
    assert.equal("v2", value(r[8]))
    assert.equal("http", value(r[9]))
    assert.equal(tostring(helpers.get_proxy_port()), value(r[10]))
    assert.equal("127.0.0.1", value(r[11]))
    assert.equal("?", value(r[12]))
    assert.equal("200", value(r[13]))
  end)

  it("ngx.req getters", function()
    local r = results({ method = "POST", path = "/ngx?x=1&x=2",
                        body = "the body",
                        headers = { ["Content-Type"] = "text/plain",
                                    ["X-H"] = "h" } }, {
      call("access", "ngx.req.get_headers"),
      call("access", "ngx.req.get_method"),
      call("access", "ngx.req.get_uri_args"),
      call("access", "ngx.req.http_version"),
      call("access", "ngx.req.start_time"),
      call("access", "ngx.req.read_body"),
      call("access", "ngx.req.get_body_data"),
    })
    assert.equal("h", value(r[1])["x-h"])
    assert.equal("POST", value(r[2]))
    assert.same({ x = { "1", "2" } }, value(r[3]))
    assert.equal(1.1, value(r[4]))
    local t = value(r[5])
    assert.is_true(math.abs(t - os.time()) < 60)
    assert.is_true(r[6].ok)
    assert.equal("the body", value(r[7]))
  end)

  it("ngx.req setters change the upstream request", function()
    local r, res, body = results({ path = "/ngx/orig?old=1" }, {
      call("access", "ngx.req.set_header", "X-Set", "s"),
      call("access", "ngx.req.set_uri", "/rewritten"),
      call("access", "ngx.req.set_uri_args", { q = "1" }),
      call("access", "ngx.req.set_method", 8), -- ngx.HTTP_POST
    })
    assert.equal(200, res.status)
    for i = 1, 4 do
      assert(r[i].ok, tostring(r[i].err))
    end
    local e = cjson.decode(body)
    assert.equal("s", e.headers["x-set"])
    assert.equal("/rewritten", e.path)
    assert.same({ q = "1" }, e.query)
    assert.equal("POST", e.method)
  end)

  it("ngx.resp.get_headers and ngx.status in header_filter and log", function()
    local r, res = results({ path = "/ngx/status/201" }, {
      call("header_filter", "ngx.resp.get_headers"),
      get("header_filter", "ngx.status"),
      get("log", "ngx.status"),
    })
    assert.equal(201, res.status)
    assert.equal("mock_upstream", value(r[1])["x-powered-by"])
    assert.equal(201, value(r[2]))
    assert.equal(201, value(r[3]))
  end)

  it("ngx.say / ngx.print / ngx.exit answer the request", function()
    local _, res, body = results({ path = "/ngx" }, {
      call("access", "ngx.print", "a", { "b", { "c" } }, 1),
      call("access", "ngx.say", " said"),
      call("access", "ngx.exit", 200),
    })
    assert.equal(200, res.status)
    assert.equal("abc1 said\n", body)
    assert.is_nil(res.headers["X-Powered-By"])
  end)

  it("ngx.exit with an error status renders Kong's error", function()
    local _, res, body = results({ path = "/ngx" }, {
      call("access", "ngx.exit", 403),
    })
    assert.equal(403, res.status)
    assert.equal("Forbidden", cjson.decode(body).message)
  end)

  it("ngx.log levels go to the error log with [lua]", function()
    local id = probe.new_id()
    results({ path = "/ngx" }, {
      call("access", "ngx.log", 4, "ngx-err ", id),
      call("access", "ngx.log", 5, "ngx-warn ", id, " ", 42),
      call("access", "ngx.log", 8, "ngx-debug ", id),
    })
    local eid = id:gsub("%-", "%%-")
    assert.logfile().has.line("%[error%] .*%[lua%].*ngx%-err " .. eid, false,
                              5)
    assert.logfile().has.line("%[warn%] .*%[lua%].*ngx%-warn " .. eid
                              .. " 42", false, 5)
    assert.logfile().has.line("%[debug%] .*%[lua%].*ngx%-debug " .. eid,
                              false, 5)
  end)

  it("ngx.re.match / find / gsub / sub", function()
    local r = results({ path = "/ngx" }, {
      call("access", "ngx.re.match", "user-123-x", [[(\w+)-(?<num>\d+)]],
           "jo"),
      call("access", "ngx.re.find", "hello world", "wor", "jo"),
      call("access", "ngx.re.gsub", "a1b22c333", [[\d+]], "#", "jo"),
      call("access", "ngx.re.sub", "a1b22", [[\d+]], "[$0]", "jo"),
      call("access", "ngx.re.match", "ABC", "abc", "i"),
      call("access", "ngx.re.match", "abc", "x"),
    })
    local m = value(r[1])
    assert.equal("user-123", m["0"] or m[0])
    assert.equal("user", m["1"] or m[1])
    assert.equal("123", m.num)
    assert.equal(7, value(r[2], 1))
    assert.equal(9, value(r[2], 2))
    assert.equal("a#b#c#", value(r[3], 1))
    assert.equal(3, value(r[3], 2))
    assert.equal("a[1]b22", value(r[4], 1))
    assert.equal("ABC", value(r[5])["0"] or value(r[5])[0])
    assert.is_nil(value(r[6]))
  end)

  it("digests and encodings", function()
    local msg = "The quick brown fox jumps over the lazy dog"
    local r = results({ path = "/ngx" }, {
      call("access", "ngx.md5", "abc"),
      call("access", "ngx.md5_bin", "abc"),
      call("access", "ngx.sha1_bin", "abc"),
      call("access", "ngx.hmac_sha1", "key", msg),
      call("access", "ngx.encode_base64", "hello?>"),
      call("access", "ngx.decode_base64", "aGVsbG8/Pg=="),
      call("access", "ngx.crc32_short", "hello"),
      call("access", "ngx.crc32_long", "hello"),
      call("access", "ngx.decode_base64", "not base64!"),
    })
    assert.equal("900150983cd24fb0d6963f7d28e17f72", value(r[1]))
    assert.equal("900150983cd24fb0d6963f7d28e17f72", hex(value(r[2])))
    assert.equal("a9993e364706816aba3e25717850c26c9cd0d89d", hex(value(r[3])))
    assert.equal("de7c9b85b8b78aa6bc8a7a36f70a90701c9db4d9", hex(value(r[4])))
    assert.equal("aGVsbG8/Pg==", value(r[5]))
    assert.equal("hello?>", value(r[6]))
    assert.equal(907060870, value(r[7]))
    assert.equal(907060870, value(r[8]))
    assert.is_nil(value(r[9]))
  end)

  it("escape_uri / unescape_uri / encode_args / decode_args", function()
    local r = results({ path = "/ngx" }, {
      call("access", "ngx.escape_uri", "a b/c?d=é"),
      call("access", "ngx.unescape_uri", "a%20b%2Fc+d"),
      call("access", "ngx.encode_args", { a = "1 2" }),
      call("access", "ngx.encode_args", { flag = true, list = { "x", "y" } }),
      call("access", "ngx.decode_args", "a=1&b&c=2&c=3&d=%20x"),
    })
    assert.equal("a%20b%2Fc%3Fd%3D%C3%A9", value(r[1]))
    -- OpenResty decodes "+" as a space (its docs: "b%20r56+7" -> "b r56 7")
    assert.equal("a b/c d", value(r[2]))
    assert.equal("a=1%202", value(r[3]))
    local enc = value(r[4])
    assert.matches("flag", enc, 1, true)
    assert.matches("list=x", enc, 1, true)
    assert.matches("list=y", enc, 1, true)
    assert.same({ a = "1", b = true, c = { "2", "3" }, d = " x" }, value(r[5]))
  end)

  it("ngx.null is a light userdata, cjson's null", function()
    local r = results({ path = "/ngx" }, {
      get("access", "ngx.null"),
      call("access", "type", "@nil"),
    })
    assert.equal("<userdata>", value(r[1]))
  end)

  it("ngx.sleep in access yields, then the request goes on", function()
    local t0 = require("socket").gettime()
    local r, res = results({ path = "/ngx" }, {
      call("access", "ngx.sleep", 0.3),
    })
    local dt = require("socket").gettime() - t0
    assert.equal(200, res.status)
    assert.is_true(r[1].ok, tostring(r[1].err))
    -- the gateway sleeps on the monotonic clock, dt is wall-clock time:
    -- allow for a wall clock that is being slewed
    assert.is_true(dt >= 0.27, "took " .. dt)
  end)

  it("ngx.sleep does not block the worker", function()
    -- a sleeping request on one connection; others keep being served
    local slow = helpers.proxy_client()
    local id = probe.new_id()
    local body = cjson.encode({ call("access", "ngx.sleep", 1) })
    assert(slow:send_raw("GET /ngx HTTP/1.1\r\nHost: x\r\nX-Probe: "
                         .. body .. "\r\nX-Probe-Id: " .. id .. "\r\n\r\n"))
    local t0 = require("socket").gettime()
    for _ = 1, 5 do
      local c = helpers.proxy_client()
      assert.res_status(200, c:get("/ngx"))
      c:close()
    end
    assert.is_true(require("socket").gettime() - t0 < 0.9)
    local res = slow:read_response({ method = "GET" })
    assert.equal(200, res.status)
    slow:close()
  end)

  it("ngx.worker.id / pid / count", function()
    local r = results({ path = "/ngx" }, {
      call("access", "ngx.worker.id"),
      call("access", "ngx.worker.pid"),
      call("access", "ngx.worker.count"),
      call("access", "ngx.get_phase"),
      call("log", "ngx.get_phase"),
    })
    local id = value(r[1])
    assert.is_true(id == 0 or id == 1)
    assert.is_number(value(r[2]))
    assert.is_true(value(r[2]) > 1)
    assert.equal(2, value(r[3]))
    assert.equal("access", value(r[4]))
    assert.equal("log", value(r[5]))
  end)

  it("ngx.shared.kong is shared by both workers", function()
    local key = "k-" .. probe.new_id()
    local c = helpers.proxy_client()
    local _, _, r = probe.send(c, { path = "/ngx" }, {
      method("access", "ngx.shared.kong", "set", key, "v1"),
      method("access", "ngx.shared.kong", "incr", key .. "-n", 1, 0),
      call("access", "ngx.worker.id"),
    })
    c:close()
    assert.is_true(value(r[1]))
    assert.equal(1, value(r[2]))
    local writer = value(r[3])

    local seen = {}
    local n = 1
    for _ = 1, 200 do
      c = helpers.proxy_client()
      local _, _, rr = probe.send(c, { path = "/ngx" }, {
        method("access", "ngx.shared.kong", "get", key),
        method("access", "ngx.shared.kong", "incr", key .. "-n", 1),
        call("access", "ngx.worker.id"),
      })
      c:close()
      assert.equal("v1", value(rr[1]))
      n = n + 1
      assert.equal(n, value(rr[2]))
      seen[value(rr[3])] = true
      if seen[0] and seen[1] then
        break
      end
    end
    assert.is_true(seen[0] and seen[1] or false,
                   "both workers should have answered (writer was "
                   .. tostring(writer) .. ")")
  end)
end)
