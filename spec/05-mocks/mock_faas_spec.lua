-- The mock function platforms (spec/fixtures/mock_faas, started through
-- spec/internal/mock_faas) behave as their README says, over real sockets:
-- the serverless plugin specs rely on them. Requests to the AWS mocks are
-- signed here by the pure-Lua signer of spec/fixtures/mock_faas/sigv4.lua,
-- which is itself checked against the AWS SigV4 suite
-- (SLUICE_SIGV4_SUITE, else ../shared/conformance/sigv4), and the mock's
-- own verifier is checked against the same suite.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local lfs = require "lfs"
local mime = require "mime"
local mf = require "spec.internal.mock_faas"


local sigv4 = mf.sigv4
local AWS = mf.AWS
local SESSION = {
  access_key = "ASIASLUICEMOCKSESS01",
  secret_key = "session/Secret+Key/for/the/mock/000000000",
  session_token = "FwoGZXIvYXdzEMOCK//session+token/value==",
}


-- Helpers ------------------------------------------------------------------


local function copy(t)
  local out = {}
  for k, v in pairs(t or {}) do
    out[k] = v
  end
  return out
end


-- One request on a fresh connection: res, body.
local function send(m, opts)
  local c = assert(m.client(opts.timeout, opts.client))
  local res = assert(c:send(opts))
  local body = res:read_body()
  c:close()
  return res, body
end


local function json(body)
  local v, err = cjson.decode(body)
  assert(v ~= nil, "not JSON (" .. tostring(err) .. "): " .. tostring(body))
  return v
end


local function expect(status, res, body)
  assert.equal(status, res.status, "body: " .. tostring(body))
  return body
end


-- Signs `opts` (method, path, query, headers, body) with `creds` (AWS by
-- default) for `service` and sends it to the mock.
local function signed(m, opts, creds, service, region)
  creds = creds or AWS
  local headers = copy(opts.headers)
  headers.Host = headers.Host or (m.host .. ":" .. m.port)
  local s = sigv4.sign({
    method = opts.method or "POST",
    path = opts.path,
    query = opts.query,
    headers = headers,
    body = opts.body or "",
    access_key = creds.access_key,
    secret_key = creds.secret_key,
    session_token = creds.session_token,
    region = region or "us-east-1",
    service = service or "lambda",
    time = opts.time,
  })
  local res, body = send(m, {
    method = opts.method or "POST",
    path = opts.path,
    query = s.query ~= "" and s.query or nil,
    headers = s.headers,
    body = opts.body,
    timeout = opts.timeout,
  })
  return res, body, s
end


local function invoke(m, fname, opts, creds)
  opts = opts or {}
  local o = copy(opts)
  o.path = "/2015-03-31/functions/" .. fname .. "/invocations"
  o.body = opts.body or "{}"
  return signed(m, o, creds)
end


local function xml_field(xml, name)
  return xml:match("<" .. name .. ">(.-)</" .. name .. ">")
end


local function basic(user_pass)
  return "Basic " .. mime.b64(user_pass)
end


-- The AWS SigV4 suite -------------------------------------------------------


local function suite_dir()
  local env = os.getenv("SLUICE_SIGV4_SUITE")
  local dirs = { helpers.ROOT .. "/../shared/conformance/sigv4" }
  if env and env ~= "" then
    dirs = { env }
  end
  for _, d in ipairs(dirs) do
    if lfs.attributes(d .. "/get-vanilla", "mode") then
      return d
    end
  end
  return nil
end


