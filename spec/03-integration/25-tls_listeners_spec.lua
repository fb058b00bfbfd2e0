-- TLS listeners (the `ssl` listen flag) through the real gateway: the
-- generated default certificate (and its reuse on restart), configured
-- ssl_cert lists (RSA + ECDSA, per-SNI by SAN), start-up errors naming the
-- property and file, routes' protocols and snis, X-Forwarded-Proto, ALPN
-- (http/1.1 only), ssl_cipher_suite / ssl_protocols, bad handshakes and the
-- handshake timeout. Clients: luasec (spec/internal/http_client.lua) and the
-- openssl CLI; certificates made at test time (spec/internal/pki.lua).

local helpers = require "spec.helpers"
local cjson = require "cjson"
local socket = require "socket"
local pki = require "spec.internal.pki"


local sh, q = pki.sh, pki.q


-- Runs `openssl s_client` against 127.0.0.1:port with extra arguments;
-- returns its whole output (the handshake may fail: no assertion here).
local function s_client(port, args)
  local p = io.popen("echo | timeout 10 openssl s_client -connect 127.0.0.1:"
                     .. port .. " " .. (args or "") .. " 2>&1")
  local out = p:read("*a")
  p:close()
  return out
end


-- The SHA-256 fingerprint of the certificate the listener serves.
local function served_fingerprint(port, args)
  local out = sh("echo | timeout 10 openssl s_client -connect 127.0.0.1:"
                 .. port .. " " .. (args or "") .. " 2>/dev/null"
                 .. " | openssl x509 -noout -fingerprint -sha256")
  return out:match("Fingerprint=(%S+)")
end


local function file_fingerprint(path)
  return sh("openssl x509 -noout -fingerprint -sha256 -in " .. q(path))
         :match("Fingerprint=(%S+)")
end


-- A certificate for `name` signed by the pki CA in dir; ec: a P-256 key.
local function make_cert(dir, base, name, ec)
  local d = function(f) return q(dir .. "/" .. f) end
  local newkey = ec and "-newkey ec -pkeyopt ec_paramgen_curve:P-256"
                 or "-newkey rsa:2048"
  sh("openssl req -new " .. newkey .. " -nodes -subj /CN=" .. name
     .. " -keyout " .. d(base .. ".key") .. " -out " .. d(base .. ".csr"))
  helpers.file.write(dir .. "/" .. base .. ".cnf",
                     "subjectAltName=DNS:" .. name .. "\n")
  sh("openssl x509 -req -in " .. d(base .. ".csr") .. " -CA " .. d("ca.pem")
     .. " -CAkey " .. d("ca.key") .. " -CAcreateserial -days 2 -extfile "
     .. d(base .. ".cnf") .. " -out " .. d(base .. ".pem"))
end


local function listens(ssl_port, plain_port)
  return "127.0.0.1:" .. plain_port .. ", 127.0.0.1:" .. ssl_port .. " ssl"
end


