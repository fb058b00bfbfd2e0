-- sluice.aws.sigv4 inside a real gateway: busted's luajit has no
-- sl_ffi_sigv4_* symbols, so the Lua API is driven through a route whose
-- pre-function (untrusted_lua = on) calls it and answers the result as
-- JSON. Checked against the AWS suite files (canonical request, string to
-- sign, Authorization for all 34 cases) and against the independent
-- verifier in sigv4_ref.lua; then a signed request is proxied to the mock
-- upstream and verified from what the upstream actually received.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local ref = require "spec.04-plugins.50-sigv4.sigv4_ref"


local SUITE = ref.suite_dir(helpers.ROOT)


-- POST {fn, opts} -> { result, err, raised, opts_after, same }
local API_FN = [[
return function()
  local cjson = require "cjson.safe"
  local sigv4 = require "sluice.aws.sigv4"
  local req = cjson.decode(kong.request.get_raw_body() or "")
  if type(req) ~= "table" or type(sigv4[req.fn]) ~= "function" then
    return kong.response.exit(400, { message = "bad request" })
  end
  local opts = req.opts
  local ok, a, b = pcall(sigv4[req.fn], opts)
  return kong.response.exit(200, {
    raised = not ok and tostring(a) or nil,
    result = ok and a or nil,
    err = ok and b or nil,
    same = ok and type(opts) == "table" and type(a) == "table"
           and a == opts.headers or false,
    opts_after = opts,
  })
end
]]


-- Signs the upstream request (path from X-Path, the client's query and
-- body, the token from X-Token) for the mock upstream, then proxies.
local E2E_FN = [[
return function()
  local sigv4 = require "sluice.aws.sigv4"
  local path = kong.request.get_header("X-Path")
  local query, err = sigv4.canonical_query(kong.request.get_raw_query())
  if not query then
    return kong.response.exit(500, { err = err })
  end
  local h
  h, err = sigv4.sign({
    method = kong.request.get_method(),
    host = "127.0.0.1", port = %d, tls = false,
    path = path,
    query = query,
    headers = {
      ["Content-Type"] = kong.request.get_header("Content-Type"),
      ["X-Amz-Invocation-Type"] = "RequestResponse",
      ["X-Amz-Client-Context"] = "  e30=  ",
      ["User-Agent"] = "sluice-spec",
    },
    body = kong.request.get_raw_body() or "",
    region = "eu-west-3", service = "lambda",
    access_key = "AKIDE2E", secret_key = "e2e/secret+key",
    session_token = kong.request.get_header("X-Token"),
    content_sha256_header = kong.request.get_header("X-Sha") == "1",
  })
  if not h then
    return kong.response.exit(500, { err = err })
  end
  kong.service.request.clear_header("X-Path")
  for k, v in pairs(h) do
    kong.service.request.set_header(k, v)
  end
  kong.service.request.set_path(path)
  kong.service.request.set_raw_query(query)
end
]]


