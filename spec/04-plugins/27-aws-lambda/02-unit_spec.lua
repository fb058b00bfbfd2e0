-- aws-lambda's pure parts without a gateway (plain luajit): AWS's URI
-- encoding, URL / ISO-8601 / INI / XML parsing, the API Gateway events
-- (1.0 and 2.0), the proxy-response parser with Kong's failure cases, the
-- payload rules of build_request_payload over a recorded request, the
-- APISIX path join and canonical query, and the STS answer parser.
-- `kong` and `ngx` are small stand-ins here; the same code runs through
-- the gateway in 10-invoke_spec.lua and friends.

local cjson = require "cjson"
local crypto = require "sluice.ngx.crypto"
local args = require "sluice.ngx.args"
local re = require "sluice.ngx.re"


-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
local plugin_schema = require "spec.internal.plugin_schema"
plugin_schema.map_plugins("kong.plugins.aws-lambda.util")


local saved_ngx, saved_kong = _G.ngx, _G.kong

-- the ngx functions these modules use
local function fake_ngx()
  return {
    null = cjson.null,
    encode_base64 = crypto.encode_base64,
    decode_base64 = crypto.decode_base64,
    unescape_uri = args.unescape_uri,
    escape_uri = args.escape_uri,
    re = re,
    var = { request_id = "0123456789abcdef0123456789abcdef" },
    ctx = {},
    now = os.time,
    update_time = function() end,
    log = function() end,
  }
end


