-- The `certificate` phase (Kong's ssl_certificate_by_lua) through real TLS
-- handshakes: global plugins only, once per connection and before rewrite,
-- the PDK functions Kong allows there (kong.client.*, kong.log, kong.ctx) and
-- the phase errors it raises for the others, an error that is logged while
-- the handshake goes on, and an ngx.ctx / kong.ctx that the later request
-- does not see. pre-function's `certificate` array and post-function's carry
-- the code.

local helpers = require "spec.helpers"
local cjson = require "cjson"


local CERT_CODE = [[
  local ip = kong.client.get_ip()
  local port = kong.client.get_port()
  ngx.ctx.from_cert = "yes"
  kong.ctx.shared.from_cert = "yes"
  local ok, err = pcall(kong.request.get_scheme)
  local rok, rerr = pcall(kong.response.exit, 200)
  kong.log.notice("cert-phase ip=", ip, " port=", type(port) == "number"
                  and port > 0 and "ok" or tostring(port),
                  " scheme-ok=", tostring(ok), " scheme-err=[", err, "]",
                  " exit-ok=", tostring(rok))
]]

local ACCESS_CODE = [[
  return kong.response.exit(200, {
    ctx = ngx.ctx.from_cert or "none",
    shared = kong.ctx.shared.from_cert or "none",
    scheme = kong.request.get_scheme(),
    sni = ngx.var.ssl_server_name or "none",
  })
]]


describe("certificate phase", function()
  local ssl_port, plain_port

  lazy_setup(function()
    ssl_port = helpers.get_available_port()
    plain_port = helpers.get_available_port()
    assert(helpers.start_kong({
      proxy_listen = "127.0.0.1:" .. plain_port .. ", 127.0.0.1:"
                     .. ssl_port .. " ssl",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "s", url = "http://127.0.0.1:1",
            routes = {
              { name = "r", paths = { "/r" } },
              { name = "scoped", paths = { "/scoped" },
                plugins = {
                  { name = "pre-function", config = {
                    certificate = { [[kong.log.notice("route-cert-ran")]] },
                    access = { ACCESS_CODE },
                  } },
                } },
            } },
        },
        plugins = {
          { name = "pre-function", config = {
            certificate = { CERT_CODE },
            rewrite = { [[kong.log.notice("rewrite-phase-ran")]] },
            access = { ACCESS_CODE },
          } },
          { name = "post-function", config = {
            certificate = { [[error("boom in certificate")]] },
          } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
  end)

  local function count(pattern)
    local log = helpers.file.read(helpers.error_log()) or ""
    local n = 0
    for _ in log:gmatch(pattern) do
      n = n + 1
    end
    return n
  end

  before_each(function()
    helpers.clean_logfile()
  end)

  it("runs the global handlers once per connection, before rewrite",
     function()
    local client = helpers.proxy_ssl_client(5000, "cert.test", ssl_port)
    local res = assert(client:get("/r"))
    assert.res_status(200, res)
    res = assert(client:get("/r"))
    assert.res_status(200, res)
    assert.equal(1, client.connects)
    client:close()
    assert.logfile().has.line("cert-phase", true, 5)
    assert.equal(1, count("cert%-phase ip="))
    assert.equal(2, count("%] rewrite%-phase%-ran"))
    local log = helpers.file.read(helpers.error_log())
    assert.truthy(log:find("cert-phase ip=", 1, true)
                  < log:find("] rewrite-phase-ran", 1, true))
    client = helpers.proxy_ssl_client(5000, "cert.test", ssl_port)
    assert.res_status(200, assert(client:get("/r")))
    client:close()
    assert.equal(2, count("cert%-phase ip="))
  end)

  it("allows kong.client and kong.log, refuses request-bound functions",
     function()
    local client = helpers.proxy_ssl_client(5000, nil, ssl_port)
    assert.res_status(200, assert(client:get("/r")))
    client:close()
    assert.logfile().has.line(
      "cert-phase ip=127.0.0.1 port=ok scheme-ok=false scheme-err=[",
      true, 5)
    assert.logfile().has.line("function cannot be called in certificate "
                              .. "phase", true)
    assert.logfile().has.line("exit-ok=false", true)
  end)

  it("logs a handler error and completes the handshake", function()
    local client = helpers.proxy_ssl_client(5000, nil, ssl_port)
    local res = assert(client:get("/r"))
    assert.res_status(200, res)
    client:close()
    assert.logfile().has.line("error running post%-function plugin's "
                              .. "certificate handler: .*boom in "
                              .. "certificate", false, 5)
  end)

  it("keeps its ngx.ctx and kong.ctx away from the request", function()
    local client = helpers.proxy_ssl_client(5000, nil, ssl_port)
    local res = assert(client:get("/r"))
    local body = cjson.decode(assert.res_status(200, res))
    client:close()
    assert.equal("none", body.ctx)
    assert.equal("none", body.shared)
    assert.equal("https", body.scheme)
  end)

  it("runs global configurations only", function()
    local client = helpers.proxy_ssl_client(5000, nil, ssl_port)
    local res = assert(client:get("/scoped"))
    assert.res_status(200, res)
    client:close()
    assert.logfile().has.line("cert-phase", true, 5)
    assert.logfile().has.no.line("route-cert-ran", true)
  end)

  it("does not run on plain connections", function()
    local client = helpers.proxy_client(5000, plain_port)
    local res = assert(client:get("/r"))
    local body = cjson.decode(assert.res_status(200, res))
    client:close()
    assert.equal("http", body.scheme)
    assert.logfile().has.line("rewrite-phase-ran", true, 5)
    assert.equal(0, count("cert%-phase"))
  end)

  it("exposes the SNI as ngx.var.ssl_server_name", function()
    local client = helpers.proxy_ssl_client(5000, "sni.test", ssl_port)
    local body = cjson.decode(assert.res_status(200, assert(client:get("/r"))))
    client:close()
    assert.equal("sni.test", body.sni)
    client = helpers.proxy_client(5000, plain_port)
    body = cjson.decode(assert.res_status(200, assert(client:get("/r"))))
    client:close()
    assert.equal("none", body.sni)
  end)
end)
