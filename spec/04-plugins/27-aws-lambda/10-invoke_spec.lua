-- aws-lambda's Invoke API way through a real gateway against the Lambda
-- mock of spec/fixtures/mock_faas (which verifies every SigV4 signature
-- with its own code), plain and TLS. Asserts on what the client gets and
-- on what the mock recorded: the signature, the Invoke headers, the
-- payload (default, forward_request_*, API Gateway 1.0 and 2.0 events,
-- large bodies), invocation types, the log tail, qualifiers and ARNs,
-- unhandled errors, proxy integration (good and every malformed shape),
-- Lambda API errors (a wrong secret, an unknown function), empty arrays,
-- a platform slower than `timeout` (504) and one that is down (502).

local helpers = require "spec.helpers"
local cjson = require "cjson"
local mf = require "spec.internal.mock_faas"
local fh = require "spec.internal.faas_plugins"


local AWS = mf.AWS
local NONE = {}  -- a route() config value that removes the key
local LAMBDA_HOST = "lambda.us-east-1.amazonaws.com"
local b64, unb64 = fh.b64, fh.unb64


describe("Plugin: aws-lambda (Invoke API)", function()
  local plain, tls
  local down_port, silent

  lazy_setup(function()
    local cert, key = fh.server_cert({ LAMBDA_HOST, "localhost" })
    plain = assert(mf.start({ platform = "lambda", credentials = { AWS },
                              aliases = { prod = 7 } }))
    tls = assert(mf.start({ platform = "lambda", tls = true, cert = cert,
                            key = key, credentials = { AWS } }))
    down_port = helpers.get_available_port()
    silent = helpers.tcp_server(nil, { mode = "silent", n = 2,
                                       timeout = 30 })

    -- a route <name>.lambda.test invoking the plain mock with the static
    -- keys; `config` adds to or overrides that
    local function route(name, config, extra)
      local c = {
        function_name = "echo",
        aws_region = "us-east-1",
        aws_key = AWS.access_key,
        aws_secret = AWS.secret_key,
        host = "127.0.0.1",
        port = plain.port,
        disable_https = true,
        timeout = 5000,
      }
      for k, v in pairs(config or {}) do
        if v == NONE then
          c[k] = nil
        else
          c[k] = v
        end
      end
      return fh.route(name, c, "aws-lambda", extra)
    end

    assert(helpers.start_kong({
      plugins = "bundled,aws-lambda",
      dns_hostsfile = fh.hosts_file({ LAMBDA_HOST }),
      lua_ssl_trusted_certificate = tls.ca_cert,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "unused", url = "http://127.0.0.1:1", routes = {
            route("echo"),
            route("tls", { host = NONE, port = tls.port,
                           disable_https = false }),
            route("badsecret", { aws_secret = "not-the-secret" }),
            route("preserve", { aws_secret = "not-the-secret",
                                preserve_lambda_api_error_code = true }),
            route("missing", { function_name = "nosuchfunction" }),
            route("event", { invocation_type = "Event" }),
            route("dryrun", { invocation_type = "DryRun" }),
            route("nolog", { log_type = "None" }),
            route("qualifier", { qualifier = "3" }),
            route("arn", {
              function_name = "arn:aws:lambda:us-east-1:123456789012:"
                              .. "function:echo",
              qualifier = "prod" }),
            route("latest", { function_name = "echo", qualifier = "$LATEST" }),
            route("context", { client_context = '{"custom":{"k":"v"}}' }),
            route("unhandled", { function_name = "unhandled" }),
            route("unhandled412", { function_name = "unhandled",
                                    unhandled_status = 412 }),
            route("unhandledevent", { function_name = "unhandled",
                                      unhandled_status = 412,
                                      invocation_type = "Event" }),
            route("handled", { function_name = "handled",
                               unhandled_status = 412 }),
            route("proxy", { function_name = "proxy",
                             is_proxy_integration = true }),
            route("proxyerr", { function_name = "unhandled",
                                is_proxy_integration = true }),
            route("malformed", { function_name = "malformed",
                                 is_proxy_integration = true }),
            route("forward", { forward_request_method = true,
                               forward_request_uri = true,
                               forward_request_headers = true,
                               forward_request_body = true }),
            route("fwdlarge", { forward_request_body = true,
                                skip_large_bodies = false }),
            route("gw", { awsgateway_compatible = true },
                  { paths = { "~/gw/(?<id>\\d+)/(?<rest>.*)$", "/gwp" } }),
            route("gw2", { awsgateway_compatible = true,
                           awsgateway_compatible_payload_version = "2.0" }),
            route("gwraw", { awsgateway_compatible = true,
                             base64_encode_body = false }),
            route("gwproxy", { function_name = "proxy",
                               awsgateway_compatible = true,
                               is_proxy_integration = true }),
            route("legacy", { function_name = "proxy",
                              is_proxy_integration = true }),
            route("correct", { function_name = "proxy",
                               is_proxy_integration = true,
                               empty_arrays_mode = "correct" }),
            route("proxied", { host = "lambda.example.invalid",
                               proxy_url = plain.url }),
            route("noregion", { aws_region = NONE }),
            route("slow", { function_name = "slow", timeout = 1000 }),
            route("silent", { port = silent.port, timeout = 1000 }),
            route("down", { port = down_port }),
          } },
        },
      },
    }))
  end)

  local gw = fh.gateway({
    plugin = "aws-lambda",
    stop = function() return { plain, tls, silent } end,
    clear = function() return plain end,
  })
  local call = gw.call

  local function json(res, status)
    return fh.json(res, status or 200)
  end

  -- the one request the plain mock recorded since before_each
  local function recorded()
    local list = plain.requests()
    assert.equal(1, #list, "requests seen by the mock")
    return list[1]
  end


  describe("a RequestResponse call", function()
    it("is signed, carries Kong's headers and merges args", function()
      local res = call("echo", { method = "POST", path = "/x",
                                 query = { a = "q", q = "1" },
                                 headers = { ["Content-Type"] =
                                             "application/json" },
                                 body = '{"a":"body","n":[1,2]}' })
      assert.same({ a = "body", q = "1", n = { 1, 2 } }, json(res))
      local r = recorded()
      assert.is_true(r.sigv4.ok, cjson.encode(r.sigv4))
      assert.equal(AWS.access_key, r.sigv4.access_key)
      assert.equal("lambda", r.sigv4.service)
      assert.equal("POST", r.method)
      assert.equal("/2015-03-31/functions/echo/invocations", r.path)
      assert.equal("RequestResponse",
                   r.headers["x-amz-invocation-type"])
      assert.equal("Tail", r.headers["x-amz-log-type"])
      assert.equal("127.0.0.1:" .. plain.port, r.headers["host"])
      assert.is_nil(r.headers["x-amz-client-context"])
      -- Lambda's headers go back
      assert.is_string(res.headers["x-amzn-RequestId"])
      assert.equal("$LATEST", res.headers["X-Amz-Executed-Version"])
      assert.matches("application/json", res.headers["Content-Type"], nil,
                     true)
      assert.matches("sluice/", res.headers["Via"], nil, true)
      local tail = unb64(res.headers["X-Amz-Log-Result"])
      assert.matches("START RequestId: " .. res.headers["x-amzn-RequestId"],
                     tail, nil, true)
    end)

    it("sends the query args alone on a GET", function()
      local res = call("echo", { query = { x = "1", y = "two" } })
      assert.same({ x = "1", y = "two" }, json(res))
    end)

    it("sends form args", function()
      local res = call("echo", { method = "POST",
                                 headers = { ["Content-Type"] =
                                   "application/x-www-form-urlencoded" },
                                 body = "f=1&g=2" })
      assert.same({ f = "1", g = "2" }, json(res))
    end)

    it("sends an empty object for a bare GET", function()
      local res = call("echo")
      assert.same({}, json(res))
    end)

    it("reaches lambda.<region>.amazonaws.com over verified TLS",
     function()
      tls.clear()
      local res = call("tls", { query = { over = "tls" } })
      assert.same({ over = "tls" }, json(res))
      local list = tls.requests()
      assert.equal(1, #list)
      assert.is_true(list[1].tls)
      assert.is_true(list[1].sigv4.ok)
      assert.equal(LAMBDA_HOST .. ":" .. tls.port, list[1].headers["host"])
      assert.equal(LAMBDA_HOST, list[1].sni)
    end)

    it("leaves X-Amz-Log-Result out with log_type None", function()
      local res = call("nolog")
      assert.res_status(200, res)
      assert.is_nil(res.headers["X-Amz-Log-Result"])
      assert.equal("None", recorded().headers["x-amz-log-type"])
    end)

    it("sends the qualifier", function()
      local res = call("qualifier")
      assert.res_status(200, res)
      assert.equal("3", res.headers["X-Amz-Executed-Version"])
      local r = recorded()
      assert.equal("Qualifier=3", r.query)
      assert.is_true(r.sigv4.ok)
    end)

    it("escapes an ARN and an alias", function()
      local res = call("arn")
      assert.res_status(200, res)
      assert.equal("7", res.headers["X-Amz-Executed-Version"])
      local r = recorded()
      assert.is_true(r.sigv4.ok, cjson.encode(r.sigv4))
      assert.equal("/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1"
                   .. "%3A123456789012%3Afunction%3Aecho/invocations", r.path)
      assert.equal("arn", r.function_form)
      assert.equal("prod", r.qualifier)
    end)

    it("escapes $LATEST", function()
      local res = call("latest")
      assert.res_status(200, res)
      local r = recorded()
      assert.equal("Qualifier=%24LATEST", r.query)
      assert.is_true(r.sigv4.ok)
    end)

    it("goes through proxy_url", function()
      local res = call("proxied", { query = { via = "proxy" } })
      assert.same({ via = "proxy" }, json(res))
      local r = recorded()
      assert.is_true(r.sigv4.ok)
      -- no DNS knows this name: only the proxy (the mock itself, which
      -- takes absolute-form targets) could have carried it there
      assert.equal("lambda.example.invalid:" .. plain.port, r.headers["host"])
    end)

    it("needs a region (500, Kong's log line)", function()
      assert.res_status(500, call("noregion"))
      assert.logfile().has.line("no region specified", true, 5)
      assert.equal(0, #plain.requests())
    end)

    it("sends client_context as X-Amz-Client-Context", function()
      assert.res_status(200, call("context"))
      assert.same({ custom = { k = "v" } }, recorded().client_context)
    end)
  end)


  describe("invocation types", function()
    it("Event gives 202 and no body", function()
      local res = call("event", { query = { a = "1" } })
      assert.equal("", assert.res_status(202, res))
      assert.is_string(res.headers["x-amzn-RequestId"])
      assert.equal("Event", recorded().headers["x-amz-invocation-type"])
    end)

    it("DryRun gives 204", function()
      local res = call("dryrun")
      assert.res_status(204, res)
      assert.is_string(res.headers["x-amzn-RequestId"])
      assert.equal("DryRun", recorded().headers["x-amz-invocation-type"])
    end)
  end)


  describe("function errors", function()
    it("keep 200 and pass X-Amz-Function-Error", function()
      local res = call("unhandled")
      local body = json(res, 200)
      assert.equal("Unhandled", res.headers["X-Amz-Function-Error"])
      assert.equal("MockFaasError", body.errorType)
    end)

    it("give unhandled_status when Unhandled", function()
      local res = call("unhandled412")
      assert.res_status(412, res)
      assert.equal("Unhandled", res.headers["X-Amz-Function-Error"])
    end)

    it("keep 202 for an Event", function()
      assert.res_status(202, call("unhandledevent"))
    end)

    it("keep 200 when Handled", function()
      local res = call("handled")
      assert.res_status(200, res)
      assert.equal("Handled", res.headers["X-Amz-Function-Error"])
    end)

    it("give 502 in proxy integration", function()
      local res = call("proxyerr")
      local body = json(res, 502)
      assert.equal("MockFaasError", body.errorType)
      assert.logfile().has.line("the function failed (Unhandled)", true, 5)
    end)
  end)


  describe("Lambda API errors", function()
    it("a wrong secret gives Kong's 500, logged", function()
      local res = call("badsecret")
      local body = json(res, 500)
      assert.equal("An unexpected error occurred", body.message)
      local r = recorded()
      assert.is_false(r.sigv4.ok)
      assert.equal("signature", r.sigv4.error)
      assert.logfile().has.line("Lambda API answered 403 "
                                .. "(InvalidSignatureException): The request "
                                .. "signature we calculated does not match",
                                true, 5)
    end)

    it("passes Lambda's answer with preserve_lambda_api_error_code",
     function()
      local res = call("preserve")
      local body = json(res, 403)
      assert.matches("signature we calculated", body.message, nil, true)
      assert.equal("InvalidSignatureException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("an unknown function gives 500, logged", function()
      local res = call("missing")
      assert.res_status(500, res)
      assert.logfile().has.line("Lambda API answered 404 "
                                .. "(ResourceNotFoundException): Function "
                                .. "not found", true, 5)
    end)
  end)


  describe("proxy integration", function()
    it("takes status, headers and body from the function", function()
      local res = call("proxy", {
        method = "POST", headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ status = 201, body = "made it",
                              headers = { ["X-Fn"] = "yes",
                                          ["Content-Type"] = "text/plain" } }),
      })
      assert.equal("made it", assert.res_status(201, res))
      assert.equal("yes", res.headers["X-Fn"])
      assert.equal("text/plain", res.headers["Content-Type"])
      assert.equal("7", res.headers["Content-Length"])
      -- Lambda's own headers are there too
      assert.is_string(res.headers["x-amzn-RequestId"])
    end)

    it("accepts a numeric string status", function()
      local res = call("proxy", { query = { status = "404", body = "nope" } })
      assert.equal("nope", assert.res_status(404, res))
    end)

    it("lets multiValueHeaders win", function()
      local res = call("proxy", {
        method = "POST", headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ body = "m",
                              headers = { ["X-M"] = "single" },
                              multi_headers = { ["X-M"] = { "a", "b" } } }),
      })
      assert.res_status(200, res)
      assert.same({ "a", "b" }, res.headers["X-M"])
    end)

    it("decodes a base64 body", function()
      local res = call("proxy", { query = { body = "binary?", base64 = "1" } })
      assert.equal("binary?", assert.res_status(200, res))
    end)

    local malformed = {
      { "not_json", "Expected" },
      { "empty", "Expected" },
      { "status_string", "statusCode validation failed" },
      { "status_range", "statusCode validation failed" },
      { "no_status", "statusCode validation failed" },
      { "headers_string", "headers must be a table" },
      { "body_table", "body must be a string" },
      { "base64_string", "isBase64Encoded must be a boolean" },
      { "bad_base64", "body is not valid base64" },
    }
    for _, c in ipairs(malformed) do
      it("answers 502 Bad Gateway to " .. c[1], function()
        local res = call("malformed", { query = { kind = c[1] } })
        local body = json(res, 502)
        assert.equal("Bad Gateway", body.message)
        assert.matches("could not JSON decode Lambda function response: "
                       .. c[2], body.error, nil, true)
        assert.logfile().has.line(c[2], true, 5)
      end)
    end
  end)


  describe("forward_request_*", function()
    it("sends method, uri, args, headers and body", function()
      local res = call("forward", {
        method = "PATCH", path = "/some/path", query = { k = "v" },
        headers = { ["Content-Type"] = "text/xml", ["X-Custom"] = "c" },
        body = "<a>1</a>",
      })
      local p = json(res)
      assert.equal("PATCH", p.request_method)
      assert.equal("/some/path?k=v", p.request_uri)
      assert.same({ k = "v" }, p.request_uri_args)
      assert.equal("c", p.request_headers["x-custom"])
      assert.equal("<a>1</a>", p.request_body)
      assert.is_nil(p.request_body_base64)
    end)

    it("base64s a binary body", function()
      local res = call("forward", {
        method = "POST", body = "\1\2\3binary",
        headers = { ["Content-Type"] = "application/octet-stream" },
      })
      local p = json(res)
      assert.equal(b64("\1\2\3binary"), p.request_body)
      assert.is_true(p.request_body_base64)
    end)

    it("parses a JSON body into request_body_args", function()
      local res = call("forward", {
        method = "POST", body = '{"j":1}',
        headers = { ["Content-Type"] = "application/json" },
      })
      local p = json(res)
      assert.equal('{"j":1}', p.request_body)
      assert.same({ j = 1 }, p.request_body_args)
    end)

    it("skips a body over client_body_buffer_size (logged)", function()
      local big = string.rep("z", 20000)
      local res = call("forward", { method = "POST", body = big,
                                    headers = { ["Content-Type"] =
                                                "text/plain" } })
      local p = json(res)
      assert.is_nil(p.request_body)
      assert.logfile().has.line("request body was buffered to disk, "
                                .. "too large", true, 5)
    end)

    it("sends it with skip_large_bodies = false", function()
      local big = string.rep("z", 20000)
      local res = call("fwdlarge", { method = "POST", body = big,
                                     headers = { ["Content-Type"] =
                                                 "text/plain" } })
      assert.equal(big, json(res).request_body)
    end)
  end)


  describe("awsgateway_compatible", function()
    it("sends an API Gateway 1.0 event (regex route)", function()
      local res = call("gw", {
        method = "POST", path = "/gw/42/tail/x", query = "a=1&a=2&b=3",
        headers = { ["Content-Type"] = "text/plain", ["User-Agent"] = "ua/1",
                    ["X-Twice"] = { "one", "two" } },
        body = "payload",
      })
      local e = json(res)
      assert.equal("1.0", e.version)
      assert.equal("/gw/(?<id>\\d+)/(?<rest>.*)$", e.resource)
      assert.equal("/gw/42/tail/x", e.path)
      assert.equal("POST", e.httpMethod)
      assert.same({ id = "42", rest = "tail/x" }, e.pathParameters)
      assert.same({ a = "1", b = "3" }, e.queryStringParameters)
      assert.same({ a = { "1", "2" }, b = { "3" } },
                  e.multiValueQueryStringParameters)
      assert.equal("one", e.headers["x-twice"])
      assert.same({ "one", "two" }, e.multiValueHeaders["x-twice"])
      assert.equal(b64("payload"), e.body)
      assert.is_true(e.isBase64Encoded)
      local rc = e.requestContext
      assert.equal("gw.aws-lambda.test", rc.domainName)
      assert.equal("gw", rc.domainPrefix)
      assert.equal("HTTP/1.1", rc.protocol)
      assert.equal("ua/1", rc.identity.userAgent)
      assert.equal("127.0.0.1", rc.identity.sourceIp)
      assert.equal(res.headers["X-Kong-Request-Id"], rc.requestId)
      assert.matches("^%d%d/%a%a%a/%d%d%d%d:%d%d:%d%d:%d%d %+0000$",
                     rc.requestTime)
      assert.near(os.time() * 1000, rc.requestTimeEpoch, 60000)
    end)

    it("uses the matched prefix as resource", function()
      local e = json(call("gw", { path = "/gwp/more" }))
      assert.equal("/gwp", e.resource)
      assert.same({}, e.pathParameters)
      assert.equal("", e.body)
      assert.is_false(e.isBase64Encoded)
    end)

    it("sends the body as text with base64_encode_body off", function()
      local e = json(call("gwraw", { method = "POST", body = "plain",
                                     headers = { ["Content-Type"] =
                                                 "text/plain" } }))
      assert.equal("plain", e.body)
      assert.is_false(e.isBase64Encoded)
    end)

    it("sends a 2.0 event", function()
      local e = json(call("gw2", {
        path = "/v2", query = "x=1&x=2",
        headers = { Cookie = "a=1; b=2", ["X-D"] = { "p", "q" } },
      }))
      assert.equal("2.0", e.version)
      assert.equal("/v2", e.rawPath)
      assert.equal("x=1&x=2", e.rawQueryString)
      assert.same({ "a=1", "b=2" }, e.cookies)
      assert.equal("p,q", e.headers["x-d"])
      assert.same({ x = "1,2" }, e.queryStringParameters)
      assert.equal("GET", e.requestContext.http.method)
    end)

    it("feeds a proxy-integration function", function()
      local res = call("gwproxy", {
        method = "POST", headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({ status = 418, body = "teapot" }),
      })
      assert.equal("teapot", assert.res_status(418, res))
    end)
  end)


  describe("empty_arrays_mode", function()
    -- the proxy function answers this JSON text as a JSON body
    local function ask(name)
      return call(name, {
        method = "POST", headers = { ["Content-Type"] = "application/json" },
        body = cjson.encode({
          body = '{"list":[],"obj":{},"n":[1]}',
          headers = { ["Content-Type"] = "application/json" } }),
      })
    end

    it("legacy turns [] into {}", function()
      local raw = assert.res_status(200, ask("legacy"))
      assert.matches('"list":{}', raw, nil, true)
      assert.matches('"n":[1]', raw, nil, true)
    end)

    it("correct keeps []", function()
      local raw = assert.res_status(200, ask("correct"))
      assert.equal('{"list":[],"obj":{},"n":[1]}', raw)
    end)
  end)


  describe("an unavailable platform", function()
    it("slower than timeout gives 504 within the timeout", function()
      local t0 = helpers.now()
      local res = call("slow", { query = { sleep = "4" } })
      local elapsed = helpers.now() - t0
      local body = json(res, 504)
      assert.matches("did not answer within 1000 ms", body.message, nil,
                     true)
      assert.is_true(elapsed >= 0.9 and elapsed < 2.5,
                     "answered after " .. elapsed .. " s")
    end)

    it("that accepts and never answers gives 504", function()
      local t0 = helpers.now()
      local res = call("silent")
      assert.res_status(504, res)
      assert.is_true(helpers.now() - t0 < 2.5)
    end)

    it("that is down gives 502, logged", function()
      local body = json(call("down"), 502)
      assert.equal("The Lambda service could not be reached", body.message)
      assert.logfile().has.line("invoking echo at 127.0.0.1:" .. down_port
                                .. " failed", true, 5)
    end)
  end)
end)