describe("TLS listeners", function()

  describe("with the default certificate", function()
    local mock, ssl_port, plain_port

    lazy_setup(function()
      mock = helpers.start_mock_upstream()
      ssl_port = helpers.get_available_port()
      plain_port = helpers.get_available_port()
      assert(helpers.start_kong({
        proxy_listen = listens(ssl_port, plain_port),
        client_header_timeout = "1s",
        log_level = "info",
        declarative_config = {
          _format_version = "3.0",
          services = {
            { name = "echo", url = mock.url,
              routes = {
                { name = "any", paths = { "/any" } },
                { name = "secure", paths = { "/secure" },
                  protocols = { "https" } },
              } },
            { name = "sni-a", url = mock.url .. "/a",
              routes = { { name = "sni-a", paths = { "/sni" },
                           snis = { "a.test" } } } },
            { name = "sni-b", url = mock.url .. "/b",
              routes = { { name = "sni-b", paths = { "/sni" },
                           snis = { "b.test" } } } },
            { name = "sni-none", url = mock.url .. "/none",
              routes = { { name = "sni-none", paths = { "/sni" } } } },
          },
        },
      }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
      mock.stop()
    end)

    it("generates a self-signed RSA and ECDSA pair under <prefix>/ssl",
       function()
      local dir = helpers.test_conf.prefix .. "/ssl/"
      for _, f in ipairs({ "sluice-default.crt", "sluice-default.key",
                           "sluice-default-ecdsa.crt",
                           "sluice-default-ecdsa.key" }) do
        assert.truthy(helpers.file.read(dir .. f), dir .. f)
      end
      local mode = sh("stat -c %a " .. q(dir .. "sluice-default.key"))
      assert.equal("600", mode:match("%d+"))
      -- RSA clients get the RSA one, ECDSA-only clients the ECDSA one
      assert.equal(file_fingerprint(dir .. "sluice-default.crt"),
                   served_fingerprint(ssl_port, "-sigalgs RSA-PSS+SHA256"))
      assert.equal(file_fingerprint(dir .. "sluice-default-ecdsa.crt"),
                   served_fingerprint(ssl_port,
                                      "-sigalgs ECDSA+SHA256 -tls1_2"))
      local text = sh("openssl x509 -noout -text -in "
                      .. q(dir .. "sluice-default.crt"))
      assert.matches("CN%s*=%s*localhost", text)
      assert.matches("DNS:localhost", text, 1, true)
    end)

    it("proxies over TLS with X-Forwarded-Proto https", function()
      local client = helpers.proxy_ssl_client(5000)
      local res = assert(client:get("/any/x"))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("https", echo.headers["x-forwarded-proto"])
      assert.equal(tostring(ssl_port), echo.headers["x-forwarded-port"])
      -- keep-alive over the same TLS connection
      res = assert(client:get("/any/y"))
      assert.res_status(200, res)
      assert.equal(1, client.connects)
      client:close()
      -- the plain listener still says http
      client = helpers.proxy_client(5000)
      res = assert(client:get("/any/x"))
      echo = cjson.decode(assert.res_status(200, res))
      assert.equal("http", echo.headers["x-forwarded-proto"])
      client:close()
    end)

    it("answers 426 for an https-only route on plain, serves it on TLS",
       function()
      local client = helpers.proxy_client(5000)
      local res = assert(client:get("/secure"))
      local body = assert.res_status(426, res)
      assert.matches("Please use HTTPS protocol", body, 1, true)
      client:close()
      client = helpers.proxy_ssl_client(5000)
      res = assert(client:get("/secure"))
      assert.res_status(200, res)
      client:close()
    end)

    it("routes on the TLS SNI (snis), not restricting plain http", function()
      local cases = {
        { "a.test", "/a" }, { "b.test", "/b" }, { "c.test", "/none" },
      }
      for _, case in ipairs(cases) do
        local client = helpers.proxy_ssl_client(5000, case[1])
        local res = assert(client:get("/sni"))
        local echo = cjson.decode(assert.res_status(200, res))
        assert.equal(case[2], echo.uri, case[1])
        client:close()
      end
      -- a Host header does not stand in for the SNI
      local client = helpers.proxy_ssl_client(5000, "c.test")
      local res = assert(client:get("/sni", { headers = { Host = "a.test" } }))
      assert.equal("/none", cjson.decode(assert.res_status(200, res)).uri)
      client:close()
      -- plain http: snis do not restrict (Kong: net.protocol ~= "https" or
      -- tls.sni matches), so a route with snis still wins on priority
      client = helpers.proxy_client(5000)
      res = assert(client:get("/sni"))
      assert.not_equal("/none", cjson.decode(assert.res_status(200, res)).uri)
      client:close()
    end)

    it("negotiates ALPN http/1.1 only", function()
      local out = s_client(ssl_port, "-alpn h2,http/1.1")
      assert.matches("ALPN protocol: http/1.1", out, 1, true)
      out = s_client(ssl_port, "-alpn h2")
      assert.matches("No ALPN negotiated", out, 1, true)
    end)

    it("offers TLSv1.2 and TLSv1.3 by default, not TLSv1.1", function()
      assert.matches("New, TLSv1.3,", s_client(ssl_port, "-tls1_3"), 1, true)
      assert.matches("New, TLSv1.2,", s_client(ssl_port, "-tls1_2"), 1, true)
      local out = s_client(ssl_port, "-tls1_1 -cipher DEFAULT@SECLEVEL=0")
      assert.not_matches("New, TLSv1.1", out, 1, true)
      assert.not_matches("BEGIN CERTIFICATE", out, 1, true)
    end)

    it("resumes TLS sessions", function()
      local dir = helpers.RUN_DIR .. "/tls-sess"
      sh("mkdir -p " .. q(dir))
      local f = dir .. "/sess.pem"
      s_client(ssl_port, "-tls1_2 -sess_out " .. q(f))
      local out = s_client(ssl_port, "-tls1_2 -sess_in " .. q(f))
      assert.matches("Reused, TLSv1.2", out, 1, true)
    end)

    it("logs a bad handshake at info and keeps serving", function()
      local pid_before = helpers.get_pid()
      local s = assert(socket.connect("127.0.0.1", ssl_port))
      s:send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
      s:settimeout(5)
      s:receive("*a")
      s:close()
      assert.logfile().has.line("%[info%].*SSL handshake failed: .*, "
                                .. "client: 127.0.0.1", false, 5)
      local client = helpers.proxy_ssl_client(5000)
      assert.res_status(200, assert(client:get("/any")))
      client:close()
      assert.equal(pid_before, helpers.get_pid())
    end)

    it("closes a connection that does not finish the handshake in "
       .. "client_header_timeout", function()
      local s = assert(socket.connect("127.0.0.1", ssl_port))
      s:settimeout(5)
      local t0 = socket.gettime()
      local data, err = s:receive("*a")
      local elapsed = socket.gettime() - t0
      s:close()
      assert.equal("", data or "")
      assert.is_true(err == nil or err == "closed", tostring(err))
      assert.is_true(elapsed >= 0.8 and elapsed < 4, "closed after "
                     .. elapsed .. "s")
      assert.logfile().has.line("client timed out during the SSL "
                                .. "handshake", true, 5)
    end)

    it("reuses the default certificate on restart", function()
      local crt = helpers.test_conf.prefix .. "/ssl/sluice-default.crt"
      local before = file_fingerprint(crt)
      assert(helpers.restart_kong({
        proxy_listen = listens(ssl_port, plain_port),
        declarative_config = { _format_version = "3.0" },
      }, { preserve_prefix = true }))
      assert.equal(before, file_fingerprint(crt))
      assert.equal(before, served_fingerprint(ssl_port,
                                              "-sigalgs RSA-PSS+SHA256"))
    end)
  end)


  describe("with configured certificates", function()
    local dir, ssl_port, plain_port, admin_ssl

    lazy_setup(function()
      dir = helpers.RUN_DIR .. "/tls-listen-pki"
      pki.make(dir)
      make_cert(dir, "other", "other.test")
      make_cert(dir, "ec", "localhost", true)
      ssl_port = helpers.get_available_port()
      plain_port = helpers.get_available_port()
      admin_ssl = helpers.get_available_port()
      assert(helpers.start_kong({
        proxy_listen = listens(ssl_port, plain_port),
        admin_listen = "127.0.0.1:" .. helpers.get_available_port()
                       .. ", 127.0.0.1:" .. admin_ssl .. " ssl",
        ssl_cert = dir .. "/server.pem, " .. dir .. "/ec.pem, "
                   .. dir .. "/other.pem",
        ssl_cert_key = dir .. "/server.key, " .. dir .. "/ec.key, "
                       .. dir .. "/other.key",
        ssl_cipher_suite = "custom",
        ssl_protocols = "TLSv1.2",
        declarative_config = { _format_version = "3.0" },
      }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("serves them, verifiable against their CA, chosen by SNI", function()
      local function verified(sni)
        local client = assert(helpers.http_client({
          host = "127.0.0.1", port = ssl_port, scheme = "https",
          ssl_verify = true, cafile = dir .. "/ca.pem", server_name = sni,
          timeout = 5000,
        }))
        client:close()
        return true
      end
      assert.is_true(verified("localhost"))
      assert.equal(file_fingerprint(dir .. "/server.pem"),
                   served_fingerprint(ssl_port, "-servername localhost "
                                      .. "-sigalgs RSA-PSS+SHA256"))
      assert.equal(file_fingerprint(dir .. "/ec.pem"),
                   served_fingerprint(ssl_port, "-servername localhost "
                                      .. "-sigalgs ECDSA+SHA256"))
      -- a name only the third certificate covers
      assert.equal(file_fingerprint(dir .. "/other.pem"),
                   served_fingerprint(ssl_port, "-servername other.test"))
      -- no SNI, or an unknown one: the defaults
      assert.equal(file_fingerprint(dir .. "/server.pem"),
                   served_fingerprint(ssl_port, "-sigalgs RSA-PSS+SHA256"))
      assert.equal(file_fingerprint(dir .. "/server.pem"),
                   served_fingerprint(ssl_port, "-servername nope.test "
                                      .. "-sigalgs RSA-PSS+SHA256"))
      -- no default pair was generated for the proxy
      assert.is_nil(helpers.file.read(helpers.test_conf.prefix
                                      .. "/ssl/sluice-default.crt"))
    end)

    it("applies ssl_protocols with ssl_cipher_suite = custom", function()
      assert.matches("New, TLSv1.2,", s_client(ssl_port, "-tls1_2"), 1, true)
      local out = s_client(ssl_port, "-tls1_3")
      assert.not_matches("New, TLSv1.3", out, 1, true)
      assert.not_matches("BEGIN CERTIFICATE", out, 1, true)
    end)

    it("serves admin_listen over TLS with its own default certificate",
       function()
      local crt = helpers.test_conf.prefix .. "/ssl/admin-sluice-default.crt"
      assert.truthy(helpers.file.read(crt))
      assert.equal(file_fingerprint(crt),
                   served_fingerprint(admin_ssl, "-sigalgs RSA-PSS+SHA256"))
      local client = assert(helpers.http_client({
        host = "127.0.0.1", port = admin_ssl, scheme = "https",
        timeout = 5000,
      }))
      local res = assert(client:get("/"))
      assert.is_true(res.status < 500)
      client:close()
    end)
  end)


  describe("start-up errors", function()
    local dir

    lazy_setup(function()
      dir = helpers.RUN_DIR .. "/tls-listen-bad"
      pki.make(dir)
      helpers.file.write(dir .. "/garbage.pem", "not a certificate\n")
    end)

    after_each(function()
      helpers.stop_kong()
    end)

    local function start_fails(conf)
      conf.proxy_listen = "127.0.0.1:" .. helpers.get_available_port()
                          .. " ssl"
      conf.declarative_config = { _format_version = "3.0" }
      local ok, err = helpers.start_kong(conf, { timeout = 5 })
      assert.is_nil(ok)
      return tostring(err)
    end

    local cases = {
      { "an unreadable ssl_cert",
        function(d) return { ssl_cert = d .. "/missing.pem",
                             ssl_cert_key = d .. "/server.key" } end,
        "ssl_cert: cannot read '%s/missing.pem': No such file" },
      { "an ssl_cert that is no certificate",
        function(d) return { ssl_cert = d .. "/garbage.pem",
                             ssl_cert_key = d .. "/server.key" } end,
        "ssl_cert: '%s/garbage.pem' holds no PEM certificate" },
      { "a key that does not match",
        function(d) return { ssl_cert = d .. "/server.pem",
                             ssl_cert_key = d .. "/ca.key" } end,
        "ssl_cert_key: '%s/ca.key' does not match the certificate of "
        .. "ssl_cert '%s/server.pem'" },
      { "ssl_cert without ssl_cert_key",
        function(d) return { ssl_cert = d .. "/server.pem" } end,
        "ssl_cert_key must be set together with ssl_cert" },
      { "lists of different lengths",
        function(d) return { ssl_cert = d .. "/server.pem, "
                                        .. d .. "/ca.pem",
                             ssl_cert_key = d .. "/server.key" } end,
        "ssl_cert lists 2 file(s) and ssl_cert_key 1" },
      { "an unknown protocol",
        function() return { ssl_cipher_suite = "custom",
                            ssl_protocols = "TLSv1.2 SSLv3" } end,
        "ssl_protocols: unknown protocol 'SSLv3'" },
      { "an unusable cipher list",
        function() return { ssl_cipher_suite = "custom",
                            ssl_ciphers = "NOT-A-CIPHER" } end,
        "ssl_ciphers: no usable cipher in 'NOT-A-CIPHER'" },
    }
    it("sluice reload refuses a bad certificate and keeps serving", function()
      local port = helpers.get_available_port()
      assert(helpers.start_kong({
        proxy_listen = "127.0.0.1:" .. port .. " ssl",
        declarative_config = { _format_version = "3.0" },
      }))
      local ok, err = helpers.reload_kong({
        ssl_cert = dir .. "/garbage.pem",
        ssl_cert_key = dir .. "/server.key",
      })
      assert.is_nil(ok)
      assert.matches("holds no PEM certificate", err, 1, true)
      assert.matches("The running configuration was kept", err, 1, true)
      -- still serving TLS on the old certificate
      local client = helpers.proxy_ssl_client(5000, nil, port)
      assert.res_status(404, assert(client:get("/")))
      client:close()
    end)

    for _, case in ipairs(cases) do
      it("refuses " .. case[1], function()
        local err = start_fails(case[2](dir))
        local want = case[3]:gsub("%%s", dir)
        assert.matches(want, err, 1, true)
      end)
    end
  end)
end)
