-- Router of the real gateway: Kong's traditional_compatible matching and
-- priorities, strip_path / service path joining, preserve_host, and the
-- answers the gateway gives itself (404 no route, 503 no service, 426
-- https only) in the formats chosen by Accept.
--
-- Every route has its own service whose path names it, so the mock
-- upstream's echo of the path tells which route matched.

local helpers = require "spec.helpers"
local cjson = require "cjson"


local REQ_ID = "^" .. string.rep("%x", 32) .. "$"
local NO_ROUTE = "no Route matched with those values"


local function svc(name, url, route)
  route.name = route.name or name
  return {
    name = name,
    url = url,
    routes = { route },
  }
end


describe("router", function()
  local mock, client

  -- The upstream path a request ended on (nil, status when not 200).
  local function upstream_path(method, path, headers)
    local res = assert(client:send({
      method = method,
      path = path,
      headers = headers,
    }))
    local body = assert(res:read_body())
    if res.status ~= 200 then
      return nil, res.status, body
    end
    local echo = cjson.decode(body)
    return echo.path, echo
  end

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    local u = mock.url
    assert(helpers.start_kong({
      declarative_config = {
        _format_version = "3.0",
        services = {
          -- longer prefix wins
          svc("short", u .. "/short", { paths = { "/pr" } }),
          svc("long", u .. "/long", { paths = { "/pr/longer" } }),
          -- regex beats prefix
          svc("rxprefix", u .. "/rxprefix", { paths = { "/rx" } }),
          svc("rxregex", u .. "/rxregex", { paths = { [[~/rx/\d+$]] } }),
          -- regex_priority among regexes
          svc("rplow", u .. "/rplow", { paths = { "~/rp/abc$" },
                                        regex_priority = 1 }),
          svc("rphigh", u .. "/rphigh", { paths = { "~/rp/[a-z]+$" },
                                          regex_priority = 5 }),
          svc("rqhigh", u .. "/rqhigh", { paths = { "~/rq/abc$" },
                                          regex_priority = 10 }),
          svc("rqlow", u .. "/rqlow", { paths = { "~/rq/[a-z]+$" } }),
          -- hosts
          svc("hexact", u .. "/hexact", { paths = { "/h" },
                                          hosts = { "exact.test" } }),
          svc("hwild", u .. "/hwild", { paths = { "/h" },
                                        hosts = { "*.wild.test" } }),
          svc("hwild2", u .. "/hwild2", { paths = { "/h" },
                                          hosts = { "wild2.*" } }),
          svc("hplain", u .. "/hplain", { paths = { "/h" },
                                          hosts = { "x.both.test" } }),
          svc("hbothwild", u .. "/hbothwild",
              { paths = { "/h" }, hosts = { "*.both.test" } }),
          svc("hport", u .. "/hport", { paths = { "/h" },
                                        hosts = { "port.test:9999" } }),
          svc("hany", u .. "/hany", { paths = { "/h" } }),
          svc("honly", u .. "/honly", { hosts = { "only-host.test" } }),
          -- methods
          svc("mpost", u .. "/mpost", { paths = { "/m" },
                                        methods = { "POST", "PUT" } }),
          svc("many", u .. "/many", { paths = { "/m" } }),
          svc("monly", u .. "/monly", { methods = { "DELETE" },
                                        paths = { "/xmonly" } }),
          -- headers
          svc("hdv2", u .. "/hdv2", { paths = { "/hd" },
                                      headers = { ["x-version"] =
                                                    { "v2", "v2.1" } } }),
          svc("hdv3", u .. "/hdv3", { paths = { "/hd" },
                                      headers = { ["x-version"] =
                                                    { [[~*^v3\.\d$]] } } }),
          svc("hdtwo", u .. "/hdtwo", { paths = { "/hd" },
                                        headers = { ["x-a"] = { "1" },
                                                    ["x-b"] = { "1" } } }),
          svc("hdany", u .. "/hdany", { paths = { "/hd" } }),
          svc("hdonly", u .. "/hdonly", { paths = { "/xhdonly" },
                                          headers = { ["x-need"] =
                                                        { "yes" } } }),
          -- strip_path and the service path (Kong's examples)
          svc("strip", u .. "/s", { paths = { "/r" } }),
          svc("nostrip", u .. "/s", { paths = { "/nr" },
                                      strip_path = false }),
          svc("nostripslash", u .. "/s/", { paths = { "/ns" },
                                            strip_path = false }),
          svc("stripslash", u .. "/s/", { paths = { "/rs" } }),
          svc("striproot", u, { paths = { "/root" } }),
          svc("stripregex", u .. "/s",
              { paths = { [[~/re/(?<id>\d+)]] } }),
          -- preserve_host
          svc("preserve", u .. "/preserve", { paths = { "/ph" },
                                              preserve_host = true }),
          svc("nopreserve", u .. "/nopreserve", { paths = { "/nph" } }),
          -- https only
          svc("secure", u .. "/secure", { paths = { "/secure" },
                                          protocols = { "https" } }),
        },
        routes = {
          { name = "orphan", paths = { "/orphan" } },
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
    client = helpers.proxy_client(5000)
  end)

  after_each(function()
    if client then
      client:close()
    end
  end)


  describe("paths", function()
    it("the longer prefix wins", function()
      assert.equal("/long/x", upstream_path("GET", "/pr/longer/x"))
      assert.equal("/long", upstream_path("GET", "/pr/longer"))
      assert.equal("/short/x", upstream_path("GET", "/pr/x"))
      assert.equal("/short/longe", upstream_path("GET", "/pr/longe"))
      -- a prefix is a string prefix, not a segment prefix; the rest is
      -- joined with a slash (Kong's path_handling v0)
      assert.equal("/short/x", upstream_path("GET", "/prx"))
    end)

    it("a regex path beats a prefix path", function()
      assert.equal("/rxregex", upstream_path("GET", "/rx/123"))
      assert.equal("/rxprefix/abc", upstream_path("GET", "/rx/abc"))
      -- the regex is anchored at the end here: no match, prefix wins
      assert.equal("/rxprefix/123/x", upstream_path("GET", "/rx/123/x"))
    end)

    it("regex_priority orders regex routes", function()
      -- both match; the higher regex_priority wins even though the other
      -- is more specific
      assert.equal("/rphigh", upstream_path("GET", "/rp/abc"))
      assert.equal("/rphigh", upstream_path("GET", "/rp/xyz"))
      assert.equal("/rqhigh", upstream_path("GET", "/rq/abc"))
      assert.equal("/rqlow", upstream_path("GET", "/rq/xyz"))
    end)

    it("matches the normalized path", function()
      assert.equal("/long/x", (upstream_path("GET", "/%70r/longer/x")))
      assert.equal("/long/x", (upstream_path("GET", "/a/../pr/longer/x")))
      assert.equal("/long/x", (upstream_path("GET", "/pr/./longer/x")))
      assert.equal("/long/x", (upstream_path("GET", "//pr//longer/x")))
    end)

    it("a regex is anchored at the start", function()
      local path, status = upstream_path("GET", "/zz/rq/abc")
      assert.is_nil(path)
      assert.equal(404, status)
    end)
  end)


  describe("hosts", function()
    it("matches exact and wildcard hosts", function()
      assert.equal("/hexact", upstream_path("GET", "/h",
                                            { Host = "exact.test" }))
      assert.equal("/hwild", upstream_path("GET", "/h",
                                           { Host = "a.wild.test" }))
      assert.equal("/hwild", upstream_path("GET", "/h",
                                           { Host = "a.b.wild.test" }))
      assert.equal("/hwild2", upstream_path("GET", "/h",
                                            { Host = "wild2.example.org" }))
      -- the bare domain is not covered by *.wild.test
      assert.equal("/hany", upstream_path("GET", "/h",
                                          { Host = "wild.test" }))
      assert.equal("/hany", upstream_path("GET", "/h",
                                          { Host = "other.test" }))
    end)

    it("matches hosts case-insensitively and ignores the port", function()
      assert.equal("/hexact", upstream_path("GET", "/h",
                                            { Host = "EXACT.Test" }))
      assert.equal("/hexact", upstream_path("GET", "/h",
                                            { Host = "exact.test:8080" }))
      assert.equal("/hwild", upstream_path("GET", "/h",
                                           { Host = "a.wild.test:1" }))
    end)

    it("a plain host beats a wildcard", function()
      assert.equal("/hplain", upstream_path("GET", "/h",
                                            { Host = "x.both.test" }))
      assert.equal("/hbothwild", upstream_path("GET", "/h",
                                               { Host = "y.both.test" }))
    end)

    it("a host with a port matches that port only", function()
      assert.equal("/hport", upstream_path("GET", "/h",
                                           { Host = "port.test:9999" }))
      assert.equal("/hany", upstream_path("GET", "/h",
                                          { Host = "port.test:9998" }))
    end)

    it("a hosts-only route matches any path", function()
      assert.equal("/honly/some/where",
                   upstream_path("GET", "/some/where",
                                 { Host = "only-host.test" }))
      local path, status = upstream_path("GET", "/some/where",
                                         { Host = "not-only-host.test" })
      assert.is_nil(path)
      assert.equal(404, status)
    end)
  end)


  describe("methods and headers", function()
    it("a route with methods beats one without", function()
      assert.equal("/mpost", upstream_path("POST", "/m"))
      assert.equal("/mpost", upstream_path("PUT", "/m"))
      assert.equal("/many", upstream_path("GET", "/m"))
      assert.equal("/many", upstream_path("PATCH", "/m"))
    end)

    it("methods restrict a route", function()
      assert.equal("/monly", upstream_path("DELETE", "/xmonly"))
      local path, status = upstream_path("GET", "/xmonly")
      assert.is_nil(path)
      assert.equal(404, status)
    end)

    it("matches header values, case-insensitively, and ~* regexes",
       function()
      assert.equal("/hdv2", upstream_path("GET", "/hd",
                                          { ["X-Version"] = "v2" }))
      assert.equal("/hdv2", upstream_path("GET", "/hd",
                                          { ["X-Version"] = "V2.1" }))
      assert.equal("/hdv3", upstream_path("GET", "/hd",
                                          { ["X-Version"] = "v3.7" }))
      assert.equal("/hdv3", upstream_path("GET", "/hd",
                                          { ["X-Version"] = "V3.1" }))
      assert.equal("/hdany", upstream_path("GET", "/hd",
                                           { ["X-Version"] = "v3.10" }))
      assert.equal("/hdany", upstream_path("GET", "/hd",
                                           { ["X-Version"] = "v2.2" }))
      assert.equal("/hdany", upstream_path("GET", "/hd"))
    end)

    it("all headers of a route must match; more headers win", function()
      assert.equal("/hdtwo", upstream_path("GET", "/hd", {
        ["X-A"] = "1", ["X-B"] = "1", ["X-Version"] = "v2",
      }))
      assert.equal("/hdv2", upstream_path("GET", "/hd", {
        ["X-A"] = "1", ["X-Version"] = "v2",
      }))
      assert.equal("/hdany", upstream_path("GET", "/hd", { ["X-A"] = "1" }))
    end)

    it("a required header restricts a route", function()
      assert.equal("/hdonly", upstream_path("GET", "/xhdonly",
                                            { ["X-Need"] = "yes" }))
      local path, status = upstream_path("GET", "/xhdonly",
                                         { ["X-Need"] = "no" })
      assert.is_nil(path)
      assert.equal(404, status)
    end)
  end)


  describe("strip_path and the service path", function()
    it("follows Kong's examples", function()
      -- service /s, route /r: /r/x -> /s/x; without strip -> /s/r/x
      assert.equal("/s/x", upstream_path("GET", "/r/x"))
      assert.equal("/s/nr/x", upstream_path("GET", "/nr/x"))
      -- /r with strip -> /s
      assert.equal("/s", upstream_path("GET", "/r"))
    end)

    it("keeps a trailing slash and merges slashes", function()
      assert.equal("/s/x/", upstream_path("GET", "/r/x/"))
      assert.equal("/s/", upstream_path("GET", "/r/"))
      -- service path ending with / and no strip: no double slash
      assert.equal("/s/ns/x", upstream_path("GET", "/ns/x"))
      -- service path ending with / and strip
      assert.equal("/s/x", upstream_path("GET", "/rs/x"))
      -- no service path
      assert.equal("/x/y", upstream_path("GET", "/root/x/y"))
      assert.equal("/", upstream_path("GET", "/root"))
    end)

    it("strips the whole regex match", function()
      assert.equal("/s/x", upstream_path("GET", "/re/42/x"))
      assert.equal("/s", upstream_path("GET", "/re/42"))
    end)

    it("keeps the query string", function()
      local path, echo = upstream_path("GET", "/r/x?a=1&b=%2F")
      assert.equal("/s/x", path)
      assert.equal("/s/x?a=1&b=%2F", echo.uri)
    end)
  end)


  describe("preserve_host", function()
    it("sends the client's Host when set, the service's otherwise",
       function()
      local _, echo = upstream_path("GET", "/ph", { Host = "front.test" })
      assert.equal("front.test", echo.headers.host)
      _, echo = upstream_path("GET", "/nph", { Host = "front.test" })
      assert.equal("127.0.0.1:" .. mock.port, echo.headers.host)
    end)
  end)


  describe("answers of the gateway itself", function()
    it("404 JSON when no route matches", function()
      local res = assert(client:get("/definitely/not/routed"))
      local body = assert.res_status(404, res)
      assert.equal("application/json; charset=utf-8",
                   res.headers["Content-Type"])
      local json = cjson.decode(body)
      assert.equal(NO_ROUTE, json.message)
      assert.matches(REQ_ID, json.request_id)
      assert.equal(res.headers["X-Kong-Request-Id"], json.request_id)
      assert.matches("^sluice/%d", res.headers["Server"])
      assert.matches("^%d+$", res.headers["X-Kong-Response-Latency"])
      assert.is_nil(res.headers["Via"])
      assert.is_nil(res.headers["X-Powered-By"])
      assert.equal(tostring(#body), res.headers["Content-Length"])
      -- the connection stays usable
      assert.equal("/long/x", upstream_path("GET", "/pr/longer/x"))
      assert.equal(1, client.connects)
    end)

    it("404 follows Accept: text/plain", function()
      local res = assert(client:get("/nowhere", {
        headers = { Accept = "text/plain" },
      }))
      local body = assert.res_status(404, res)
      assert.matches("^text/plain", res.headers["Content-Type"])
      assert.matches(NO_ROUTE, body, 1, true)
      assert.matches(res.headers["X-Kong-Request-Id"], body, 1, true)
      assert.is_nil(body:find("{", 1, true))
    end)

    it("404 follows Accept: text/html", function()
      local res = assert(client:get("/nowhere", {
        headers = { Accept = "text/html,application/xhtml+xml;q=0.9" },
      }))
      local body = assert.res_status(404, res)
      assert.matches("^text/html", res.headers["Content-Type"])
      assert.matches(NO_ROUTE, body, 1, true)
      assert.matches("<html", body:lower(), 1, true)
    end)

    it("404 follows Accept: application/xml", function()
      local res = assert(client:get("/nowhere", {
        headers = { Accept = "application/xml" },
      }))
      local body = assert.res_status(404, res)
      assert.matches("xml", res.headers["Content-Type"])
      assert.matches("<?xml", body, 1, true)
      assert.matches(NO_ROUTE, body, 1, true)
    end)

    it("404 is JSON for Accept: */*", function()
      local res = assert(client:get("/nowhere", {
        headers = { Accept = "*/*" },
      }))
      local body = assert.res_status(404, res)
      assert.equal("application/json; charset=utf-8",
                   res.headers["Content-Type"])
      assert.equal(NO_ROUTE, cjson.decode(body).message)
    end)

    it("404 for HEAD has no body", function()
      assert(client:send_raw("HEAD /nowhere HTTP/1.1\r\nHost: x\r\n\r\n"
                             .. "GET /r/x HTTP/1.1\r\nHost: x\r\n\r\n"))
      local res = assert(client:read_response({ method = "HEAD" }))
      assert.equal(404, res.status)
      res = assert(client:read_response({ method = "GET" }))
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("/s/x", echo.path)
    end)

    it("503 for a route without a service", function()
      local res = assert(client:get("/orphan/x"))
      local body = assert.res_status(503, res)
      local json = cjson.decode(body)
      assert.equal("no Service found with those values", json.message)
      assert.matches(REQ_ID, json.request_id)
      assert.matches("^application/json", res.headers["Content-Type"])
    end)

    it("426 for http on an https-only route", function()
      local res = assert(client:get("/secure/x"))
      local body = assert.res_status(426, res)
      local json = cjson.decode(body)
      assert.equal("Please use HTTPS protocol", json.message)
      assert.equal("TLS/1.2, HTTP/1.1", res.headers["Upgrade"])
    end)

    it("426 carries Connection: Upgrade", function()
      local res = assert(client:get("/secure/x"))
      assert.res_status(426, res)
      assert.matches("Upgrade", res.headers["Connection"], 1, true)
    end)

    it("426 follows Accept: text/plain", function()
      local res = assert(client:get("/secure/x", {
        headers = { Accept = "text/plain" },
      }))
      local body = assert.res_status(426, res)
      assert.matches("^text/plain", res.headers["Content-Type"])
      assert.matches("Please use HTTPS protocol", body, 1, true)
    end)
  end)
end)
