-- openwhisk without the gateway: the parameter collection (query merged
-- with multipart, JSON and form bodies), the action URL and the mapping of
-- OpenWhisk's answers. Multipart bodies are built here by hand (RFC 7578),
-- independently of the parser under test.

local cjson = require "cjson"


-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
local plugin_schema = require "spec.internal.plugin_schema"
plugin_schema.map_plugins("kong.plugins.openwhisk.params")


-- the handler captures ngx at load: the request-independent shim parts
local function with_ngx()
  local args = require "sluice.ngx.args"
  local crypto = require "sluice.ngx.crypto"
  _G.ngx = _G.ngx or {
    encode_base64 = crypto.encode_base64,
    escape_uri = args.escape_uri,
    decode_args = args.decode_args,
    re = require "sluice.ngx.re",
  }
end


-- parts: array of { name, value, filename?, content_type? }
local function multipart(parts, boundary)
  local out = {}
  for _, p in ipairs(parts) do
    local disp = 'form-data; name="' .. p[1] .. '"'
    if p.filename then
      disp = disp .. '; filename="' .. p.filename .. '"'
    end
    out[#out + 1] = "--" .. boundary .. "\r\n"
                    .. "Content-Disposition: " .. disp .. "\r\n"
                    .. (p.content_type and ("Content-Type: " .. p.content_type
                                            .. "\r\n") or "")
                    .. "\r\n" .. p[2] .. "\r\n"
  end
  return table.concat(out) .. "--" .. boundary .. "--\r\n"
end


local function form(body)
  return require("sluice.ngx.args").decode_args(body)
end


describe("Plugin: openwhisk (params)", function()
  local params

  lazy_setup(function()
    params = require "kong.plugins.openwhisk.params"
  end)

  describe("boundary", function()
    local cases = {
      { "multipart/form-data; boundary=abc", "abc" },
      { 'multipart/form-data; boundary="a b:c"', "a b:c" },
      { "multipart/form-data;BOUNDARY=xyz; charset=utf-8", "xyz" },
      { "multipart/form-data", nil },
      { "multipart/form-data; boundary=" .. ("x"):rep(71), nil },
    }
    for _, c in ipairs(cases) do
      it(c[1]:sub(1, 50) .. " -> " .. tostring(c[2]), function()
        assert.equal(c[2], params.boundary(c[1]))
      end)
    end
  end)

  describe("multipart", function()
    it("decodes fields, file parts and repeated names", function()
      local body = multipart({
        { "name", "bar" },
        { "upload", "line1\r\nline2", filename = "a.txt",
          content_type = "text/plain" },
        { "tag", "x" },
        { "tag", "y" },
        { "empty", "" },
      }, "XyZ")
      local t = assert(params.multipart(body,
                                        "multipart/form-data; boundary=XyZ"))
      assert.same({ name = "bar", upload = "line1\r\nline2",
                    tag = { "x", "y" }, empty = "" }, t)
    end)

    it("skips a preamble and takes quoted names with escapes", function()
      local body = "this is a preamble\r\n--b1\r\n"
                   .. 'Content-Disposition: form-data; name="say \\"hi\\""'
                   .. "\r\n\r\nhello\r\n--b1--"
      local t = assert(params.multipart(body,
                                        'multipart/form-data; boundary="b1"'))
      assert.same({ ['say "hi"'] = "hello" }, t)
    end)

    it("does not take filename= for name=", function()
      local body = "--b\r\nContent-Disposition: form-data; "
                   .. 'filename="f.txt"; name="real"\r\n\r\nv\r\n--b--\r\n'
      assert.same({ real = "v" },
                  params.multipart(body, "multipart/form-data; boundary=b"))
    end)

    it("ignores parts without a name", function()
      local body = "--b\r\nContent-Type: text/plain\r\n\r\nv\r\n--b--\r\n"
      assert.same({}, params.multipart(body,
                                       "multipart/form-data; boundary=b"))
    end)

    local broken = {
      { "no boundary parameter", "--b\r\n\r\nx\r\n--b--",
        "multipart/form-data", "missing boundary in multipart content type" },
      { "no delimiter in the body", "hello", "multipart/form-data; boundary=b",
        "missing multipart boundary in body" },
      { "an unterminated part",
        '--b\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',
        "multipart/form-data; boundary=b", "truncated multipart body" },
      { "unterminated part headers",
        '--b\r\nContent-Disposition: form-data; name="a"',
        "multipart/form-data; boundary=b",
        "truncated multipart part headers" },
    }
    for _, c in ipairs(broken) do
      it("rejects " .. c[1], function()
        local t, err = params.multipart(c[2], c[3])
        assert.is_nil(t)
        assert.equal(c[4], err)
      end)
    end
  end)

  describe("collect", function()
    local QUERY = { name = "foo", only_query = "q", flag = true }

    -- { what, content type, body, expected params }
    local cases = {
      { "no body: the query", nil, "", QUERY },
      { "a form body wins over the query",
        "application/x-www-form-urlencoded", "name=bar&extra=1",
        { name = "bar", only_query = "q", flag = true, extra = "1" } },
      { "a JSON body wins over the query", "application/json; charset=utf-8",
        '{"name":"bar","n":3,"nested":{"a":[1,2]}}',
        { name = "bar", only_query = "q", flag = true, n = 3,
          nested = { a = { 1, 2 } } } },
      { "a multipart body wins over the query",
        "multipart/form-data; boundary=zz",
        multipart({ { "name", "bar" } }, "zz"),
        { name = "bar", only_query = "q", flag = true } },
      { "an empty JSON object", "application/json", "{}", QUERY },
      { "text/plain is ignored, as Kong does", "text/plain", "name=bar",
        QUERY },
      { "no content type: the body is ignored", nil, "name=bar", QUERY },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local got, status, err = params.collect(QUERY, c[2], c[3], form)
        assert.is_nil(status)
        assert.is_nil(err)
        assert.same(c[4], got)
      end)
    end

    it("does not modify the query table", function()
      local q = { a = "1" }
      params.collect(q, "application/json", '{"a":"2"}', form)
      assert.same({ a = "1" }, q)
    end)

    local bad = {
      { "invalid JSON", "application/json", "{nope", "^Expected" },
      { "a JSON array", "application/json", "[1,2]",
        "^JSON body must be an object$" },
      { "a JSON string", "application/json", '"x"',
        "^JSON body must be an object$" },
      { "a broken multipart body", "multipart/form-data; boundary=b", "zzz",
        "^missing multipart boundary in body$" },
    }
    for _, c in ipairs(bad) do
      it("answers 400 for " .. c[1], function()
        local got, status, err = params.collect({}, c[2], c[3], form)
        assert.is_nil(got)
        assert.equal(400, status)
        assert.matches(c[4], err)
      end)
    end
  end)
end)


describe("Plugin: openwhisk (handler functions)", function()
  local handler

  lazy_setup(function()
    with_ngx()
    handler = require "kong.plugins.openwhisk.handler"
  end)

  it("has Kong's PRIORITY and VERSION", function()
    assert.equal(1000, handler.PRIORITY)
    assert.equal("1.0.0", handler.VERSION)
  end)

  -- { plugin timeout, OpenWhisk's blocking wait }
  local waits = { { 60000, 59000 }, { 600000, 599000 }, { 2000, 1800 },
                  { 10, 9 }, { 5, 5 }, { 1, 1 } }
  for _, c in ipairs(waits) do
    it("lets OpenWhisk wait " .. c[2] .. " ms of a " .. c[1] .. " ms timeout",
       function()
      assert.equal(c[2], handler.blocking_wait(c[1]))
    end)
  end

  local paths = {
    { "/api/v1/namespaces/guest", "hello",
      "/api/v1/namespaces/guest/actions/hello" },
    { "/api/v1/namespaces/guest/", "pkg/hello",
      "/api/v1/namespaces/guest/actions/pkg/hello" },
    { "api/v1/namespaces/_", "my action",
      "/api/v1/namespaces/_/actions/my%20action" },
  }
  for _, c in ipairs(paths) do
    it("invokes " .. c[1] .. " + " .. c[2] .. " at " .. c[3], function()
      assert.equal(c[3], handler.action_path({ path = c[1], action = c[2] }))
    end)
  end

  describe("map_response", function()
    it("relays a JSON result with its status and headers", function()
      local h = { ["Content-Type"] = "application/json",
                  ["X-Openwhisk-Activation-Id"] = "abc" }
      local status, body, headers = handler.map_response(200, h,
                                                         '{"payload":"hi"}')
      assert.equal(200, status)
      assert.equal('{"payload":"hi"}', body)
      assert.same(h, headers)
    end)

    it("relays an action error (502) with its JSON body", function()
      local status, body = handler.map_response(502, {},
                                                '{"error":"boom"}')
      assert.equal(502, status)
      assert.same({ error = "boom" }, cjson.decode(body))
    end)

    it("turns a 202 (still running) into 504 with the activation id",
       function()
      local status, body, headers = handler.map_response(202,
        { ["Content-Type"] = "application/json" },
        '{"activationId":"5021a"}')
      assert.equal(504, status)
      assert.same({ message = "The action did not complete within the "
                              .. "timeout", activationId = "5021a" }, body)
      assert.same({ ["X-Openwhisk-Activation-Id"] = "5021a" }, headers)
    end)

    for _, status in ipairs({ 200, 202, 502 }) do
      it("rejects a " .. status .. " that is not JSON", function()
        local s, err = handler.map_response(status, {}, "<html>oops</html>")
        assert.is_nil(s)
        assert.equal("invalid JSON in the OpenWhisk response (status "
                     .. status .. ")", err)
        assert.is_nil((handler.map_response(status, {}, "")))
        assert.is_nil((handler.map_response(status, {}, "42")))
      end)
    end

    it("relays other statuses as they are (404 from OpenWhisk)", function()
      local status, body = handler.map_response(404, {}, "not json")
      assert.equal(404, status)
      assert.equal("not json", body)
    end)
  end)
end)
