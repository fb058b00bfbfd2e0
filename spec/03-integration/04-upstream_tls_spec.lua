-- HTTPS upstreams through the real gateway. A CA, a server certificate for
-- "localhost" (signed by it) and an unrelated CA are made with the openssl
-- CLI at test time; the nginx mock upstream is switched to that server
-- certificate (SIGHUP) so its echo also reports the SNI it received
-- (vars.ssl_server_name). A private hosts file maps localhost and
-- wrong-name.test to 127.0.0.1.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local psignal = require "posix.signal"


local MSG_502 = "An invalid response was received from the upstream server"


local pki = require "spec.internal.pki"
local sh, q, make_pki = pki.sh, pki.q, pki.make


describe("upstream TLS", function()
  local mock, dir, client

  lazy_setup(function()
    dir = helpers.RUN_DIR .. "/tls-pki"
    make_pki(dir)

    mock = helpers.start_mock_upstream()
    -- switch the mock's https listener to our server certificate
    sh("cp " .. q(dir .. "/server.pem") .. " " .. q(mock.prefix .. "/cert.pem"))
    sh("cp " .. q(dir .. "/server.key") .. " " .. q(mock.prefix .. "/key.pem"))
    assert.equal(0, psignal.kill(mock.pid, psignal.SIGHUP))
    helpers.wait_until(function()
      local c = helpers.http_client({
        host = "127.0.0.1", port = mock.ssl_port, timeout = 2000,
        scheme = "https", ssl_verify = true, cafile = dir .. "/ca.pem",
        server_name = "localhost",
      })
      local res = assert(c:get("/anything"))
      c:close()
      return res.status == 200
    end, 10, 0.1)

    local hosts = dir .. "/hosts"
    helpers.file.write(hosts, "127.0.0.1 localhost wrong-name.test "
                              .. "sni.test\n")

    local port = mock.ssl_port
    local function svc(name, host, extra)
      local s = { name = name, url = "https://" .. host .. ":" .. port,
                  retries = 0,
                  routes = { { name = name, paths = { "/" .. name } } } }
      for k, v in pairs(extra or {}) do
        s[k] = v
      end
      return s
    end

    assert(helpers.start_kong({
      lua_ssl_trusted_certificate = dir .. "/ca.pem",
      dns_hostsfile = hosts,
      declarative_config = {
        _format_version = "3.0",
        services = {
          svc("noverify", "localhost", { tls_verify = false }),
          svc("noverifyip", "127.0.0.1", { tls_verify = false }),
          svc("verify", "localhost", { tls_verify = true }),
          svc("wrongname", "wrong-name.test", { tls_verify = true }),
          svc("wrongnamenoverify", "wrong-name.test",
              { tls_verify = false }),
          { name = "preserve", url = "https://localhost:" .. port,
            tls_verify = false, retries = 0,
            routes = { { name = "preserve", paths = { "/preserve" },
                         preserve_host = true } } },
          svc("plain", "localhost", { protocol = "http",
                                      url = "http://localhost:"
                                            .. mock.port }),
        },
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
    client = helpers.proxy_client(10000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  it("proxies to an https service without verification", function()
    local res = assert(client:get("/noverify/anything", {
      query = "a=1",
    }))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal("https", echo.vars.scheme)
    assert.equal("on", echo.vars.https)
    assert.equal("/anything?a=1", echo.uri)
    assert.equal("localhost:" .. mock.ssl_port, echo.headers.host)
  end)

  it("sends the service host as SNI", function()
    local res = assert(client:get("/noverify/anything"))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal("localhost", echo.vars.ssl_server_name)

    res = assert(client:get("/wrongnamenoverify/anything"))
    echo = cjson.decode(assert.res_status(200, res))
    assert.equal("wrong-name.test", echo.vars.ssl_server_name)
  end)

  it("sends the client's Host as SNI with preserve_host", function()
    local res = assert(client:get("/preserve/anything", {
      headers = { Host = "sni.test:8443" },
    }))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal("sni.test:8443", echo.headers.host)
    assert.equal("sni.test", echo.vars.ssl_server_name)
  end)

  it("sends no SNI for an IP address host", function()
    local res = assert(client:get("/noverifyip/anything"))
    local echo = cjson.decode(assert.res_status(200, res))
    -- nginx reports "" when the client sent no server_name extension
    assert.truthy(echo.vars.ssl_server_name == nil
                  or echo.vars.ssl_server_name == "",
                  "SNI: " .. tostring(echo.vars.ssl_server_name))
  end)

  it("verifies against lua_ssl_trusted_certificate", function()
    local res = assert(client:get("/verify/anything"))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal("https", echo.vars.scheme)
    assert.equal("localhost", echo.vars.ssl_server_name)
  end)

  it("refuses a certificate for another host name (502)", function()
    local res = assert(client:get("/wrongname/anything"))
    local body = assert.res_status(502, res)
    assert.matches(MSG_502, body, 1, true)
    assert.logfile().has.line("wrong-name.test", true, 5)
  end)

  it("reuses TLS upstream connections", function()
    local first
    for _ = 1, 4 do
      local res = assert(client:get("/noverify/anything"))
      local echo = cjson.decode(assert.res_status(200, res))
      first = first or echo.vars.connection
      assert.equal(first, echo.vars.connection)
    end
  end)

  it("streams a large body over TLS", function()
    local SIZE = 8 * 1024 * 1024
    local res = assert(client:get("/verify/bytes/" .. SIZE))
    assert.equal(200, res.status)
    assert.equal(SIZE, assert(res:discard_body()))
    -- and a chunked upload
    local sent = 0
    local piece = string.rep("z", 65536)
    res = assert(client:send({
      method = "POST",
      path = "/verify/anything",
      body = function()
        if sent >= 2 * 1024 * 1024 then
          return nil
        end
        sent = sent + #piece
        return piece
      end,
    }))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal(2 * 1024 * 1024, #echo.body)
  end)

  it("plain http to the same host still works", function()
    local res = assert(client:get("/plain/anything"))
    local echo = cjson.decode(assert.res_status(200, res))
    assert.equal("http", echo.vars.scheme)
  end)
end)


describe("upstream TLS with an untrusted CA", function()
  local mock, dir

  lazy_setup(function()
    dir = helpers.RUN_DIR .. "/tls-pki-2"
    make_pki(dir)
    mock = helpers.start_mock_upstream()
    sh("cp " .. q(dir .. "/server.pem") .. " " .. q(mock.prefix .. "/cert.pem"))
    sh("cp " .. q(dir .. "/server.key") .. " " .. q(mock.prefix .. "/key.pem"))
    assert.equal(0, psignal.kill(mock.pid, psignal.SIGHUP))
    helpers.wait_until(function()
      local c = helpers.http_client({
        host = "127.0.0.1", port = mock.ssl_port, timeout = 2000,
        scheme = "https", ssl_verify = true, cafile = dir .. "/ca.pem",
        server_name = "localhost",
      })
      local res = assert(c:get("/anything"))
      c:close()
      return res.status == 200
    end, 10, 0.1)
    local hosts = dir .. "/hosts"
    helpers.file.write(hosts, "127.0.0.1 localhost\n")

    assert(helpers.start_kong({
      -- trusts only a CA that did not sign the upstream's certificate
      lua_ssl_trusted_certificate = dir .. "/other-ca.pem",
      dns_hostsfile = hosts,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "verify", url = "https://localhost:" .. mock.ssl_port,
            tls_verify = true, retries = 0,
            routes = { { name = "verify", paths = { "/verify" } } } },
          { name = "noverify", url = "https://localhost:" .. mock.ssl_port,
            tls_verify = false, retries = 0,
            routes = { { name = "noverify", paths = { "/noverify" } } } },
          -- tls_verify unset: Kong does not verify by default
          { name = "default", url = "https://localhost:" .. mock.ssl_port,
            retries = 0,
            routes = { { name = "default", paths = { "/default" } } } },
        },
      },
    }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    if mock then
      mock.stop()
    end
  end)

  it("gives 502 with tls_verify = true", function()
    local client = helpers.proxy_client(10000)
    local res = assert(client:get("/verify/anything", {
      headers = { Accept = "application/json" },
    }))
    local body = assert.res_status(502, res)
    assert.equal(MSG_502, cjson.decode(body).message)
    -- and the gateway logs why
    assert.logfile().has.line("localhost", true, 5)
    client:close()
  end)

  it("still proxies with tls_verify = false or unset", function()
    local client = helpers.proxy_client(10000)
    local res = assert(client:get("/noverify/anything"))
    assert.res_status(200, res)
    res = assert(client:get("/default/anything"))
    assert.res_status(200, res)
    client:close()
  end)

  it("does not pool a connection that failed verification", function()
    local client = helpers.proxy_client(10000)
    for _ = 1, 3 do
      local res = assert(client:get("/verify/anything"))
      assert.res_status(502, res)
      res = assert(client:get("/noverify/anything"))
      assert.res_status(200, res)
    end
    client:close()
  end)
end)