local function suite_opts(c)
  local req = assert(ref.read(c.dir .. "/" .. c.name .. ".req"))
  local creq = assert(ref.read(c.dir .. "/" .. c.name .. ".creq"))
  local sreq = ref.read(c.dir .. "/" .. c.name .. ".sreq") or ""
  local r = ref.parse_req(req)
  local headers, host = {}, nil
  for _, h in ipairs(r.headers) do
    local name, value = h[1], h[2]
    if name:lower() == "host" then
      host = value
    end
    local cur = headers[name]
    if cur == nil then
      headers[name] = value
    elseif type(cur) == "table" then
      cur[#cur + 1] = value
    else
      headers[name] = { cur, value }
    end
  end
  local opts = {
    method = r.method, host = host, path = r.path, query = r.query,
    headers = headers, body = r.body, region = "us-east-1",
    service = "service", access_key = ref.AKID, secret_key = ref.SECRET,
    timestamp = ref.TIMESTAMP,
  }
  local tok = creq:match("\nx%-amz%-security%-token:([^\n]*)")
  if tok then
    opts.session_token = tok
  else
    tok = sreq:match("\nX%-Amz%-Security%-Token:([^\n]*)")
    if tok then
      opts.session_token = tok
      opts.session_token_after = true
    end
  end
  return opts
end


describe("sluice.aws.sigv4 in the gateway", function()
  local client, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    assert(helpers.start_kong({
      plugins = "bundled",
      untrusted_lua = "on",
      client_body_buffer_size = "1m",
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "mock", url = mock.url, routes = {
            { name = "api", paths = { "/sigv4" }, plugins = {
              { name = "pre-function", config = { access = { API_FN } } },
            } },
            { name = "e2e", paths = { "/e2e" }, plugins = {
              { name = "pre-function",
                config = { access = { E2E_FN:format(mock.port) } } },
            } },
          } },
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
    client = helpers.proxy_client()
  end)

  after_each(function()
    if client then
      client:close()
      client = nil
    end
  end)


  local function call(fn, opts)
    local res = assert(client:send {
      method = "POST",
      path = "/sigv4",
      headers = { ["Content-Type"] = "application/json" },
      body = cjson.encode({ fn = fn, opts = opts }),
    })
    local out = cjson.decode(assert.res_status(200, res))
    assert.is_nil(out.raised, "raised: " .. tostring(out.raised))
    return out.result, out.err, out
  end


  local function base(extra)
    local o = {
      method = "GET", host = "example.amazonaws.com", path = "/",
      region = "us-east-1", service = "service", access_key = ref.AKID,
      secret_key = ref.SECRET, timestamp = ref.TIMESTAMP,
    }
    for k, v in pairs(extra or {}) do
      o[k] = v
    end
    return o
  end


  describe("the AWS suite through debug_sign", function()
    if not SUITE then
      io.stderr:write(ref.SKIP, "\n")
      it("runs the suite", function()
        pending(ref.SKIP)
      end)
      return
    end

    local cases = ref.cases(SUITE)
    it("has 34 cases", function()
      assert.equal(34, #cases)
    end)

    for _, c in ipairs(cases) do
      it(c.rel, function()
        local opts = suite_opts(c)
        local parts, err = call("debug_sign", opts)
        assert.is_nil(err)
        local base_path = c.dir .. "/" .. c.name
        assert.equal(ref.read(base_path .. ".creq"), parts.canonical_request)
        assert.equal(ref.read(base_path .. ".sts"), parts.string_to_sign)
        local authz = ref.read(base_path .. ".authz"):gsub("\n$", "")
        assert.equal(authz, parts.authorization)
        assert.equal(authz, parts.headers.Authorization)
        assert.equal("20150830T123600Z", parts.headers["X-Amz-Date"])
      end)
    end
  end)


  describe("sign", function()
    it("get-vanilla: the documented signature, a new headers table", function()
      local input_headers = { ["X-Custom"] = "  a   b  " }
      local h, err, out = call("sign", base({ headers = input_headers }))
      assert.is_nil(err)
      assert.is_false(out.same)
      -- the caller's table is left as it was
      assert.same(input_headers, out.opts_after.headers)
      assert.equal("example.amazonaws.com", h.Host)
      assert.equal("20150830T123600Z", h["X-Amz-Date"])
      assert.equal("  a   b  ", h["X-Custom"])
      assert.is_nil(h["X-Amz-Security-Token"])
      assert.is_nil(h["X-Amz-Content-Sha256"])
      local a = ref.parse_authorization(h.Authorization)
      assert.same({ "host", "x-amz-date", "x-custom" }, a.signed)
      local want = ref.sign({
        method = "GET", path = "/", query = "",
        headers = { host = "example.amazonaws.com",
                    ["x-amz-date"] = "20150830T123600Z",
                    ["x-custom"] = "a b" },
        signed = a.signed, payload = ref.sha256_hex(""),
        amz_date = "20150830T123600Z", region = "us-east-1",
        service = "service", secret = ref.SECRET,
      })
      assert.equal(want.signature, a.signature)
    end)

    it("without a custom header, get-vanilla's published signature",
       function()
      local h = call("sign", base())
      assert.equal("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/"
                   .. "us-east-1/service/aws4_request, SignedHeaders=host;"
                   .. "x-amz-date, Signature=5fa00fa31553b73ebf1942676e8629"
                   .. "1e8372ff2a2260956d9b8aae1d763fbf31", h.Authorization)
    end)

    it("Host carries the port unless it is the scheme's default", function()
      local cases = {
        { { tls = true, port = 443 }, "h.test" },
        { { tls = true, port = 8443 }, "h.test:8443" },
        { { tls = false, port = 80 }, "h.test" },
        { { tls = false, port = 443 }, "h.test:443" },
        { { tls = false }, "h.test" },
        { { port = 9001 }, "h.test:9001" },
        { { port = "9002" }, "h.test:9002" },
      }
      for _, c in ipairs(cases) do
        local o = base(c[1])
        o.host = "h.test"
        local parts = call("debug_sign", o)
        assert.equal(c[2], parts.headers.Host)
        assert.matches("\nhost:" .. c[2]:gsub("%p", "%%%0") .. "\n",
                       parts.canonical_request)
      end
      -- a Host given by the caller is kept and signed as is
      local parts = call("debug_sign",
                         base({ headers = { host = "other.test:1" } }))
      assert.equal("other.test:1", parts.headers.host)
      assert.is_nil(parts.headers.Host)
      assert.matches("\nhost:other.test:1\n", parts.canonical_request,
                     nil, true)
    end)

    it("a session token is added and signed", function()
      local h = call("sign", base({ session_token = "TOKEN/+=" }))
      assert.equal("TOKEN/+=", h["X-Amz-Security-Token"])
      local a = ref.parse_authorization(h.Authorization)
      assert.same({ "host", "x-amz-date", "x-amz-security-token" }, a.signed)
      local want = ref.sign({
        method = "GET", path = "/", query = "",
        headers = { host = "example.amazonaws.com",
                    ["x-amz-date"] = "20150830T123600Z",
                    ["x-amz-security-token"] = "TOKEN/+=" },
        signed = a.signed, payload = ref.sha256_hex(""),
        amz_date = "20150830T123600Z", region = "us-east-1",
        service = "service", secret = ref.SECRET,
      })
      assert.equal(want.signature, a.signature)
      -- after signing: sent, not signed
      h = call("sign", base({ session_token = "TOKEN/+=",
                              session_token_after = true }))
      assert.equal("TOKEN/+=", h["X-Amz-Security-Token"])
      assert.same({ "host", "x-amz-date" },
                  ref.parse_authorization(h.Authorization).signed)
    end)

    it("replaces the caller's Authorization, X-Amz-Date, token", function()
      local h = call("sign", base({
        session_token = "T1",
        headers = { authorization = "Basic x", ["x-amz-date"] = "1",
                    ["X-AMZ-SECURITY-TOKEN"] = "stale" },
      }))
      assert.is_nil(h.authorization)
      assert.is_nil(h["x-amz-date"])
      assert.is_nil(h["X-AMZ-SECURITY-TOKEN"])
      assert.equal("T1", h["X-Amz-Security-Token"])
      assert.matches("^AWS4%-HMAC%-SHA256 ", h.Authorization)
    end)

    it("hop-by-hop headers are returned but not signed", function()
      local h = call("sign", base({ headers = {
        ["User-Agent"] = "ua", Connection = "keep-alive", TE = "trailers",
        ["X-Amzn-Trace-Id"] = "Root=1", ["Content-Type"] = "text/plain",
      } }))
      assert.equal("ua", h["User-Agent"])
      assert.equal("keep-alive", h.Connection)
      assert.same({ "content-type", "host", "x-amz-date" },
                  ref.parse_authorization(h.Authorization).signed)
    end)

    it("repeated headers: an array, joined with ',' in order", function()
      local parts = call("debug_sign", base({ headers = {
        ["X-Multi"] = { "b", " a  c ", "b" } } }))
      assert.matches("\nx-multi:b,a c,b\n", parts.canonical_request, nil,
                     true)
      assert.same({ "b", " a  c ", "b" }, parts.headers["X-Multi"])
    end)

    it("x-amz-content-sha256 on request, with the payload hash", function()
      local body = '{"hello":"world"}'
      local h = call("sign", base({ method = "POST", body = body,
                                    content_sha256_header = true }))
      assert.equal(ref.sha256_hex(body), h["X-Amz-Content-Sha256"])
      assert.same({ "host", "x-amz-content-sha256", "x-amz-date" },
                  ref.parse_authorization(h.Authorization).signed)
      h = call("sign", base({ service = "s3", unsigned_payload = true,
                              body = body, content_sha256_header = true }))
      assert.equal("UNSIGNED-PAYLOAD", h["X-Amz-Content-Sha256"])
    end)

    it("unsigned payload: UNSIGNED-PAYLOAD is the hash line", function()
      local parts = call("debug_sign", base({ unsigned_payload = true,
                                              body = "abc" }))
      assert.matches("\nUNSIGNED%-PAYLOAD$", parts.canonical_request)
      assert.equal("UNSIGNED-PAYLOAD", parts.payload_hash)
      local want = ref.sign({
        method = "GET", path = "/", query = "",
        headers = { host = "example.amazonaws.com",
                    ["x-amz-date"] = "20150830T123600Z" },
        signed = { "host", "x-amz-date" }, payload = "UNSIGNED-PAYLOAD",
        amz_date = "20150830T123600Z", region = "us-east-1",
        service = "service", secret = ref.SECRET,
      })
      assert.equal(want.canonical_request, parts.canonical_request)
      assert.equal(want.signature, parts.signature)
    end)

    it("a Lambda Invoke of a full ARN: %3A signed as %253A", function()
      local path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A"
                   .. "123456789012%3Afunction%3Amy-fn/invocations"
      local body = '{"k":"v"}'
      local parts = call("debug_sign", base({
        method = "post", host = "lambda.us-east-1.amazonaws.com",
        path = path, query = { Qualifier = "$LATEST" }, service = "lambda",
        headers = { ["Content-Type"] = "application/json",
                    ["X-Amz-Invocation-Type"] = "Event" },
        body = body,
      }))
      local lines = {}
      for l in (parts.canonical_request .. "\n"):gmatch("([^\n]*)\n") do
        lines[#lines + 1] = l
      end
      assert.equal("POST", lines[1])
      assert.equal("/2015-03-31/functions/arn%253Aaws%253Alambda%253A"
                   .. "us-east-1%253A123456789012%253Afunction%253Amy-fn/"
                   .. "invocations", lines[2])
      assert.equal("Qualifier=%24LATEST", lines[3])
      assert.equal("Qualifier=%24LATEST", parts.canonical_query)
      assert.equal(ref.sha256_hex(body), lines[#lines])
      assert.matches("Credential=AKIDEXAMPLE/20150830/us-east-1/lambda/"
                     .. "aws4_request, SignedHeaders=content-type;host;"
                     .. "x-amz-date;x-amz-invocation-type, ",
                     parts.authorization, nil, true)
      local want = ref.sign({
        method = "POST", path = path, query = "Qualifier=%24LATEST",
        headers = { host = "lambda.us-east-1.amazonaws.com",
                    ["content-type"] = "application/json",
                    ["x-amz-date"] = "20150830T123600Z",
                    ["x-amz-invocation-type"] = "Event" },
        signed = { "content-type", "host", "x-amz-date",
                   "x-amz-invocation-type" },
        payload = ref.sha256_hex(body), amz_date = "20150830T123600Z",
        region = "us-east-1", service = "lambda", secret = ref.SECRET,
      })
      assert.equal(want.canonical_request, parts.canonical_request)
      assert.equal(want.string_to_sign, parts.string_to_sign)
      assert.equal(want.signature, parts.signature)
    end)

    it("s3 paths are not normalized (normalize_path defaults to false)",
       function()
      local p = call("debug_sign", base({ service = "s3",
        path = "/my-object//example//photo.user" }))
      assert.matches("^GET\n/my%-object//example//photo%.user\n",
                     p.canonical_request)
      p = call("debug_sign", base({ service = "s3", normalize_path = true,
        path = "/my-object//example//photo.user" }))
      assert.matches("^GET\n/my%-object/example/photo%.user\n",
                     p.canonical_request)
      p = call("debug_sign", base({ normalize_path = false,
        path = "/a/./b/../c%20d" }))
      assert.matches("^GET\n/a/%./b/%.%./c%%20d\n", p.canonical_request)
    end)

    it("the date at midnight: scope and X-Amz-Date from one reading",
       function()
      -- 2015-08-30T23:59:59Z and one second later
      local p1 = call("debug_sign", base({ timestamp = 1440979199 }))
      local p2 = call("debug_sign", base({ timestamp = 1440979200 }))
      assert.equal("20150830T235959Z", p1.headers["X-Amz-Date"])
      assert.equal("20150831T000000Z", p2.headers["X-Amz-Date"])
      assert.matches("\n20150830/us-east-1/service/aws4_request\n",
                     p1.string_to_sign, nil, true)
      assert.matches("\n20150831/us-east-1/service/aws4_request\n",
                     p2.string_to_sign, nil, true)
      assert.matches("Credential=AKIDEXAMPLE/20150831/",
                     p2.authorization, nil, true)
      -- fractional seconds are dropped
      local p3 = call("debug_sign", base({ timestamp = 1440979199.9 }))
      assert.equal(p1.signature, p3.signature)
    end)

    it("timestamp defaults to now", function()
      local before = os.time()
      local h = call("sign", base({ timestamp = false }))
      -- false is refused; nil means now
      assert.is_nil(h)
      local o = base()
      o.timestamp = nil
      h = call("sign", o)
      local d = h["X-Amz-Date"]
      local t = os.time({ year = tonumber(d:sub(1, 4)),
                          month = tonumber(d:sub(5, 6)),
                          day = tonumber(d:sub(7, 8)),
                          hour = tonumber(d:sub(10, 11)),
                          min = tonumber(d:sub(12, 13)),
                          sec = tonumber(d:sub(14, 15)), isdst = false })
      -- os.time() of a UTC table: add the local offset back
      local now_utc = os.time(os.date("!*t", before))
      assert.is_true(math.abs(t - now_utc) <= 5, d)
    end)
  end)


  describe("presign", function()
    it("aws-c-auth get-vanilla (Expires=3600): the published signature",
       function()
      local url, err = call("presign", base({ expires = 3600 }))
      assert.is_nil(err)
      assert.equal("https://example.amazonaws.com/?X-Amz-Algorithm="
                   .. "AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F"
                   .. "20150830%2Fus-east-1%2Fservice%2Faws4_request"
                   .. "&X-Amz-Date=20150830T123600Z&X-Amz-Expires=3600"
                   .. "&X-Amz-SignedHeaders=host&X-Amz-Signature="
                   .. "e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e8"
                   .. "44b25b7192d3865d", url)
    end)

    it("expires defaults to 900; token, port and query in the URL",
       function()
      local o = base({ session_token = "T/1", tls = false, port = 9000,
                       path = "/bucket/key.txt", query = "versionId=3",
                       service = "s3", unsigned_payload = true })
      local url = call("presign", o)
      assert.matches("^http://example%.amazonaws%.com:9000/bucket/key%.txt%?",
                     url)
      assert.matches("X-Amz-Expires=900&", url, nil, true)
      assert.matches("X-Amz-Security-Token=T%2F1&", url, nil, true)
      assert.matches("&versionId=3&X%-Amz%-Signature=%x+$", url)
      -- the same through debug_sign, checked independently
      o.presign = true
      local parts = call("debug_sign", o)
      assert.equal(url, parts.url)
      local sig = url:match("X%-Amz%-Signature=(%x+)$")
      local want = ref.sign({
        method = "GET", path = "/bucket/key.txt", s3 = true,
        query = parts.canonical_query,
        headers = { host = "example.amazonaws.com:9000" },
        signed = { "host" }, payload = "UNSIGNED-PAYLOAD",
        amz_date = "20150830T123600Z", region = "us-east-1",
        service = "s3", secret = ref.SECRET,
      })
      assert.equal(want.canonical_request, parts.canonical_request)
      assert.equal(want.signature, sig)
    end)

    it("refuses a bad expires", function()
      for _, e in ipairs({ 0, 604801, 1.5, "900" }) do
        local url, err = call("presign", base({ expires = e }))
        assert.is_nil(url)
        assert.matches("^expires: ", err)
      end
    end)
  end)


  describe("bad input: nil and a message naming the field, never raised",
           function()
    local cases = {
      { "opts", nil, "^opts: table expected" },
      { "host", { host = false }, "^host: " },
      { "host missing", { host = "" }, "^host: required" },
      { "host with port", { host = "a.test:80" }, "^host: must not hold" },
      { "host with space", { host = "a b" }, "^host: invalid" },
      { "method", { method = 1 }, "^method: " },
      { "port", { port = 70000 }, "^port: " },
      { "tls", { tls = "yes" }, "^tls: " },
      { "path type", { path = 1 }, "^path: string expected" },
      { "relative path", { path = "a/b" }, "^path: must start with '/'" },
      { "path with query", { path = "/a?b" }, "^path: holds '%?'" },
      { "query type", { query = 5 }, "^query: string or table" },
      { "query value", { query = { a = { {} } } }, "^query: value of 'a'" },
      { "bad escape", { query = "a=%zz" }, "^query: bad percent" },
      { "headers type", { headers = "x" }, "^headers: table expected" },
      { "header value", { headers = { X = {} } }, "^headers: value of 'X'" },
      { "header CRLF", { headers = { X = "a\r\nB: c" } },
        "^headers: control character" },
      { "header name", { headers = { ["X Y"] = "1" } },
        "^headers: invalid character" },
      { "body", { body = {} }, "^body: string expected" },
      { "region", { region = "us/east" }, "^region: invalid" },
      { "service", { service = 3 }, "^service: string expected" },
      { "access_key", { access_key = "" }, "^access_key: required" },
      { "secret_key", { secret_key = nil, drop = "secret_key" },
        "^secret_key: required" },
      { "session_token", { session_token = "a b" }, "^session_token: " },
      { "timestamp", { timestamp = -1 }, "^timestamp: " },
      { "unsigned_payload", { unsigned_payload = 1 }, "^unsigned_payload: " },
      { "long path", { path = "/" .. ("a"):rep(8192) }, "^path: longer" },
      { "long token", { session_token = ("t"):rep(8193) },
        "^session_token: longer" },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local o
        if c[2] ~= nil then
          o = base(c[2])
          if c[2].drop then
            o[c[2].drop] = nil
            o.drop = nil
          end
        end
        local h, err = call("sign", o)
        assert.is_nil(h)
        assert.matches(c[3], err)
        assert.not_matches(ref.SECRET, err, nil, true)
      end)
    end

    it("more than 64 headers to sign", function()
      local hs = {}
      for i = 1, 64 do
        hs["X-H" .. i] = "v"
      end
      local h, err = call("sign", base({ headers = hs }))
      assert.is_nil(h)
      assert.matches("^headers: more than 64", err)
      hs["X-H64"] = nil
      h, err = call("sign", base({ headers = hs }))
      assert.is_nil(err)
      assert.equal(65, #ref.parse_authorization(h.Authorization).signed)
    end)

    it("large but valid inputs grow the buffers", function()
      local hs = {}
      for i = 1, 30 do
        hs["X-Big-" .. i] = ("v"):rep(1000)
      end
      local path = "/" .. ("%"):rep(8000)
      local parts, err = call("debug_sign", base({ headers = hs, path = path,
                                                   query = ("*"):rep(8000) }))
      assert.is_nil(err)
      assert.matches("^GET\n/" .. ("%%25"):rep(8000) .. "\n",
                     parts.canonical_request)
      assert.equal(3 * 8000 + 1, #parts.canonical_query)
    end)
  end)


  describe("canonical_query", function()
    it("string and table forms, as signed", function()
      local q = call("canonical_query", "b=2&a=x y&a=%2f&flag")
      assert.equal("a=%2F&a=x%20y&b=2&flag=", q)
      q = call("canonical_query", { Qualifier = "$LATEST", list = { 2, 1 },
                                    on = true, off = false })
      assert.equal("Qualifier=%24LATEST&list=1&list=2&on=", q)
      local parts = call("debug_sign", base({ query = "b=2&a=x y&a=%2f&flag" }))
      assert.equal("a=%2F&a=x%20y&b=2&flag=", parts.canonical_query)
      local _, err = call("canonical_query", "a=%4")
      assert.matches("^query: bad percent", err)
    end)
  end)


  describe("the signing-key cache", function()
    it("derives a key once per day, region, service and secret", function()
      call("cache_clear")
      call("sign", base())
      call("sign", base({ path = "/other" }))
      local s = call("cache_stats")
      assert.same({ hits = 1, misses = 1, entries = 1 }, s)
      call("sign", base({ timestamp = ref.TIMESTAMP + 86400 }))
      call("sign", base({ secret_key = "another" }))
      s = call("cache_stats")
      assert.same({ hits = 1, misses = 3, entries = 3 }, s)
      for i = 1, 20 do
        call("sign", base({ secret_key = "s" .. i }))
      end
      s = call("cache_stats")
      assert.equal(16, s.entries)
      -- an evicted key: derived again, same signature as the first time
      local h1 = call("sign", base({ secret_key = "another" }))
      call("cache_clear")
      local h2 = call("sign", base({ secret_key = "another" }))
      assert.equal(h1.Authorization, h2.Authorization)
      assert.same({ hits = 0, misses = 1, entries = 1 }, call("cache_stats"))
    end)
  end)


  describe("a signed request, as the upstream receives it", function()
    local function verify(echo, want_token)
      local a = assert(ref.parse_authorization(echo.headers.authorization),
                       echo.headers.authorization)
      assert.equal("AKIDE2E", a.access_key)
      assert.equal("eu-west-3", a.region)
      assert.equal("lambda", a.service)
      local path, query = echo.uri:match("^([^?]*)%??(.*)$")
      local want = ref.sign({
        method = echo.method, path = path, query = query,
        headers = echo.headers, signed = a.signed,
        payload = ref.sha256_hex(echo.body or ""),
        amz_date = echo.headers["x-amz-date"], region = "eu-west-3",
        service = "lambda", secret = "e2e/secret+key",
      })
      assert.equal(want.signature, a.signature)
      assert.equal(a.date8, echo.headers["x-amz-date"]:sub(1, 8))
      assert.equal(want_token, echo.headers["x-amz-security-token"])
      return a
    end

    it("POST with a body, a query and a token", function()
      local body = cjson.encode({ hello = "world", n = 1 })
      local res = assert(client:send {
        method = "POST",
        path = "/e2e?b=2&a=hello%20world&a=$x",
        headers = {
          ["Content-Type"] = "application/json",
          ["X-Path"] = "/request/fn%3Av1/invocations",
          ["X-Token"] = "FwoGZXIvYXdzE//token+==",
        },
        body = body,
      })
      local echo = cjson.decode(assert.res_status(200, res))
      assert.equal("/request/fn%3Av1/invocations", echo.path)
      assert.equal("a=%24x&a=hello%20world&b=2", echo.uri:match("%?(.*)$"))
      assert.equal(body, echo.body)
      assert.equal("127.0.0.1:" .. mock.port, echo.headers.host)
      local a = verify(echo, "FwoGZXIvYXdzE//token+==")
      assert.same({ "content-type", "host", "x-amz-client-context",
                    "x-amz-date", "x-amz-invocation-type",
                    "x-amz-security-token" }, a.signed)
      -- unsigned on the wire
      assert.equal("sluice-spec", echo.headers["user-agent"])
    end)

    it("GET without body or token, x-amz-content-sha256 asked", function()
      local res = assert(client:send {
        method = "GET",
        path = "/e2e",
        headers = { ["X-Path"] = "/request/a/./b/../c", ["X-Sha"] = "1" },
      })
      local echo = cjson.decode(assert.res_status(200, res))
      local a = verify(echo, nil)
      assert.equal(ref.sha256_hex(""), echo.headers["x-amz-content-sha256"])
      assert.truthy(table.concat(a.signed, ";"):find("x-amz-content-sha256",
                                                     1, true))
    end)

    it("a forged signature is caught by the verifier", function()
      local res = assert(client:send {
        method = "POST",
        path = "/e2e?x=1",
        headers = { ["X-Path"] = "/request", ["Content-Type"] = "text/plain" },
        body = "payload",
      })
      local echo = cjson.decode(assert.res_status(200, res))
      verify(echo, nil)
      echo.body = "payload tampered"
      assert.has_error(function()
        verify(echo, nil)
      end)
    end)
  end)
end)