-- Every case folder of the suite: { name, dir } (a folder holding
-- <name>.req).
local function suite_cases(root)
  local cases = {}
  local function walk(dir, depth)
    for entry in lfs.dir(dir) do
      if entry ~= "." and entry ~= ".." then
        local p = dir .. "/" .. entry
        if lfs.attributes(p, "mode") == "directory" then
          if lfs.attributes(p .. "/" .. entry .. ".req", "mode") then
            cases[#cases + 1] = { name = entry, dir = p }
          end
          if depth < 2 then
            walk(p, depth + 1)
          end
        end
      end
    end
  end
  walk(root, 0)
  table.sort(cases, function(a, b) return a.dir < b.dir end)
  return cases
end


local function read_case(case, ext)
  return helpers.file.read(case.dir .. "/" .. case.name .. "." .. ext)
end


-- A .req file: request line split at the first and last space, header
-- lines (a line starting with blanks continues the previous one), body.
local function parse_req(text)
  local head, body = text:match("^(.-)\n\n(.*)$")
  head = head or text
  local lines = {}
  for line in (head .. "\n"):gmatch("(.-)\n") do
    lines[#lines + 1] = line
  end
  local req = { headers = {}, raw_lines = lines, body = body or "" }
  local rl = lines[1]
  req.method = rl:match("^(%S+) ")
  req.target = rl:match("^%S+ (.*) [^ ]+$")
  req.path, req.query = req.target:match("^([^?]*)%??(.*)$")
  for i = 2, #lines do
    local line = lines[i]
    if line:match("^[ \t]") then
      local last = req.headers[#req.headers]
      last[2] = last[2] .. " " .. line:match("^%s*(.-)%s*$")
    elseif line ~= "" then
      local name, value = line:match("^([^:]+):(.*)$")
      req.headers[#req.headers + 1] = { name, value }
    end
  end
  return req
end


local SUITE_KEY = "AKIDEXAMPLE"
local SUITE_SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


describe("mock_faas: SigV4 against the AWS suite", function()
  local root = suite_dir()
  if not root then
    it("needs the AWS SigV4 suite", function()
      pending("SigV4 suite not found: set SLUICE_SIGV4_SUITE to the "
              .. "conformance/sigv4 directory (looked in ../shared too)")
    end)
    return
  end

  local m

  lazy_setup(function()
    m = assert(mf.start({
      platform = "lambda-url",
      auth = "iam",
      credentials = { { access_key = SUITE_KEY, secret_key = SUITE_SECRET } },
      services = { "service" },
      max_skew = 0,
      strict_amz_headers = false,
    }))
  end)

  lazy_teardown(function()
    if m then
      m.stop()
    end
  end)


  -- The token a case signs with: the x-amz-security-token line of .creq.
  local function case_token(case)
    return read_case(case, "creq"):match("\nx%-amz%-security%-token:([^\n]+)")
  end


  -- The raw request the case describes, signed per .authz (plus the
  -- session token when the .sreq carries one) and framed for the wire.
  local function wire_request(case)
    local req = parse_req(read_case(case, "req"))
    local sreq = read_case(case, "sreq")
    local out = { req.raw_lines[1] }
    for i = 2, #req.raw_lines do
      if req.raw_lines[i] ~= "" then
        out[#out + 1] = req.raw_lines[i]
      end
    end
    local token = sreq:match("\n[Xx]%-[Aa]mz%-[Ss]ecurity%-[Tt]oken:([^\n]+)")
    if token and not read_case(case, "req"):lower()
                     :find("x-amz-security-token", 1, true) then
      out[#out + 1] = "X-Amz-Security-Token:" .. token
    end
    out[#out + 1] = "Authorization: " .. read_case(case, "authz")
    if #req.body > 0 then
      out[#out + 1] = "Content-Length: " .. #req.body
    end
    out[#out + 1] = "Connection: close"
    return table.concat(out, "\r\n") .. "\r\n\r\n" .. req.body, token
  end


  local function send_raw(data)
    local c = assert(m.client(5000))
    assert(c:send_raw(data))
    local res = assert(c:read_response({ method = "GET" }))
    local body = res:read_body()
    c:close()
    return res, body
  end


  local function use_token(token)
    m.set_config({ credentials = { { access_key = SUITE_KEY,
                                      secret_key = SUITE_SECRET,
                                      session_token = token } } })
  end


  it("get-vanilla: the Lua signer gives the suite's .creq, .sts, .authz",
     function()
    local case = { name = "get-vanilla", dir = root .. "/get-vanilla" }
    local req = parse_req(read_case(case, "req"))
    local s = sigv4.sign({
      method = req.method, path = req.path, query = req.query,
      headers = req.headers, body = req.body,
      access_key = SUITE_KEY, secret_key = SUITE_SECRET,
      region = "us-east-1", service = "service",
      amz_date = "20150830T123600Z",
    })
    assert.equal(read_case(case, "creq"), s.canonical_request)
    assert.equal(read_case(case, "sts"), s.string_to_sign)
    assert.equal(read_case(case, "authz"), s.authorization)
    assert.equal("5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d"
                 .. "763fbf31", s.signature)
  end)

  it("get-vanilla: the mock accepts the suite's signed request", function()
    use_token(nil)
    m.clear()
    local case = { name = "get-vanilla", dir = root .. "/get-vanilla" }
    local res, body = send_raw((wire_request(case)))
    expect(200, res, body)
    local rec = m.requests()[1]
    assert.is_true(rec.sigv4.ok)
    assert.equal(read_case(case, "creq"), rec.sigv4.canonical_request)
    assert.equal(read_case(case, "sts"), rec.sigv4.string_to_sign)
    assert.equal("sigv4", json(body).auth)
  end)

  it("get-vanilla: the mock rejects it with one signature digit changed",
     function()
    use_token(nil)
    local case = { name = "get-vanilla", dir = root .. "/get-vanilla" }
    local data = wire_request(case):gsub("Signature=5fa0", "Signature=5fa1")
    local res, body = send_raw(data)
    expect(403, res, body)
    assert.equal("InvalidSignatureException", res.headers["x-amzn-ErrorType"])
    assert.matches("^The request signature we calculated does not match",
                   json(body).message)
  end)

  describe("every case", function()
    for _, case in ipairs(suite_cases(root)) do
      it(case.name .. ": Lua signer matches .creq and .authz", function()
        local req = parse_req(read_case(case, "req"))
        local s = sigv4.sign({
          method = req.method, path = req.path, query = req.query,
          headers = req.headers, body = req.body,
          access_key = SUITE_KEY, secret_key = SUITE_SECRET,
          session_token = case_token(case),
          region = "us-east-1", service = "service",
          amz_date = "20150830T123600Z",
        })
        assert.equal(read_case(case, "creq"), s.canonical_request)
        assert.equal(read_case(case, "authz"), s.authorization)
      end)

      it(case.name .. ": the mock verifies it over a socket", function()
        if case.name == "get-space" then
          -- "GET /example space/ HTTP/1.1" is not an HTTP/1.1 request line
          pending("a raw space cannot travel in a request line")
          return
        end
        local data, token = wire_request(case)
        use_token(token)
        m.clear()
        local res, body = send_raw(data)
        expect(200, res, body)
        local rec = m.requests()[1]
        assert.equal(read_case(case, "creq"), rec.sigv4.canonical_request)
      end)
    end
  end)
end)


-- Lambda Invoke API -----------------------------------------------------------


describe("mock_faas: lambda", function()
  local m

  lazy_setup(function()
    m = assert(mf.start({
      platform = "lambda",
      tls = true,
      credentials = { AWS, SESSION },
      slow_seconds = 0.4,
      aliases = { live = "7" },
    }))
  end)

  lazy_teardown(function()
    if m then
      m.stop()
    end
  end)

  before_each(function()
    m.clear()
  end)


  describe("signature", function()
    it("accepts a correctly signed invoke and records the verdict",
       function()
      local res, body, s = invoke(m, "echo", { body = '{"a":1}' })
      expect(200, res, body)
      assert.equal('{"a":1}', body)
      local rec = m.requests()[1]
      assert.is_true(rec.sigv4.ok)
      assert.equal("lambda", rec.sigv4.service)
      assert.equal(AWS.access_key, rec.sigv4.access_key)
      assert.equal(s.canonical_request, rec.sigv4.canonical_request)
      assert.equal("echo", rec["function"])
      assert.is_true(rec.tls)
    end)

    it("rejects a request signed with the wrong secret", function()
      local res, body = invoke(m, "echo", nil, {
        access_key = AWS.access_key, secret_key = "not-the-secret" })
      expect(403, res, body)
      assert.equal("InvalidSignatureException",
                   res.headers["x-amzn-ErrorType"])
      assert.matches("^The request signature we calculated does not match "
                     .. "the signature you provided", json(body).message)
      assert.is_false(m.requests()[1].sigv4.ok)
    end)

    it("rejects a body changed after signing", function()
      local s = sigv4.sign({
        method = "POST", path = "/2015-03-31/functions/echo/invocations",
        headers = { Host = m.host .. ":" .. m.port }, body = '{"a":1}',
        access_key = AWS.access_key, secret_key = AWS.secret_key,
        region = "us-east-1", service = "lambda",
      })
      local res, body = send(m, {
        method = "POST", path = "/2015-03-31/functions/echo/invocations",
        headers = s.headers, body = '{"a":2}' })
      expect(403, res, body)
      assert.equal("InvalidSignatureException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("rejects a request without Authorization (403)", function()
      local res, body = send(m, {
        method = "POST", path = "/2015-03-31/functions/echo/invocations",
        body = "{}" })
      expect(403, res, body)
      assert.equal("MissingAuthenticationTokenException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("rejects a scope for another region or service", function()
      local res, body = signed(m, {
        path = "/2015-03-31/functions/echo/invocations", body = "{}" },
        AWS, "lambda", "eu-west-1")
      expect(403, res, body)
      assert.equal("InvalidSignatureException",
                   res.headers["x-amzn-ErrorType"])
      assert.matches("region", json(body).message)
      res, body = signed(m, {
        path = "/2015-03-31/functions/echo/invocations", body = "{}" },
        AWS, "execute-api")
      expect(403, res, body)
      assert.matches("service", json(body).message)
    end)

    it("rejects an unknown access key", function()
      local res, body = invoke(m, "echo", nil, {
        access_key = "AKIDUNKNOWN000000000", secret_key = AWS.secret_key })
      expect(403, res, body)
      assert.equal("UnrecognizedClientException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("rejects a request more than max_skew away from now", function()
      local res, body = invoke(m, "echo", { time = os.time() - 3600 })
      expect(403, res, body)
      assert.matches("Signature expired", json(body).message)
    end)

    it("wants the session token of temporary credentials, signed",
       function()
      local res, body = invoke(m, "echo", nil, SESSION)
      expect(200, res, body)
      local no_token = copy(SESSION)
      no_token.session_token = nil
      res, body = invoke(m, "echo", nil, no_token)
      expect(403, res, body)
      assert.equal("UnrecognizedClientException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("rejects an x-amz-* header that is not signed", function()
      local s = sigv4.sign({
        method = "POST", path = "/2015-03-31/functions/echo/invocations",
        headers = { Host = m.host .. ":" .. m.port }, body = "{}",
        access_key = AWS.access_key, secret_key = AWS.secret_key,
        region = "us-east-1", service = "lambda",
      })
      local h = copy(s.headers)
      h["X-Amz-Invocation-Type"] = "Event"
      local res, body = send(m, {
        method = "POST", path = "/2015-03-31/functions/echo/invocations",
        headers = h, body = "{}" })
      expect(403, res, body)
      assert.matches("x%-amz%-invocation%-type", json(body).message)
    end)

    it("verifies ARN names (%3A, signed as %253A) and Qualifier=%24LATEST",
       function()
      local arn = "arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3A"
                  .. "function%3Aecho"
      local res, body, s = signed(m, {
        path = "/2015-03-31/functions/" .. arn .. "/invocations",
        query = "Qualifier=%24LATEST", body = "{}" })
      expect(200, res, body)
      assert.matches("/functions/arn%253Aaws%253Alambda", s.canonical_request,
                     nil, true)
      assert.equal("$LATEST", res.headers["X-Amz-Executed-Version"])
      local rec = m.requests()[1]
      assert.equal("arn", rec.function_form)
      assert.equal("$LATEST", rec.qualifier)
    end)
  end)


  describe("invocation", function()
    it("RequestResponse: 200, request id, executed version, JSON",
       function()
      local res, body = invoke(m, "echo", {
        headers = { ["X-Amz-Invocation-Type"] = "RequestResponse" },
        body = '{"key":"value","list":[]}' })
      expect(200, res, body)
      assert.equal('{"key":"value","list":[]}', body)
      assert.matches("^%x+%-%x+%-%x+%-%x+%-%x+$",
                     res.headers["x-amzn-RequestId"])
      assert.equal("$LATEST", res.headers["X-Amz-Executed-Version"])
      assert.equal("application/json", res.headers["Content-Type"])
      assert.is_nil(res.headers["X-Amz-Function-Error"])
    end)

    it("Event: 202 with an empty body", function()
      local res, body = invoke(m, "echo", {
        headers = { ["X-Amz-Invocation-Type"] = "Event" } })
      expect(202, res, body)
      assert.equal("", body)
      assert.truthy(res.headers["x-amzn-RequestId"])
      assert.equal("Event", m.requests()[1].invocation_type)
    end)

    it("DryRun: 204", function()
      local res, body = invoke(m, "echo", {
        headers = { ["X-Amz-Invocation-Type"] = "DryRun" } })
      expect(204, res, body)
      assert.truthy(res.headers["x-amzn-RequestId"])
    end)

    it("Tail: X-Amz-Log-Result is a base64 log tail", function()
      local res, body = invoke(m, "echo", {
        headers = { ["X-Amz-Log-Type"] = "Tail" } })
      expect(200, res, body)
      local logs = mime.unb64(res.headers["X-Amz-Log-Result"])
      assert.matches("START RequestId: " .. res.headers["x-amzn-RequestId"]
                     :gsub("%-", "%%-"), logs)
      assert.matches("REPORT RequestId:", logs, nil, true)
      res = invoke(m, "echo")
      assert.is_nil(res.headers["X-Amz-Log-Result"])
    end)

    it("a version or alias qualifier sets X-Amz-Executed-Version",
       function()
      local res, body = signed(m, {
        path = "/2015-03-31/functions/echo/invocations", query = "Qualifier=3",
        body = "{}" })
      expect(200, res, body)
      assert.equal("3", res.headers["X-Amz-Executed-Version"])
      res, body = invoke(m, "echo:live")
      expect(200, res, body)
      assert.equal("7", res.headers["X-Amz-Executed-Version"])
    end)

    it("an unknown function: 404 ResourceNotFoundException", function()
      local res, body = invoke(m, "nope")
      expect(404, res, body)
      assert.equal("ResourceNotFoundException",
                   res.headers["x-amzn-ErrorType"])
      assert.matches("Function not found: arn:aws:lambda:us-east-1:"
                     .. "123456789012:function:nope", json(body).Message,
                     nil, true)
    end)

    it("a payload that is not JSON: 400", function()
      local res, body = invoke(m, "echo", { body = "not json" })
      expect(400, res, body)
      assert.equal("InvalidRequestContentException",
                   res.headers["x-amzn-ErrorType"])
    end)

    it("unhandled: 200 with X-Amz-Function-Error: Unhandled", function()
      local res, body = invoke(m, "unhandled")
      expect(200, res, body)
      assert.equal("Unhandled", res.headers["X-Amz-Function-Error"])
      local err = json(body)
      assert.truthy(err.errorMessage)
      assert.truthy(err.errorType)
    end)

    it("handled errors, and other names mapped onto the functions",
       function()
      local res, body = invoke(m, "handled")
      expect(200, res, body)
      assert.equal("Handled", res.headers["X-Amz-Function-Error"])
      m.set_config({ function_map = { functionWithUnhandledError =
                                        "unhandled" } })
      res, body = invoke(m, "functionWithUnhandledError")
      expect(200, res, body)
      assert.equal("Unhandled", res.headers["X-Amz-Function-Error"])
    end)

    it("slow: answers after slow_seconds", function()
      local t0 = helpers.now()
      local res, body = invoke(m, "slow", { body = '{"x":1}' })
      expect(200, res, body)
      assert.is_true(helpers.now() - t0 >= 0.35)
      assert.equal('{"x":1}', body)
    end)
  end)


  describe("proxy and malformed functions", function()
    it("proxy: a valid API Gateway response from the event's fields",
       function()
      local res, body = invoke(m, "proxy", { body = cjson.encode({
        status = 201, headers = { ["X-Custom"] = "yes" },
        multi_headers = { ["X-Multi"] = { "a", "b" } }, body = "hello" }) })
      expect(200, res, body)
      local out = json(body)
      assert.same({ statusCode = 201, headers = { ["X-Custom"] = "yes" },
                    multiValueHeaders = { ["X-Multi"] = { "a", "b" } },
                    body = "hello", isBase64Encoded = false }, out)
    end)

    it("proxy: base64 = true encodes the body", function()
      local res, body = invoke(m, "proxy", { body = cjson.encode({
        body = "binary?", base64 = true }) })
      expect(200, res, body)
      local out = json(body)
      assert.is_true(out.isBase64Encoded)
      assert.equal("binary?", mime.unb64(out.body))
      assert.equal(200, out.statusCode)
    end)

    it("proxy: an API Gateway event is controlled by its JSON body",
       function()
      local event = { version = "1.0", httpMethod = "POST", path = "/x",
                      body = cjson.encode({ status = 418 }),
                      isBase64Encoded = false }
      local res, body = invoke(m, "proxy", { body = cjson.encode(event) })
      expect(200, res, body)
      local out = json(body)
      assert.equal(418, out.statusCode)
      -- the default body is the event itself
      assert.equal("/x", json(out.body).path)
    end)

    it("malformed: invalid proxy responses by kind", function()
      local res, body = invoke(m, "malformed")
      expect(200, res, body)
      assert.falsy(pcall(cjson.decode, body))
      res, body = invoke(m, "malformed", {
        body = '{"kind":"status_string"}' })
      assert.equal("not-a-number", json(body).statusCode)
      res, body = invoke(m, "malformed", { body = '{"kind":"empty"}' })
      expect(200, res, body)
      assert.equal("", body)
    end)
  end)


  describe("TLS", function()
    it("verifies against its CA for localhost and 127.0.0.1", function()
      local res, body = send(m, { method = "GET", path = "/__mock/health",
                                  client = { ssl_verify = true } })
      expect(200, res, body)
      res, body = send(m, { method = "GET", path = "/__mock/health",
                            client = { ssl_verify = true,
                                       server_name = "127.0.0.1" } })
      expect(200, res, body)
    end)

    it("fails verification against another CA, and says so", function()
      local c, err = m.client(3000, { cafile = m.other_ca_cert })
      assert.is_nil(c)
      assert.matches("handshake", err)
      helpers.wait_until(function()
        return #m.tls_errors() > 0
      end, 5)
    end)
  end)


  describe("records", function()
    it("keeps method, path, query, headers and body; clear() forgets",
       function()
      local res, body = signed(m, {
        path = "/2015-03-31/functions/echo/invocations",
        query = "Qualifier=1",
        headers = { ["X-Amz-Client-Context"] = mime.b64('{"custom":1}') },
        body = '{"z":"\\u00e9"}' })
      expect(200, res, body)
      local list = m.requests()
      assert.equal(1, #list)
      local rec = list[1]
      assert.equal("POST", rec.method)
      assert.equal("/2015-03-31/functions/echo/invocations", rec.path)
      assert.equal("Qualifier=1", rec.query)
      assert.equal("1", rec.args.Qualifier)
      assert.equal('{"z":"\\u00e9"}', rec.body)
      assert.equal(mime.b64('{"z":"\\u00e9"}'), rec.body_base64)
      assert.equal(m.host .. ":" .. m.port, rec.headers.host)
      assert.same({ custom = 1 }, rec.client_context)
      assert.equal(200, rec.status)
      assert.equal("localhost", rec.sni)
      m.clear()
      assert.same({}, m.requests())
    end)
  end)
end)


-- Function URL / API Gateway --------------------------------------------------


describe("mock_faas: lambda-url", function()
  local m

  lazy_setup(function()
    m = assert(mf.start({ platform = "lambda-url", credentials = { AWS },
                          api_key = "the-api-key" }))
  end)

  lazy_teardown(function()
    if m then
      m.stop()
    end
  end)

  it("accepts x-api-key and echoes the request", function()
    local res, body = send(m, { method = "PUT", path = "/stage/a/b",
                                query = "x=1&y=2",
                                headers = { ["x-api-key"] = "the-api-key" },
                                body = "payload" })
    expect(200, res, body)
    local out = json(body)
    assert.equal("PUT", out.method)
    assert.equal("/stage/a/b", out.path)
    assert.equal("x=1&y=2", out.query)
    assert.equal("payload", out.body)
    assert.equal("api_key", out.auth)
  end)

  it("refuses a wrong key and no credentials at all (403)", function()
    local res, body = send(m, { method = "GET", path = "/x",
                                headers = { ["x-api-key"] = "nope" } })
    expect(403, res, body)
    res, body = send(m, { method = "GET", path = "/x" })
    expect(403, res, body)
  end)

  it("accepts SigV4 for lambda and execute-api, not for s3", function()
    for _, service in ipairs({ "lambda", "execute-api" }) do
      local res, body = signed(m, { method = "GET", path = "/p",
                                    query = "b=2&a=1" }, AWS, service)
      expect(200, res, body)
      assert.equal("sigv4", json(body).auth)
      assert.equal(service, json(body).sigv4.service)
    end
    local res, body = signed(m, { method = "GET", path = "/p" }, AWS, "s3")
    expect(403, res, body)
  end)

  it("accepts a presigned (query) signature", function()
    local amz = os.date("!%Y%m%dT%H%M%SZ")
    local scope = amz:sub(1, 8) .. "/us-east-1/lambda/aws4_request"
    local q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
              .. sigv4.uri_encode(AWS.access_key .. "/" .. scope)
              .. "&X-Amz-Date=" .. amz
              .. "&X-Amz-Expires=60&X-Amz-SignedHeaders=host&a=b"
    local creq = table.concat({
      "GET", "/pre", sigv4.canonical_query(q),
      "host:" .. m.host .. ":" .. m.port .. "\n", "host",
      sigv4.sha256_hex("") }, "\n")
    local sts = table.concat({ "AWS4-HMAC-SHA256", amz, scope,
                               sigv4.sha256_hex(creq) }, "\n")
    local key = sigv4.signing_key(AWS.secret_key, amz:sub(1, 8),
                                  "us-east-1", "lambda")
    local sig = sigv4.hex(sigv4.hmac_sha256(key, sts))
    local res, body = send(m, { method = "GET", path = "/pre",
                                query = q .. "&X-Amz-Signature=" .. sig })
    expect(200, res, body)
    assert.equal("query", m.last_request().sigv4.mode)
    res, body = send(m, { method = "GET", path = "/pre",
      query = q .. "&X-Amz-Signature=" .. sig:gsub("^.", "x") })
    expect(403, res, body)
  end)

  it("x-mock-status picks the status", function()
    local res, body = send(m, { method = "GET", path = "/x", headers = {
      ["x-api-key"] = "the-api-key", ["x-mock-status"] = "503" } })
    expect(503, res, body)
  end)
end)


-- STS and the credential chain -----------------------------------------------


describe("mock_faas: sts, imds, ecs and the lambda mock together",
         function()
  local sts, imds, ecs, lambda

  lazy_setup(function()
    sts = assert(mf.start({ platform = "sts", credentials = { AWS },
                            expiry_seconds = 1,
                            web_identity_tokens = { "header.e30.sig" } }))
    imds = assert(mf.start({ platform = "imds", imds_v2 = "required",
                             role = "my-role" }))
    ecs = assert(mf.start({ platform = "ecs", auth_token = "ecs-token",
                            relative_uri = "/v2/credentials/abc" }))
    lambda = assert(mf.start({ platform = "lambda", credentials = { AWS } }))
  end)

  lazy_teardown(function()
    for _, m in ipairs({ sts, imds, ecs, lambda }) do
      if m then
        m.stop()
      end
    end
  end)


  local function assume_role(params, creds)
    local form = {}
    for k, v in pairs(params) do
      form[#form + 1] = sigv4.uri_encode(k) .. "=" .. sigv4.uri_encode(v)
    end
    table.sort(form)
    return signed(sts, {
      method = "POST", path = "/",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = table.concat(form, "&") }, creds or AWS, "sts")
  end


  local function xml_creds(body)
    return {
      access_key = xml_field(body, "AccessKeyId"),
      secret_key = xml_field(body, "SecretAccessKey"),
      session_token = xml_field(body, "SessionToken"),
      expiration = xml_field(body, "Expiration"),
    }
  end


  it("sts AssumeRole (signed) issues credentials the lambda mock takes",
     function()
    local res, body = assume_role({
      Action = "AssumeRole", Version = "2011-06-15",
      RoleArn = "arn:aws:iam::123456789012:role/demo",
      RoleSessionName = "sluice", DurationSeconds = "900" })
    expect(200, res, body)
    assert.equal("text/xml", res.headers["Content-Type"])
    assert.matches("<AssumeRoleResponse", body, nil, true)
    assert.matches("assumed%-role/demo/sluice", body)
    local creds = xml_creds(body)
    assert.matches("^ASIA", creds.access_key)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$",
                   creds.expiration)
    local rec = sts.requests()
    assert.equal("AssumeRole", rec[#rec].action)
    assert.equal("demo", rec[#rec].params.RoleArn:match("role/(.*)"))

    res, body = invoke(lambda, "echo", nil, creds)
    expect(200, res, body)
    assert.equal("minted", lambda.requests()[1].sigv4.credential_source)

    -- the same key without its token is refused
    local no_token = copy(creds)
    no_token.session_token = nil
    res, body = invoke(lambda, "echo", nil, no_token)
    expect(403, res, body)

    -- expiry_seconds = 1: a second later the credentials are expired
    helpers.sleep(1.2)
    res, body = invoke(lambda, "echo", nil, creds)
    expect(403, res, body)
    assert.equal("ExpiredTokenException", res.headers["x-amzn-ErrorType"])
  end)

  it("sts AssumeRole errors: unsigned, bad signature, missing RoleArn",
     function()
    local res, body = send(sts, {
      method = "POST", path = "/",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = "Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012"
             .. "%3Arole%2Fdemo&RoleSessionName=s" })
    expect(403, res, body)
    assert.equal("MissingAuthenticationToken", xml_field(body, "Code"))
    assert.matches("<ErrorResponse", body, nil, true)

    res, body = assume_role({ Action = "AssumeRole",
                              RoleArn = "arn:aws:iam::123456789012:role/d",
                              RoleSessionName = "s1" },
                            { access_key = AWS.access_key,
                              secret_key = "wrong" })
    expect(403, res, body)
    assert.equal("SignatureDoesNotMatch", xml_field(body, "Code"))

    res, body = assume_role({ Action = "AssumeRole",
                              RoleSessionName = "s1" })
    expect(400, res, body)
    assert.equal("ValidationError", xml_field(body, "Code"))
  end)

  it("sts GetCallerIdentity (signed, query form) names the caller",
     function()
    local res, body = signed(sts, { method = "GET", path = "/",
      query = "Action=GetCallerIdentity&Version=2011-06-15" }, AWS, "sts")
    expect(200, res, body)
    assert.equal(AWS.access_key, xml_field(body, "UserId"))
    assert.equal("123456789012", xml_field(body, "Account"))
  end)

  it("sts AssumeRoleWithWebIdentity is unsigned; a bad token is refused",
     function()
    local q = "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
              .. "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fweb"
              .. "&RoleSessionName=pod&WebIdentityToken="
    local res, body = send(sts, { method = "GET", path = "/",
                                  query = q .. "header.e30.sig" })
    expect(200, res, body)
    assert.matches("<AssumeRoleWithWebIdentityResult>", body, nil, true)
    local creds = xml_creds(body)
    res, body = invoke(lambda, "echo", nil, creds)
    expect(200, res, body)

    res, body = send(sts, { method = "POST", path = "/",
      headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
      body = q .. "forged" })
    expect(400, res, body)
    assert.equal("InvalidIdentityToken", xml_field(body, "Code"))
  end)

  it("imds: v2 token, role name, credentials; no token -> 401", function()
    local res, body = send(imds, { method = "GET", path =
      "/latest/meta-data/iam/security-credentials/" })
    expect(401, res, body)

    res, body = send(imds, { method = "PUT", path = "/latest/api/token",
      headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = "60" } })
    expect(200, res, body)
    local token = body
    assert.equal("60", res.headers["X-aws-ec2-metadata-token-ttl-seconds"])

    local h = { ["X-aws-ec2-metadata-token"] = token }
    res, body = send(imds, { method = "GET", headers = h,
      path = "/latest/meta-data/iam/security-credentials/" })
    expect(200, res, body)
    assert.equal("my-role", body)

    res, body = send(imds, { method = "GET", headers = h,
      path = "/latest/meta-data/iam/security-credentials/my-role" })
    expect(200, res, body)
    local c = json(body)
    assert.equal("Success", c.Code)
    assert.equal("AWS-HMAC", c.Type)
    assert.matches("Z$", c.Expiration)
    res, body = invoke(lambda, "echo", nil, {
      access_key = c.AccessKeyId, secret_key = c.SecretAccessKey,
      session_token = c.Token })
    expect(200, res, body)

    res, body = send(imds, { method = "GET",
      headers = { ["X-aws-ec2-metadata-token"] = "forged" },
      path = "/latest/meta-data/iam/security-credentials/" })
    expect(401, res, body)
    res, body = send(imds, { method = "PUT", path = "/latest/api/token" })
    expect(400, res, body)
  end)

  it("imds: with v2 disabled the PUT fails and v1 GETs work", function()
    imds.set_config({ imds_v2 = "disabled" })
    finally(function()
      imds.set_config({ imds_v2 = "required" })
    end)
    local res, body = send(imds, { method = "PUT", path = "/latest/api/token",
      headers = { ["X-aws-ec2-metadata-token-ttl-seconds"] = "60" } })
    expect(403, res, body)
    res, body = send(imds, { method = "GET",
      path = "/latest/meta-data/iam/security-credentials/my-role" })
    expect(200, res, body)
    assert.truthy(json(body).AccessKeyId)
    local rec = imds.requests()
    assert.equal("none", rec[#rec].token)
  end)

  it("ecs: the relative URI with the right Authorization token", function()
    local res, body = send(ecs, { method = "GET",
      path = "/v2/credentials/abc",
      headers = { Authorization = "ecs-token" } })
    expect(200, res, body)
    local c = json(body)
    assert.truthy(c.AccessKeyId and c.SecretAccessKey and c.Token
                  and c.Expiration and c.RoleArn)
    res, body = invoke(lambda, "echo", nil, {
      access_key = c.AccessKeyId, secret_key = c.SecretAccessKey,
      session_token = c.Token })
    expect(200, res, body)

    res, body = send(ecs, { method = "GET", path = "/v2/credentials/abc",
                            headers = { Authorization = "wrong" } })
    expect(401, res, body)
    res, body = send(ecs, { method = "GET", path = "/v2/credentials/abc" })
    expect(401, res, body)
    res, body = send(ecs, { method = "GET", path = "/v2/credentials/x",
                            headers = { Authorization = "ecs-token" } })
    expect(404, res, body)
  end)
end)


-- OpenWhisk -------------------------------------------------------------------


describe("mock_faas: openwhisk", function()
  local m
  local TOKEN = "user-uuid:secret-key"
  local BASE = "/api/v1/namespaces/guest/actions/"

  lazy_setup(function()
    m = assert(mf.start({ platform = "openwhisk", tls = true,
                          service_token = TOKEN, slow_seconds = 0.5 }))
  end)

  lazy_teardown(function()
    if m then
      m.stop()
    end
  end)

  local function ow(action, query, body, auth)
    return send(m, {
      method = "POST", path = BASE .. action, query = query,
      headers = { Authorization = auth or basic(TOKEN),
                  ["Content-Type"] = "application/json" },
      body = body and cjson.encode(body) or nil,
    })
  end

  it("hello with result=true: just the result", function()
    local res, body = ow("hello", "blocking=true&result=true",
                         { name = "Sluice" })
    expect(200, res, body)
    assert.same({ payload = "Hello, Sluice!" }, json(body))
    assert.matches("^%x+$", res.headers["x-openwhisk-activation-id"])
    res, body = ow("hello", "blocking=true&result=true")
    assert.same({ payload = "Hello, World!" }, json(body))
  end)

  it("result=false: the activation record", function()
    local res, body = ow("hello", "blocking=true&result=false",
                         { name = "x" })
    expect(200, res, body)
    local rec = json(body)
    assert.equal(32, #rec.activationId)
    assert.equal(rec.activationId, res.headers["x-openwhisk-activation-id"])
    assert.same({ payload = "Hello, x!" }, rec.response.result)
    assert.equal("success", rec.response.status)
    assert.is_true(rec.response.success)
    assert.equal("hello", rec.name)
    assert.equal("guest", rec.namespace)
    assert.equal(0, rec.statusCode)
  end)

  it("echo returns every param; '_' is the default namespace", function()
    local res, body = send(m, {
      method = "POST", path = "/api/v1/namespaces/_/actions/pkg/echo",
      query = "blocking=true&result=true",
      headers = { Authorization = basic(TOKEN),
                  ["Content-Type"] = "application/json" },
      body = '{"a":1,"b":[1,2]}' })
    expect(200, res, body)
    assert.same({ a = 1, b = { 1, 2 } }, json(body))
    assert.equal("pkg", m.last_request().package)
  end)

  it("non-blocking, or blocking past timeout: 202 with activationId",
     function()
    local res, body = ow("hello", nil, {})
    expect(202, res, body)
    assert.equal(32, #json(body).activationId)
    res, body = ow("slow", "blocking=true&timeout=100", {})
    expect(202, res, body)
    local id = json(body).activationId
    -- the activation finishes later and can be fetched
    helpers.wait_until(function()
      local r = send(m, { method = "GET",
        path = "/api/v1/namespaces/guest/activations/" .. id,
        headers = { Authorization = basic(TOKEN) } })
      return r.status == 200
    end, 5)
  end)

  it("a failing action: 502 with the activation record", function()
    local res, body = ow("fail", "blocking=true", {})
    expect(502, res, body)
    local rec = json(body)
    assert.is_false(rec.response.success)
    assert.equal("application error", rec.response.status)
    assert.truthy(rec.response.result.error)
    res, body = ow("fail", "blocking=true&result=true", {})
    expect(502, res, body)
    assert.truthy(json(body).error)
  end)

  it("bad or missing auth: 401; unknown action: 404; bad JSON: 400",
     function()
    local res, body = ow("hello", "blocking=true", {}, basic("user:wrong"))
    expect(401, res, body)
    assert.truthy(json(body).error)
    res, body = send(m, { method = "POST", path = BASE .. "hello",
                          body = "{}" })
    expect(401, res, body)
    res, body = ow("nope", "blocking=true", {})
    expect(404, res, body)
    assert.equal("The requested resource does not exist.", json(body).error)
    res, body = send(m, { method = "POST", path = BASE .. "hello",
      query = "blocking=true",
      headers = { Authorization = basic(TOKEN),
                  ["Content-Type"] = "application/json" },
      body = "name=x" })
    expect(400, res, body)
    assert.matches("malformed", json(body).error)
  end)
end)


-- OpenFaaS --------------------------------------------------------------------


describe("mock_faas: openfaas", function()
  local m, sink

  lazy_setup(function()
    m = assert(mf.start({ platform = "openfaas",
                          functions = { "echo", "slow", "env" },
                          namespaces = { "openfaas-fn", "team" },
                          basic_auth = "admin:pw", slow_seconds = 0.3 }))
    sink = assert(mf.start({ platform = "echo" }))
  end)

  lazy_teardown(function()
    for _, x in ipairs({ m, sink }) do
      if x then
        x.stop()
      end
    end
  end)

  local AUTH = { Authorization = basic("admin:pw") }

  it("echoes method, path suffix, query, headers and body", function()
    local res, body = send(m, { method = "PATCH",
      path = "/function/env.team/a/b", query = "q=1",
      headers = { Authorization = AUTH.Authorization, ["X-Foo"] = "bar" },
      body = "data" })
    expect(200, res, body)
    local out = json(body)
    assert.equal("PATCH", out.method)
    assert.equal("env", out["function"])
    assert.equal("team", out.namespace)
    assert.equal("/a/b", out.path)
    assert.equal("q=1", out.query)
    assert.equal("bar", out.headers["x-foo"])
    assert.equal("data", out.body)
    assert.truthy(res.headers["X-Call-Id"])
    res, body = send(m, { method = "GET", path = "/function/echo",
                          headers = AUTH })
    expect(200, res, body)
    assert.equal("/", json(body).path)
    assert.equal("openfaas-fn", json(body).namespace)
  end)

  it("status from x-mock-status; unknown function 404; auth 401",
     function()
    local res, body = send(m, { method = "GET", path = "/function/echo",
      headers = { Authorization = AUTH.Authorization,
                  ["x-mock-status"] = "418" } })
    expect(418, res, body)
    res, body = send(m, { method = "GET", path = "/function/nope",
                          headers = AUTH })
    expect(404, res, body)
    res, body = send(m, { method = "GET", path = "/function/echo" })
    expect(401, res, body)
  end)

  it("slow: answers after slow_seconds", function()
    local t0 = helpers.now()
    local res, body = send(m, { method = "GET", path = "/function/slow",
                                headers = AUTH })
    expect(200, res, body)
    assert.is_true(helpers.now() - t0 >= 0.25)
  end)

  it("async: 202 + X-Call-Id, then a POST to X-Callback-Url", function()
    sink.clear()
    local res, body = send(m, { method = "POST", path = "/async-function/echo",
      headers = { Authorization = AUTH.Authorization,
                  ["X-Callback-Url"] = sink.url .. "/cb?x=1" },
      body = "job" })
    expect(202, res, body)
    assert.equal("", body)
    local call_id = res.headers["X-Call-Id"]
    assert.truthy(call_id)
    local cb = helpers.wait_until(function()
      return sink.requests()[1]
    end, 5)
    assert.equal("POST", cb.method)
    assert.equal("/cb", cb.path)
    assert.equal(call_id, cb.headers["x-call-id"])
    assert.equal("200", cb.headers["x-function-status"])
    assert.equal("echo", cb.headers["x-function-name"])
    assert.equal("job", json(cb.body).body)
    local sent = m.callbacks()
    assert.equal(200, sent[#sent].status)
  end)
end)


-- Azure Functions -------------------------------------------------------------


describe("mock_faas: azure", function()
  local m

  lazy_setup(function()
    m = assert(mf.start({ platform = "azure", function_key = "fkey",
                          functions = { "HttpTrigger", "slow" } }))
  end)

  lazy_teardown(function()
    if m then
      m.stop()
    end
  end)

  it("a key in x-functions-key: echo, clientid recorded", function()
    local res, body = send(m, { method = "POST",
      path = "/api/HttpTrigger/x/y", query = "a=1",
      headers = { ["x-functions-key"] = "fkey",
                  ["x-functions-clientid"] = "client-1" },
      body = "hello" })
    expect(200, res, body)
    local out = json(body)
    assert.equal("HttpTrigger", out["function"])
    assert.equal("/x/y", out.suffix)
    assert.equal("/api/HttpTrigger/x/y", out.path)
    assert.equal("a=1", out.query)
    assert.equal("hello", out.body)
    assert.equal("client-1", out.clientid)
    assert.equal("header", out.key_source)
    assert.equal("client-1", m.last_request().clientid)
  end)

  it("a key in ?code= works too", function()
    local res, body = send(m, { method = "GET", path = "/api/httptrigger",
                                query = "code=fkey" })
    expect(200, res, body)
    assert.equal("query", json(body).key_source)
  end)

  it("a bad or missing key: 401; unknown function: 404", function()
    local res, body = send(m, { method = "GET", path = "/api/HttpTrigger",
      headers = { ["x-functions-key"] = "wrong" } })
    expect(401, res, body)
    res, body = send(m, { method = "GET", path = "/api/HttpTrigger" })
    expect(401, res, body)
    res, body = send(m, { method = "GET", path = "/api/Other",
                          query = "code=fkey" })
    expect(404, res, body)
    res, body = send(m, { method = "GET", path = "/HttpTrigger",
                          query = "code=fkey" })
    expect(404, res, body)
  end)

  it("route_prefix can change, or be empty", function()
    m.set_config({ route_prefix = "" })
    finally(function()
      m.set_config({ route_prefix = "api" })
    end)
    local res, body = send(m, { method = "GET", path = "/HttpTrigger",
                                query = "code=fkey" })
    expect(200, res, body)
    assert.equal("", json(body).route_prefix)
  end)
end)


describe("mock_faas: the helper and common options", function()
  it("de-chunks a chunked body and keeps the record file", function()
    local m = assert(mf.start({ platform = "echo" }))
    finally(function() m.stop() end)
    local parts = { "abc", "defg", "" }
    local i = 0
    local res, body = send(m, { method = "POST", path = "/c", body =
      function()
        i = i + 1
        if parts[i] ~= "" then
          return parts[i]
        end
      end })
    expect(200, res, body)
    assert.equal("abcdefg", json(body).body)
    local rec = m.last_request()
    assert.equal("chunked", rec.framing)
    assert.equal(7, rec.body_length)
    local saved = json(helpers.file.read(m.record_file))
    assert.equal("/c", saved[#saved].path)
  end)

  it("force_status answers every request with it", function()
    local m = assert(mf.start({ platform = "openfaas", force_status = 503,
                                force_body = '{"down":true}' }))
    finally(function() m.stop() end)
    local res, body = send(m, { method = "GET", path = "/function/echo" })
    expect(503, res, body)
    assert.same({ down = true }, json(body))
    assert.is_true(m.last_request().forced)
  end)

  it("stop() ends only that process", function()
    local a = assert(mf.start({ platform = "echo" }))
    local b = assert(mf.start({ platform = "echo" }))
    local pid_a, pid_b = a.pid, b.pid
    a.stop()
    assert.is_false(helpers.pid_alive(pid_a))
    assert.is_true(helpers.pid_alive(pid_b))
    local res = send(b, { method = "GET", path = "/x" })
    assert.equal(200, res.status)
    mf.stop_all()
    assert.is_false(helpers.pid_alive(pid_b))
  end)
end)