-- A recorded client request behind kong.request / kong.router.
local function fake_kong(r)
  local logged = {}
  local function lower_headers()
    local h = {}
    for k, v in pairs(r.headers or {}) do
      h[k:lower()] = v
    end
    return h
  end
  local k = {
    request = {
      get_method = function() return r.method or "GET" end,
      get_path = function() return r.path or "/" end,
      get_raw_query = function() return r.raw_query or "" end,
      get_path_with_query = function()
        local q = r.raw_query or ""
        return (r.path or "/") .. (q ~= "" and "?" .. q or "")
      end,
      get_query = function() return args.decode_args(r.raw_query or "") end,
      get_headers = function() return lower_headers() end,
      get_header = function(name)
        local v = lower_headers()[name:lower()]
        return type(v) == "table" and v[1] or v
      end,
      get_raw_body = function(max)
        local body = r.body or ""
        local limit = math.max(max or 0, 8192)
        if #body > limit then
          return nil, "request body did not fit into client body buffer, "
                      .. "consider raising 'client_body_buffer_size'"
        end
        return body
      end,
      get_body = function()
        local ct = lower_headers()["content-type"]
        if not ct then
          return nil, "missing content type"
        end
        if #(r.body or "") > 8192 then
          return nil, "request body did not fit"
        end
        if ct:find("application/json", 1, true) then
          local t = cjson.decode(r.body)
          return t
        elseif ct:find("application/x-www-form-urlencoded", 1, true) then
          return args.decode_args(r.body)
        end
        return nil, "unsupported content type '" .. ct .. "'"
      end,
      get_host = function() return r.host or "api.example.com" end,
      get_http_version = function() return 1.1 end,
      get_start_time = function() return r.start or 1700000000123 end,
      get_uri_captures = function()
        return { named = r.captures or {}, unnamed = {} }
      end,
    },
    client = {
      get_forwarded_ip = function() return "10.1.2.3" end,
    },
    router = {
      get_route = function() return r.route end,
    },
    table = {
      merge = function(a, b)
        local out = {}
        for key, v in pairs(a or {}) do out[key] = v end
        for key, v in pairs(b or {}) do out[key] = v end
        return out
      end,
    },
    log = {
      err = function(...)
        logged[#logged + 1] = table.concat({ ... })
      end,
    },
  }
  return k, logged
end


local function conf(extra)
  local c = {
    base64_encode_body = true,
    skip_large_bodies = true,
    awsgateway_compatible_payload_version = "1.0",
  }
  for k, v in pairs(extra or {}) do
    c[k] = v
  end
  return c
end


describe("Plugin: aws-lambda (unit)", function()
  local util, apigw, request_util, function_uri, credentials

  lazy_setup(function()
    _G.ngx = fake_ngx()
    _G.kong = fake_kong({})
    util = require "kong.plugins.aws-lambda.util"
    apigw = require "kong.plugins.aws-lambda.apigw"
    request_util = require "kong.plugins.aws-lambda.request-util"
    function_uri = require "kong.plugins.aws-lambda.function-uri"
    credentials = require "kong.plugins.aws-lambda.credentials"
  end)

  lazy_teardown(function()
    _G.ngx, _G.kong = saved_ngx, saved_kong
  end)


  describe("util.escape (AWS URI encoding)", function()
    local cases = {
      { "my-fn", "my-fn" },
      { "arn:aws:lambda:us-east-1:123456789012:function:my-fn",
        "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Amy-fn" },
      { "$LATEST", "%24LATEST" },
      { "a b/c~d_e.f", "a%20b%2Fc~d_e.f" },
      { "*!'()", "%2A%21%27%28%29" },
      { "\195\169", "%C3%A9" },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " -> " .. c[2], function()
        assert.equal(c[2], util.escape(c[1]))
      end)
    end
  end)


  describe("util.parse_url", function()
    it("splits scheme, host, port, path and query", function()
      local u = util.parse_url("HTTPS://user@x.example.com:8443/prod/a?b=1&c")
      assert.same({ scheme = "https", host = "x.example.com", port = 8443,
                    path = "/prod/a", query = "b=1&c" }, u)
    end)
    it("fills the scheme's default port and /", function()
      assert.same({ scheme = "http", host = "127.0.0.1", port = 80,
                    path = "/" },
                  util.parse_url("http://127.0.0.1"))
      assert.equal(443, util.parse_url("https://h/x").port)
    end)
    it("takes IPv6 hosts out of their brackets", function()
      local u = util.parse_url("http://[fd00:ec2::254]:8080/latest")
      assert.equal("fd00:ec2::254", u.host)
      assert.equal(8080, u.port)
    end)
    it("rejects a URL without scheme or host", function()
      assert.is_nil(util.parse_url("example.com/x"))
      assert.is_nil(util.parse_url("http:///x"))
    end)
  end)


  describe("util.parse_iso8601", function()
    local cases = {
      { "1970-01-01T00:00:00Z", 0 },
      { "2000-03-01T00:00:00Z", 951868800 },
      { "2024-02-29T12:34:56Z", 1709210096 },
      { "2024-02-29T12:34:56.789Z", 1709210096 },
      { "2024-02-29T14:34:56+02:00", 1709210096 },
      { "2024-02-29T07:04:56-0530", 1709210096 },
      { "2024-02-29 12:34:56", 1709210096 },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert.equal(c[2], util.parse_iso8601(c[1]))
      end)
    end
    it("gives nil for anything else", function()
      assert.is_nil(util.parse_iso8601("tomorrow"))
      assert.is_nil(util.parse_iso8601("2024-02-29T12:34:56 UTC"))
      assert.is_nil(util.parse_iso8601(nil))
    end)
  end)


  describe("util.parse_ini (~/.aws/credentials)", function()
    it("reads sections, keys (lower-cased) and skips comments", function()
      local t = util.parse_ini(table.concat({
        "# comment",
        "[default]",
        "aws_access_key_id = AKDEFAULT",
        "AWS_Secret_Access_Key=secret=with=equals",
        "; another",
        "",
        "[ other ]",
        "  aws_access_key_id   =   AKOTHER  ",
        "aws_session_token = tok",
      }, "\n"))
      assert.same({
        default = { aws_access_key_id = "AKDEFAULT",
                    aws_secret_access_key = "secret=with=equals" },
        other = { aws_access_key_id = "AKOTHER",
                  aws_session_token = "tok" },
      }, t)
    end)
  end)


  describe("credentials.from_sts_xml", function()
    it("reads Credentials of an AssumeRole answer", function()
      local creds = credentials.from_sts_xml([[
<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
      <SecretAccessKey>s3cr&amp;t</SecretAccessKey>
      <SessionToken>tok&lt;en</SessionToken>
      <Expiration>2024-02-29T12:34:56Z</Expiration>
    </Credentials>
  </AssumeRoleResult>
</AssumeRoleResponse>]], "sts")
      assert.same({ access_key = "ASIAEXAMPLE", secret_key = "s3cr&t",
                    session_token = "tok<en", expiration = 1709210096,
                    source = "sts" }, creds)
    end)
    it("refuses an answer without credentials", function()
      local creds, err = credentials.from_sts_xml("<ErrorResponse/>", "sts")
      assert.is_nil(creds)
      assert.equal("sts: unexpected answer", err)
    end)
  end)


  describe("apigw.event 1.0", function()
    local function req(extra)
      local r = {
        method = "POST",
        path = "/users/42/orders",
        raw_query = "a=1&a=2&flag",
        query = { a = { "1", "2" }, flag = true },
        headers = { ["content-type"] = "text/plain",
                    ["x-multi"] = { "one", "two" },
                    ["user-agent"] = "busted" },
        body = "hello",
        host = "api.example.com",
        client_ip = "10.1.2.3",
        http_version = "1.1",
        request_id = "rid",
        start_time = 1709210096789,
        resource = "/users/(?<id>\\d+)/orders",
        path_parameters = { id = "42" },
      }
      for k, v in pairs(extra or {}) do
        r[k] = v
      end
      return r
    end

    it("has Kong's fields and API Gateway's shapes", function()
      local e = apigw.event(conf(), req())
      assert.equal("1.0", e.version)
      assert.equal("/users/(?<id>\\d+)/orders", e.resource)
      assert.equal("/users/42/orders", e.path)
      assert.equal("POST", e.httpMethod)
      assert.same({ ["content-type"] = "text/plain", ["x-multi"] = "one",
                    ["user-agent"] = "busted" }, e.headers)
      assert.same({ ["content-type"] = { "text/plain" },
                    ["x-multi"] = { "one", "two" },
                    ["user-agent"] = { "busted" } }, e.multiValueHeaders)
      assert.same({ id = "42" }, e.pathParameters)
      assert.same({ a = "1", flag = "" }, e.queryStringParameters)
      assert.same({ a = { "1", "2" }, flag = { "" } },
                  e.multiValueQueryStringParameters)
      assert.equal(crypto.encode_base64("hello"), e.body)
      assert.is_true(e.isBase64Encoded)
      assert.same({
        path = "/users/42/orders",
        protocol = "HTTP/1.1",
        httpMethod = "POST",
        domainName = "api.example.com",
        domainPrefix = "api",
        identity = { sourceIp = "10.1.2.3", userAgent = "busted" },
        requestId = "rid",
        requestTime = "29/Feb/2024:12:34:56 +0000",
        requestTimeEpoch = 1709210096789,
        resourcePath = "/users/(?<id>\\d+)/orders",
      }, e.requestContext)
      -- encodes as JSON (no functions, no cycles)
      assert.truthy(cjson.encode(e))
    end)

    it("sends the body as text with base64_encode_body = false", function()
      local e = apigw.event(conf({ base64_encode_body = false }), req())
      assert.equal("hello", e.body)
      assert.is_false(e.isBase64Encoded)
    end)

    it("does not base64 an empty body", function()
      local e = apigw.event(conf(), req({ body = "" }))
      assert.equal("", e.body)
      assert.is_false(e.isBase64Encoded)
    end)

    it("gives a null body when there is none to send", function()
      local r = req()
      r.body = nil
      local e = apigw.event(conf(), r)
      assert.equal(cjson.null, e.body)
      assert.is_false(e.isBase64Encoded)
    end)

    it("uses the path as resource without a matched route path", function()
      local r = req()
      r.resource = nil
      local e = apigw.event(conf(), r)
      assert.equal("/users/42/orders", e.resource)
      assert.equal("/users/42/orders", e.requestContext.resourcePath)
    end)
  end)


  describe("apigw.event 2.0", function()
    it("has HTTP API fields: cookies, joined values, raw query", function()
      local e = apigw.event(conf({
        awsgateway_compatible_payload_version = "2.0" }), {
        method = "GET",
        path = "/p",
        raw_query = "a=1&a=2",
        query = { a = { "1", "2" } },
        headers = { cookie = { "s=1; t=2", "u=3" }, ["x-m"] = { "a", "b" } },
        body = "",
        host = "fn.example.com",
        client_ip = "10.0.0.9",
        http_version = "1.1",
        request_id = "rid2",
        start_time = 1709210096000,
        path_parameters = {},
      })
      assert.equal("2.0", e.version)
      assert.equal("$default", e.routeKey)
      assert.equal("/p", e.rawPath)
      assert.equal("a=1&a=2", e.rawQueryString)
      assert.same({ "s=1", "t=2", "u=3" }, e.cookies)
      assert.same({ ["x-m"] = "a,b" }, e.headers)
      assert.same({ a = "1,2" }, e.queryStringParameters)
      assert.equal(cjson.null, e.pathParameters)
      assert.equal("GET", e.requestContext.http.method)
      assert.equal("10.0.0.9", e.requestContext.http.sourceIp)
      assert.equal("$default", e.requestContext.stage)
      assert.equal(1709210096000, e.requestContext.timeEpoch)
      assert.equal("", e.body)
      assert.is_false(e.isBase64Encoded)
    end)
  end)


  describe("apigw.extract_proxy_response", function()
    local function enc(t)
      return cjson.encode(t)
    end

    it("takes statusCode, headers and body", function()
      local r = assert(apigw.extract_proxy_response(enc({
        statusCode = 201, headers = { ["X-A"] = "1", ["X-N"] = 5 },
        body = "made" })))
      assert.same({ status = 201, headers = { ["X-A"] = "1", ["X-N"] = "5" },
                    body = "made" }, r)
    end)

    it("accepts a numeric string status", function()
      assert.equal(404, apigw.extract_proxy_response(
        enc({ statusCode = "404" })).status)
    end)

    it("lets multiValueHeaders win over headers", function()
      local r = assert(apigw.extract_proxy_response(enc({
        statusCode = 200, headers = { ["X-A"] = "single" },
        multiValueHeaders = { ["X-A"] = { "m1", "m2" } } })))
      assert.same({ "m1", "m2" }, r.headers["X-A"])
      assert.equal("", r.body)
    end)

    it("treats a null multiValueHeaders as absent", function()
      local r = assert(apigw.extract_proxy_response(
        '{"statusCode":200,"headers":{"X-A":"1"},"multiValueHeaders":null}'))
      assert.same({ ["X-A"] = "1" }, r.headers)
    end)

    it("decodes a base64 body", function()
      local r = assert(apigw.extract_proxy_response(enc({
        statusCode = 200, body = crypto.encode_base64("\0\1binary"),
        isBase64Encoded = true })))
      assert.equal("\0\1binary", r.body)
    end)

    it("turns 2.0 cookies into Set-Cookie", function()
      local r = assert(apigw.extract_proxy_response(enc({
        statusCode = 200, cookies = { "a=1", "b=2; Path=/" } }), "2.0"))
      assert.same({ "a=1", "b=2; Path=/" }, r.headers["Set-Cookie"])
    end)

    local failures = {
      { "not JSON", "this is not JSON {", "^Expected" },
      { "empty", "", "^Expected" },
      { "a JSON string", '"hello"', "response is not a JSON object" },
      { "a non-numeric status", enc({ statusCode = "nope" }),
        "statusCode validation failed" },
      { "a status out of range", enc({ statusCode = 1000 }),
        "statusCode validation failed" },
      { "a fractional status", enc({ statusCode = 200.5 }),
        "statusCode validation failed" },
      { "no status", enc({ body = "x" }), "statusCode validation failed" },
      { "headers as a string", enc({ statusCode = 200, headers = "x" }),
        "headers must be a table" },
      { "a table body", enc({ statusCode = 200, body = { a = 1 } }),
        "body must be a string" },
      { "isBase64Encoded as a string",
        enc({ statusCode = 200, body = "eA==", isBase64Encoded = "yes" }),
        "isBase64Encoded must be a boolean" },
      { "bad base64", enc({ statusCode = 200, body = "%%%not base64",
                            isBase64Encoded = true }),
        "body is not valid base64" },
    }
    for _, c in ipairs(failures) do
      it("fails on " .. c[1], function()
        local r, err = apigw.extract_proxy_response(c[2])
        assert.is_nil(r)
        assert.matches(c[3], err)
      end)
    end
  end)


  describe("request_util.build_request_payload", function()
    local function payload(r, extra)
      local logged
      _G.kong, logged = fake_kong(r)
      local json = assert(request_util.build_request_payload(conf(extra)))
      return cjson.decode(json), logged
    end

    it("merges query and body args by default (body wins)", function()
      local p = payload({
        method = "POST", raw_query = "a=q&q=1",
        headers = { ["Content-Type"] = "application/json" },
        body = '{"a":"body","b":[1,2]}',
      })
      assert.same({ a = "body", q = "1", b = { 1, 2 } }, p)
    end)

    it("sends the query args alone for an unparsable body", function()
      local p = payload({ raw_query = "x=1", body = "raw",
                          headers = { ["Content-Type"] = "text/plain" } })
      assert.same({ x = "1" }, p)
    end)

    it("forwards method, uri, headers and form body", function()
      local p = payload({
        method = "PUT", path = "/f", raw_query = "k=v",
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded",
                    ["X-One"] = "1" },
        body = "a=1&b=2",
      }, { forward_request_method = true, forward_request_uri = true,
           forward_request_headers = true, forward_request_body = true })
      assert.equal("PUT", p.request_method)
      assert.equal("/f?k=v", p.request_uri)
      assert.same({ k = "v" }, p.request_uri_args)
      assert.equal("1", p.request_headers["x-one"])
      assert.equal("a=1&b=2", p.request_body)
      assert.same({ a = "1", b = "2" }, p.request_body_args)
      assert.is_nil(p.request_body_base64)
    end)

    it("sends only the forwarded parts asked for", function()
      local p = payload({ method = "GET", path = "/only" },
                        { forward_request_method = true })
      assert.same({ request_method = "GET" }, p)
    end)

    local text_types = { "text/plain", "text/html", "application/xml",
                         "text/xml", "application/soap+xml",
                         "text/plain; charset=utf-8" }
    for _, ct in ipairs(text_types) do
      it("keeps a " .. ct .. " body as text", function()
        local p = payload({ method = "POST", body = "<a>x</a>",
                            headers = { ["Content-Type"] = ct } },
                          { forward_request_body = true })
        assert.equal("<a>x</a>", p.request_body)
        assert.same({}, p.request_body_args)
        assert.is_nil(p.request_body_base64)
      end)
    end

    it("base64s a binary body", function()
      local p = payload({ method = "POST", body = "\0\1\2",
                          headers = { ["Content-Type"] =
                                      "application/octet-stream" } },
                        { forward_request_body = true })
      assert.equal(crypto.encode_base64("\0\1\2"), p.request_body)
      assert.is_true(p.request_body_base64)
    end)

    it("does not base64 with base64_encode_body = false", function()
      local p = payload({ method = "POST", body = "bin",
                          headers = { ["Content-Type"] =
                                      "application/octet-stream" } },
                        { forward_request_body = true,
                          base64_encode_body = false })
      assert.equal("bin", p.request_body)
      assert.is_nil(p.request_body_base64)
    end)

    it("skips a large body with skip_large_bodies (Kong's log)", function()
      local big = string.rep("x", 20000)
      local p, logged = payload({ method = "POST", body = big,
                                  headers = { ["Content-Type"] =
                                              "text/plain" } },
                                { forward_request_body = true })
      assert.is_nil(p.request_body)
      assert.same({ "request body was buffered to disk, too large" },
                  logged)
    end)

    it("sends a large body without skip_large_bodies", function()
      local big = string.rep("x", 20000)
      local p = payload({ method = "POST", body = big,
                          headers = { ["Content-Type"] = "text/plain" } },
                        { forward_request_body = true,
                          skip_large_bodies = false })
      assert.equal(big, p.request_body)
    end)

    it("builds the API Gateway event with the matched regex", function()
      local p = payload({
        method = "GET", path = "/users/7", raw_query = "x=1",
        headers = { ["User-Agent"] = "t" },
        route = { paths = { "/other", "~/users/(?<id>\\d+)$" } },
        captures = { id = "7", [1] = "7" },
      }, { awsgateway_compatible = true })
      assert.equal("1.0", p.version)
      assert.equal("/users/(?<id>\\d+)$", p.resource)
      assert.same({ id = "7" }, p.pathParameters)
      assert.same({ x = "1" }, p.queryStringParameters)
      assert.equal("0123456789abcdef0123456789abcdef",
                   p.requestContext.requestId)
      assert.equal("10.1.2.3", p.requestContext.identity.sourceIp)
    end)

    it("builds it with the longest matched prefix", function()
      local p = payload({ method = "GET", path = "/a/b/c",
                          route = { paths = { "/a", "/a/b" } } },
                        { awsgateway_compatible = true })
      assert.equal("/a/b", p.resource)
      assert.same({}, p.pathParameters)
    end)
  end)


  describe("function_uri paths and queries", function()
    local joins = {
      { "/prod", "/a/b", "/prod/a/b" },
      { "/prod/", "/a/b", "/prod/a/b" },
      { "/prod", "a", "/prod/a" },
      { "/prod", "", "/prod" },
      { "/prod", "/", "/prod" },
      { "/", "/a", "/a" },
      { "/prod", "///a//b", "/prod/a//b" },
    }
    for _, c in ipairs(joins) do
      it("join_path(" .. c[1] .. ", " .. c[2] .. ")", function()
        assert.equal(c[3], function_uri.join_path(c[1], c[2]))
      end)
    end

    it("takes the suffix after the longest matched prefix", function()
      _G.kong = fake_kong({})
      local route = { paths = { "/aws", "/aws/x" } }
      assert.equal("/a/b", function_uri.path_suffix(route, "/aws/a/b"))
      assert.equal("/y", function_uri.path_suffix(route, "/aws/x/y"))
      assert.equal("", function_uri.path_suffix(route, "/aws"))
      assert.equal("", function_uri.path_suffix({}, "/aws/a"))
    end)

    it("takes a regex route's `ext` capture", function()
      _G.kong = fake_kong({ captures = { ext = "a/b" } })
      local route = { paths = { "~/aws/(?<ext>.*)$" } }
      assert.equal("a/b", function_uri.path_suffix(route, "/aws/a/b"))
    end)

    it("canonicalizes the query as APISIX's signed request does", function()
      assert.equal("a=%2A&a-=x&flag=&multi=m1&multi=m2"
                   .. "&with%20space=a%2Fb%20c",
                   function_uri.canonical_query(
                     "with%20space=a%2Fb%20c&multi=m2&multi=m1&flag&a=*&a-=x"))
    end)

    it("puts function_uri's args with the client's", function()
      assert.equal("stage=1&z=%2B", function_uri.canonical_query(
                   "stage=1", "z=%2B"))
      assert.equal("", function_uri.canonical_query(nil, ""))
    end)
  end)
end)
