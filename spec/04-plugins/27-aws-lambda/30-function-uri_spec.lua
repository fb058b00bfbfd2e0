-- aws-lambda's APISIX way (function_uri) through a real gateway against
-- the function URL / API Gateway stage mock of spec/fixtures/mock_faas
-- (which checks x-api-key and verifies SigV4 itself): the path suffix
-- after the route (`/aws/*` -> <function_uri>/a/b, prefix and regex
-- routes), method, query, headers and body forwarded, apikey and iam
-- (function URL service `lambda`, API Gateway `execute-api`, a query that
-- needs canonical encoding), a client's own credentials left alone, the
-- platform's status / headers / body returned, TLS verified against the
-- configured CA (and refused for an unknown one), a slow (504) and a down
-- (502) platform.

local helpers = require "spec.helpers"
local mf = require "spec.internal.mock_faas"
local fh = require "spec.internal.faas_plugins"


local AWS = mf.AWS
local API_KEY = "sluice-spec-api-key"


describe("Plugin: aws-lambda (function_uri)", function()
  local fn, tls, rogue, down_port

  lazy_setup(function()
    fn = assert(mf.start({ platform = "lambda-url", api_key = API_KEY,
                           credentials = { AWS } }))
    tls = assert(mf.start({ platform = "lambda-url", tls = true,
                            api_key = API_KEY, credentials = { AWS } }))
    local rcert, rkey = fh.self_signed({ "localhost" })
    rogue = assert(mf.start({ platform = "lambda-url", tls = true,
                              cert = rcert, key = rkey, auth = "none" }))
    down_port = helpers.get_available_port()

    local function route(name, paths, config)
      config.timeout = config.timeout or 5000
      return {
        name = "r-" .. name,
        paths = paths,
        plugins = { { name = "aws-lambda", config = config } },
      }
    end
    local iam = { accesskey = AWS.access_key, secretkey = AWS.secret_key }

    assert(helpers.start_kong({
      plugins = "bundled,aws-lambda",
      lua_ssl_trusted_certificate = tls.ca_cert,
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "unused", url = "http://127.0.0.1:1", routes = {
          route("apikey", { "/aws" }, {
            function_uri = fn.url .. "/prod",
            authorization = { apikey = API_KEY } }),
          route("regex", { "~/re/(?<ext>.*)$" }, {
            function_uri = fn.url .. "/stage?fixed=1",
            authorization = { apikey = API_KEY } }),
          route("url", { "/fnurl" }, {
            function_uri = fn.url,
            authorization = { iam = { accesskey = iam.accesskey,
                                      secretkey = iam.secretkey,
                                      service = "lambda" } } }),
          route("apigw", { "/apigw" }, {
            function_uri = fn.url .. "/prod",
            authorization = { iam = iam } }),
          route("badiam", { "/badiam" }, {
            function_uri = fn.url,
            authorization = { iam = { accesskey = AWS.access_key,
                                      secretkey = "wrong" } } }),
          route("noauth", { "/noauth" }, { function_uri = fn.url }),
          route("tls", { "/tls" }, {
            function_uri = tls.url .. "/prod",
            authorization = { apikey = API_KEY } }),
          route("rogue", { "/rogue" }, { function_uri = rogue.url }),
          route("rogueok", { "/rogueok" }, { function_uri = rogue.url,
                                             ssl_verify = false }),
          route("slow", { "/slow" }, {
            function_uri = fn.url, timeout = 1000,
            authorization = { apikey = API_KEY } }),
          route("down", { "/down" }, {
            function_uri = "http://127.0.0.1:" .. down_port }),
        } } },
      },
    }))
  end)

  local gw = fh.gateway({
    stop = function() return { fn, tls, rogue } end,
  })
  local send = gw.send

  local function json(res, status)
    return fh.json(res, status or 200)
  end


  it("appends the path after the route and forwards the request",
     function()
    local res = send({ method = "POST", path = "/aws/a/b",
                       query = "x=1&y=two",
                       headers = { ["Content-Type"] = "text/plain",
                                   ["X-Client"] = "c1" },
                       body = "the body" })
    local doc = json(res)
    assert.equal("POST", doc.method)
    assert.equal("/prod/a/b", doc.path)
    assert.same({ x = "1", y = "two" }, doc.args)
    assert.equal("the body", doc.body)
    assert.equal("c1", doc.headers["x-client"])
    assert.equal("text/plain", doc.headers["content-type"])
    assert.equal("8", doc.headers["content-length"])
    assert.equal(API_KEY, doc.headers["x-api-key"])
    assert.equal("api_key", doc.auth)
    -- the function's own headers come back
    assert.is_string(res.headers["x-amzn-RequestId"])
  end)

  it("sends the bare function_uri path for the route itself", function()
    assert.equal("/prod", json(send({ path = "/aws" })).path)
  end)

  it("appends a regex route's `ext` capture, keeps the URI's args",
     function()
    local doc = json(send({ path = "/re/deep/er", query = "q=1" }))
    assert.equal("/stage/deep/er", doc.path)
    assert.same({ fixed = "1", q = "1" }, doc.args)
  end)

  it("keeps the client's own x-api-key", function()
    local res = send({ path = "/aws/x", headers = { ["X-Api-Key"] = "mine" } })
    assert.res_status(403, res)
    assert.equal("bad_api_key", fn.last_request().auth)
  end)

  it("signs for a function URL (service lambda)", function()
    local doc = json(send({ method = "PUT", path = "/fnurl/x/y",
                            query = "b=2&a=1",
                            headers = { ["Content-Type"] =
                                        "application/json" },
                            body = '{"k":"v"}' }))
    assert.equal("sigv4", doc.auth)
    assert.equal("lambda", doc.sigv4.service)
    assert.equal("us-east-1", doc.sigv4.region)
    assert.equal(AWS.access_key, doc.sigv4.access_key)
    assert.equal("/x/y", doc.path)
    assert.equal("a=1&b=2", doc.query)
    assert.equal('{"k":"v"}', doc.body)
  end)

  it("signs for API Gateway (execute-api) a query needing encoding",
     function()
    local doc = json(send({
      path = "/apigw/p",
      query = "with%20space=a%2Fb%20c&multi=m2&multi=m1&flag&a=*&a-=x",
    }))
    assert.equal("sigv4", doc.auth)
    assert.equal("execute-api", doc.sigv4.service)
    assert.equal("a=%2A&a-=x&flag=&multi=m1&multi=m2"
                 .. "&with%20space=a%2Fb%20c", doc.query)
    assert.same({ "m1", "m2" }, doc.args.multi)
  end)

  it("passes the platform's 403 for a wrong secret", function()
    local body = json(send({ path = "/badiam" }), 403)
    assert.matches("signature we calculated", body.message, nil, true)
    assert.equal("bad_sigv4", fn.last_request().auth)
  end)

  it("leaves a client's Authorization unsigned", function()
    local res = send({ path = "/fnurl/z",
                       headers = { Authorization = "Bearer client" } })
    assert.res_status(403, res)
    local r = fn.last_request()
    assert.equal("Bearer client", r.headers["authorization"])
  end)

  it("returns the platform's status, headers and body as they are",
     function()
    local res = send({ path = "/aws/st",
                       headers = { ["X-Mock-Status"] = "201" } })
    local doc = json(res, 201)
    assert.equal("/prod/st", doc.path)
    assert.matches("application/json", res.headers["Content-Type"], nil,
                   true)
  end)

  it("needs authorization when the platform does", function()
    local body = json(send({ path = "/noauth" }), 403)
    assert.equal("Forbidden", body.message)
  end)

  it("verifies TLS against lua_ssl_trusted_certificate", function()
    local doc = json(send({ path = "/tls/a" }))
    assert.equal("/prod/a", doc.path)
    assert.is_true(tls.last_request().tls)
  end)

  it("refuses a certificate nobody vouches for (502)", function()
    json(send({ path = "/rogue" }), 502)
    assert.equal(0, #rogue.requests())
  end)

  it("accepts it with ssl_verify = false", function()
    assert.equal("/", json(send({ path = "/rogueok" })).path)
  end)

  it("gives 504 within the timeout when the platform is slow",
     function()
    local t0 = helpers.now()
    local body = json(send({ path = "/slow",
                             headers = { ["X-Mock-Sleep"] = "4" } }), 504)
    local elapsed = helpers.now() - t0
    assert.matches("did not answer within 1000 ms", body.message, nil, true)
    assert.is_true(elapsed >= 0.9 and elapsed < 2.5,
                   "answered after " .. elapsed .. " s")
  end)

  it("gives 502 when the platform is down", function()
    local body = json(send({ path = "/down" }), 502)
    assert.equal("The function could not be reached", body.message)
  end)
end)
