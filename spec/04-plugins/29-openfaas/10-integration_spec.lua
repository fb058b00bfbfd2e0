-- openfaas through a real gateway against the OpenFaaS gateway mock of
-- spec/fixtures/mock_faas (plain and TLS), asserting on what the client
-- gets and on what the mock recorded: synchronous calls with the method,
-- path suffix, query, headers and body; namespaces; async calls with the
-- 202/X-Call-Id answer and the X-Callback-Url callback (received by a
-- second, echo mock); basic and bearer credentials; https_verify with the
-- right and a wrong CA; a gateway that is down and one that is slow.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local mf = require "spec.internal.mock_faas"
local fh = require "spec.internal.faas_plugins"


local FAAS_HOST = "faas.test"
local VIA_SUFFIX = "1.1 kong/" .. require("kong.meta").version
local BASIC = "admin:s3cr3t"
local BEARER = "bearer-token-1"


local it_io = fh.it_io()
local b64 = fh.b64


describe("Plugin: openfaas (access)", function()
  local plain, tls, rogue, basic, bearer, sink, truncated
  local down_port

  lazy_setup(function()
    local cert, key = fh.server_cert({ FAAS_HOST })
    local rcert, rkey = fh.foreign_cert({ FAAS_HOST })
    plain = assert(mf.start({ platform = "openfaas",
                              namespaces = { "openfaas-fn", "staging" } }))
    tls = assert(mf.start({ platform = "openfaas", tls = true, cert = cert,
                            key = key }))
    rogue = assert(mf.start({ platform = "openfaas", tls = true,
                              cert = rcert, key = rkey }))
    basic = assert(mf.start({ platform = "openfaas", basic_auth = BASIC }))
    bearer = assert(mf.start({ platform = "openfaas", bearer = BEARER }))
    sink = assert(mf.start({ platform = "echo" }))
    down_port = helpers.get_available_port()
    -- announces 100 bytes, sends 5, closes
    truncated = helpers.tcp_server(nil, {
      n = 1, timeout = 30,
      responses = { "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort" },
    })

    local function of(name, config, extra)
      config.host = config.host or "127.0.0.1"
      config.port = config.port or plain.port
      config.function_name = config.function_name or "echo"
      return fh.route(name, config, "openfaas", extra)
    end

    assert(helpers.start_kong({
      plugins = "bundled,openfaas",
      dns_hostsfile = fh.hosts_file({ FAAS_HOST }),
      lua_ssl_trusted_certificate = tls.ca_cert,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "unused", url = "http://127.0.0.1:1", routes = {
            of("sync", {}, { paths = { "/faas" } }),
            of("regex", {}, { paths = { "~/v\\d+/fn" } }),
            of("fixed", { forward_path = false, forward_query = false },
               { paths = { "/faas" } }),
            of("noheaders", { forward_headers = false }),
            of("ns", { namespace = "staging" }),
            of("missing", { function_name = "nope" }),
            of("async", { async = true,
                          callback_url = sink.url .. "/cb?from=faas" }),
            of("async-nocb", { async = true }),
            of("basic", { port = basic.port,
                          basic_auth = { username = "admin",
                                         password = "s3cr3t" } }),
            of("bearer", { port = bearer.port, bearer_token = BEARER }),
            of("noauth", { port = basic.port }),
            of("tls", { host = FAAS_HOST, port = tls.port, https = true,
                        https_verify = true }),
            of("rogue", { host = FAAS_HOST, port = rogue.port, https = true,
                          https_verify = true }),
            of("rogue-noverify", { host = FAAS_HOST, port = rogue.port,
                                   https = true }),
            of("slow", { function_name = "slow", timeout = 500 }),
            of("down", { port = down_port }),
            of("truncated", { port = truncated.port }),
          } },
        },
      },
    }))
  end)

  local gw = fh.gateway({
    plugin = "openfaas",
    stop = function()
      return { plain, tls, rogue, basic, bearer, sink, truncated }
    end,
    clear = function() return plain end,
  })
  local call = gw.call


  describe("a synchronous call", function()
    it_io("forwards method, path suffix, query, headers and body", function()
      local res = call("sync", {
        method = "PUT",
        path = "/faas/items/42?x=1&y=a%20b",
        headers = { ["Content-Type"] = "text/plain",
                    ["X-Custom"] = "yes",
                    ["X-Forwarded-For"] = "192.0.2.1",
                    ["X-Forwarded-Host"] = "spoofed.test" },
        body = "hello function",
      })
      assert.response(res).has.status(200)
      local doc = fh.json(res)
      -- the function's answer is relayed as it is
      assert.equal("PUT", doc.method)
      assert.equal("/function/echo/items/42", doc.full_path)
      assert.equal("/items/42", doc.path)
      assert.equal("x=1&y=a%20b", doc.query)
      assert.equal("hello function", doc.body)

      local r = plain.last_request()
      assert.equal("PUT", r.method)
      assert.equal("/function/echo/items/42", r.path)
      assert.equal("x=1&y=a%20b", r.query)
      assert.equal("hello function", r.body)
      assert.equal("text/plain", r.headers["content-type"])
      assert.equal("yes", r.headers["x-custom"])
      assert.equal("127.0.0.1:" .. plain.port, r.headers["host"])
      -- appended to; the untrusted client's X-Forwarded-Host is replaced
      assert.equal("192.0.2.1, 127.0.0.1", r.headers["x-forwarded-for"])
      assert.equal("sync.openfaas.test", r.headers["x-forwarded-host"])
      assert.equal("http", r.headers["x-forwarded-proto"])
      assert.equal("echo", r["function"])
      assert.equal("openfaas-fn", r.namespace)
      assert.is_false(r.async_call)
    end)

    it_io("relays the function's status and headers, Via appended",
          function()
      local res = call("sync", { path = "/faas",
                                 headers = { ["X-Mock-Status"] = "418" } })
      assert.response(res).has.status(418)
      assert.equal("openfaas-ce/mock_faas", res.headers["X-Served-By"])
      assert.matches("^%x+", res.headers["X-Call-Id"])
      assert.equal(VIA_SUFFIX, res.headers["Via"])
      assert.equal(#assert(res:read_body()),
                   tonumber(res.headers["Content-Length"]))
    end)

    it_io("calls the bare function for the route's own path", function()
      assert.response(call("sync", { path = "/faas" })).has.status(200)
      assert.equal("/function/echo", plain.last_request().path)
      assert.equal("/", plain.last_request().suffix)
    end)

    it_io("takes the suffix after a regex route's match", function()
      assert.response(call("regex", { path = "/v2/fn/a/b" })).has.status(200)
      assert.equal("/function/echo/a/b", plain.last_request().path)
    end)

    it_io("keeps encoded characters of the suffix encoded", function()
      assert.response(call("sync", { path = "/faas/a%20b/c%2Fd" }))
        .has.status(200)
      assert.equal("/function/echo/a%20b/c%2Fd", plain.last_request().path)
    end)

    it_io("can leave the path and query out", function()
      assert.response(call("fixed", { path = "/faas/items?x=1" }))
        .has.status(200)
      local r = plain.last_request()
      assert.equal("/function/echo", r.path)
      assert.equal("", r.query)
    end)

    it_io("can leave the client's headers out (not Content-Type)", function()
      assert.response(call("noheaders", {
        method = "POST",
        headers = { ["X-Custom"] = "no", ["Content-Type"] = "text/csv" },
        body = "a,b",
      })).has.status(200)
      local r = plain.last_request()
      assert.is_nil(r.headers["x-custom"])
      assert.is_nil(r.headers["x-forwarded-for"])
      assert.equal("text/csv", r.headers["content-type"])
      assert.equal("a,b", r.body)
    end)

    it_io("drops hop-by-hop headers", function()
      assert.response(call("sync", {
        path = "/faas",
        headers = { ["Connection"] = "keep-alive, X-Private",
                    ["X-Private"] = "1", ["TE"] = "trailers",
                    ["Keep-Alive"] = "timeout=5" },
      })).has.status(200)
      local h = plain.last_request().headers
      assert.is_nil(h["x-private"])
      assert.is_nil(h["te"])
      assert.is_nil(h["keep-alive"])
    end)

    it_io("invokes NAME.NAMESPACE", function()
      assert.response(call("ns")).has.status(200)
      local r = plain.last_request()
      assert.equal("/function/echo.staging", r.path)
      assert.equal("staging", r.namespace)
    end)

    it_io("relays the gateway's 404 for an unknown function", function()
      local res = call("missing")
      assert.response(res).has.status(404)
      assert.matches("function not found", res:read_body(), 1, true)
    end)

    it_io("answers a HEAD without a body", function()
      local res = call("sync", { method = "HEAD", path = "/faas" })
      assert.response(res).has.status(200)
      assert.equal("HEAD", plain.last_request().method)
    end)

    it_io("re-frames a chunked client body with a Content-Length",
          function()
      local parts = { "first,", "second,", "third" }
      local i = 0
      assert.response(call("sync", {
        method = "POST", path = "/faas",
        headers = { ["Content-Type"] = "text/plain" },
        body = function()
          i = i + 1
          return parts[i]
        end,
      })).has.status(200)
      local r = plain.last_request()
      assert.equal("length", r.framing)
      assert.equal("first,second,third", r.body)
      assert.is_nil(r.headers["transfer-encoding"])
    end)

    it_io("passes a binary body intact", function()
      local bytes = {}
      for i = 0, 255 do
        bytes[#bytes + 1] = string.char(i)
      end
      local body = table.concat(bytes):rep(20)
      assert.response(call("sync", {
        method = "POST", path = "/faas",
        headers = { ["Content-Type"] = "application/octet-stream" },
        body = body,
      })).has.status(200)
      local r = plain.last_request()
      assert.equal(#body, r.body_length)
      assert.equal(b64(body), r.body_base64)
    end)
  end)

  describe("an async call", function()
    it_io("returns the gateway's 202 and X-Call-Id, then the callback "
          .. "reaches callback_url", function()
      sink.clear()
      local res = call("async", { method = "POST", path = "/?q=1",
                                  body = "work" })
      assert.response(res).has.status(202)
      local call_id = res.headers["X-Call-Id"]
      assert.matches("^%x+", call_id)
      assert.equal("", res:read_body())

      local r = plain.last_request()
      assert.equal("/async-function/echo", r.path)
      assert.is_true(r.async_call)
      assert.equal(sink.url .. "/cb?from=faas", r.callback_url)
      assert.equal(sink.url .. "/cb?from=faas", r.headers["x-callback-url"])

      local cb
      helpers.wait_until(function()
        cb = sink.last_request()
        return cb ~= nil
      end, 10)
      assert.equal("POST", cb.method)
      assert.equal("/cb", cb.path)
      assert.equal("from=faas", cb.query)
      assert.equal(call_id, cb.headers["x-call-id"])
      assert.equal("200", cb.headers["x-function-status"])
      assert.equal("echo", cb.headers["x-function-name"])
      local doc = cjson.decode(cb.body)
      assert.equal("work", doc.body)
      assert.equal("q=1", doc.query)
    end)

    it_io("never forwards a client's X-Callback-Url", function()
      sink.clear()
      local res = call("async-nocb", {
        method = "POST",
        headers = { ["X-Callback-Url"] = sink.url .. "/evil" },
      })
      assert.response(res).has.status(202)
      local r = plain.last_request()
      assert.is_nil(r.headers["x-callback-url"])
      helpers.sleep(0.3)
      assert.same({}, plain.callbacks())
      assert.same({}, sink.requests())
    end)
  end)

  describe("credentials", function()
    it_io("basic_auth", function()
      basic.clear()
      local res = call("basic", {
        headers = { Authorization = "Bearer from-client" },
      })
      assert.response(res).has.status(200)
      local r = basic.last_request()
      assert.equal("Basic " .. b64(BASIC), r.headers["authorization"])
      assert.equal("basic", r.auth)
    end)

    it_io("bearer_token", function()
      bearer.clear()
      assert.response(call("bearer")).has.status(200)
      local r = bearer.last_request()
      assert.equal("Bearer " .. BEARER, r.headers["authorization"])
      assert.equal("bearer", r.auth)
    end)

    it_io("none: the client's Authorization passes, a wrong one gets the "
          .. "gateway's 401", function()
      basic.clear()
      local res = call("noauth", {
        headers = { Authorization = "Basic " .. b64(BASIC) },
      })
      assert.response(res).has.status(200)
      res = call("noauth")
      assert.response(res).has.status(401)
      assert.equal('Basic realm="Restricted"', res.headers["WWW-Authenticate"])
    end)
  end)

  describe("over TLS", function()
    it_io("verifies the gateway against lua_ssl_trusted_certificate",
          function()
      tls.clear()
      assert.response(call("tls", { path = "/?a=1" })).has.status(200)
      local r = tls.last_request()
      assert.is_true(r.tls)
      assert.equal(FAAS_HOST, r.sni)
      assert.equal(FAAS_HOST .. ":" .. tls.port, r.headers["host"])
    end)

    it_io("answers 502 for a certificate from a CA it does not trust", function()
      rogue.clear()
      local res = call("rogue")
      assert.response(res).has.status(502)
      assert.same({}, rogue.requests())
    end)

    it_io("accepts it without verification (the default)", function()
      assert.response(call("rogue-noverify")).has.status(200)
    end)

    it_io("does not reuse an unverified pooled connection when verifying",
          function()
      -- the unverified connection goes to the pool ...
      assert.response(call("rogue-noverify")).has.status(200)
      -- ... and the verifying config must not pick it up
      assert.response(call("rogue")).has.status(502)
    end)
  end)

  describe("a gateway", function()
    it_io("that is down: 502 at once", function()
      local t0 = helpers.now()
      local res = call("down")
      assert.response(res).has.status(502)
      assert.equal("An invalid response was received from the upstream "
                   .. "server", fh.json(res).message)
      assert.is_true(helpers.now() - t0 < 2)
      assert.logfile().has.line("[openfaas] could not invoke /function/echo"
                                .. " on 127.0.0.1:" .. down_port, true)
    end)

    it_io("that cuts its answer short: 502", function()
      local res = call("truncated")
      assert.response(res).has.status(502)
      assert.equal("An invalid response was received from the upstream "
                   .. "server", fh.json(res).message)
      local ok, got = truncated:join(5)
      assert.is_true(ok)
      assert.matches("^GET /function/echo HTTP/1.1\r\n", got)
    end)

    it_io("that is slow: 504 within the timeout", function()
      local t0 = helpers.now()
      local res = call("slow", { headers = { ["X-Mock-Sleep"] = "3" } })
      local elapsed = helpers.now() - t0
      assert.response(res).has.status(504)
      assert.equal("The upstream server is timing out",
                   fh.json(res).message)
      assert.is_true(elapsed >= 0.45 and elapsed < 2, "took " .. elapsed)
    end)
  end)

  it("answers 413 for a body over client_body_buffer_size", function()
    local res = call("sync", { method = "POST", path = "/faas",
                               body = ("x"):rep(64 * 1024) })
    assert.response(res).has.status(413)
    assert.matches("client_body_buffer_size", fh.json(res).message, 1, true)
    assert.same({}, plain.requests())
  end)
end)


describe("Plugin: openfaas (kong.conf headers)", function()
  local fn

  lazy_setup(function()
    fn = assert(mf.start({ platform = "openfaas" }))
  end)

  lazy_teardown(function()
    helpers.stop_kong()
    fn.stop()
  end)

  -- { kong.conf headers, the Via the client gets }
  local cases = {
    -- (the default, with server_tokens, is checked above)
    { "latency_tokens", nil },
  }
  for _, c in ipairs(cases) do
    it_io("headers = " .. c[1] .. ": Via " .. tostring(c[2]), function()
      assert(helpers.start_kong({
        plugins = "bundled,openfaas",
        headers = c[1],
        declarative_config = {
          _format_version = "3.0",
          services = { { name = "unused", url = "http://127.0.0.1:1",
            routes = { fh.route("via", { host = "127.0.0.1", port = fn.port,
                                         function_name = "echo" },
                                "openfaas", { paths = { "/" } }) } } },
        },
      }))
      finally(function()
        helpers.stop_kong()
      end)
      local client = helpers.proxy_client()
      local res = assert(client:get("/", {
        headers = { Host = "via.openfaas.test" },
      }))
      assert.response(res).has.status(200)
      assert.equal(c[2], res.headers["Via"])
      client:close()
    end)
  end
end)
