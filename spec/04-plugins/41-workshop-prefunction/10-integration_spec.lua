-- The "classic Kong workshop" JWT check written as pre-function Lua in
-- kong.yml: examples/kong-jwt-prefunction.yml itself, with its service
-- pointed at the mock upstream. Expired -> 401 token expired, the `sub`
-- claim -> response header X-Claim; the same behaviour as the jwt-claims
-- plugin (spec/04-plugins/40-jwt-claims) minus signature checking.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local lyaml = require "lyaml"
local crypto = require "sluice.ngx.crypto"


local EXAMPLE = helpers.ROOT .. "/examples/kong-jwt-prefunction.yml"
local SECRET = "workshop"

local b64url = crypto.encode_base64url


-- An HS256 JWT, as a client library would make it.
local function jwt(payload)
  local p = type(payload) == "string" and payload or cjson.encode(payload)
  local signed = b64url(cjson.encode({ typ = "JWT", alg = "HS256" })) ..
                 "." .. b64url(p)
  return signed .. "." .. b64url(crypto.hmac_sha256(SECRET, signed))
end


-- The example file, its service pointed at `url`.
local function example_config(url)
  local f = assert(io.open(EXAMPLE))
  local config = lyaml.load(f:read("*a"))
  f:close()
  assert.equal(1, #config.services)
  config.services[1].url = url
  return config
end


describe("workshop JWT as pre-function (examples/kong-jwt-prefunction.yml)",
         function()
  local client, mock

  local function get(authorization, path)
    return assert(client:send {
      method = "GET",
      path = path or "/workshop",
      headers = { ["Authorization"] = authorization },
    })
  end

  local function assert_401(res, msg)
    local body = assert.res_status(401, res)
    assert.same({ message = msg }, cjson.decode(body))
    assert.is_nil(res.headers["X-Powered-By"]) -- not proxied
    assert.is_nil(res.headers["X-Claim"])
  end

  before_each(function()
    client = helpers.proxy_client()
  end)

  after_each(function()
    if client then
      client:close()
      client = nil
    end
  end)


  describe("with untrusted_lua_sandbox_requires = cjson.safe", function()
    lazy_setup(function()
      mock = helpers.start_mock_upstream()
      assert(helpers.start_kong({
        plugins = "bundled",
        untrusted_lua_sandbox_requires = "cjson.safe",
        declarative_config = example_config(mock.url),
      }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
      if mock then
        mock.stop()
      end
    end)

    it("a valid token: proxied, sub in X-Claim", function()
      local token = jwt({ sub = "alice", exp = os.time() + 300 })
      local res = get("Bearer " .. token)
      local body = cjson.decode(assert.res_status(200, res))
      assert.equal("alice", res.headers["X-Claim"])
      assert.equal("mock_upstream", res.headers["X-Powered-By"])
      assert.equal("Bearer " .. token, body.headers["authorization"])
    end)

    it("a token without exp: proxied", function()
      local res = get("Bearer " .. jwt({ sub = "bob" }))
      assert.res_status(200, res)
      assert.equal("bob", res.headers["X-Claim"])
    end)

    it("the header is on the upstream's own status", function()
      local res = get("Bearer " .. jwt({ sub = "carol" }),
                      "/workshop/status/202")
      assert.res_status(202, res)
      assert.equal("carol", res.headers["X-Claim"])
    end)

    it("a token without sub: proxied, no X-Claim", function()
      local res = get("Bearer " .. jwt({ name = "x" }))
      assert.res_status(200, res)
      assert.is_nil(res.headers["X-Claim"])
    end)

    it("an expired token: 401 token expired", function()
      local res = get("Bearer " .. jwt({ sub = "alice",
                                         exp = os.time() - 10 }))
      assert_401(res, "token expired")
    end)

    it("a missing token: 401 Unauthorized", function()
      assert_401(get(nil), "Unauthorized")
    end)

    it("another scheme: 401 Unauthorized", function()
      assert_401(get("Basic YWxhZGRpbjpvcGVuc2VzYW1l"), "Unauthorized")
    end)

    it("a malformed token: 401 Bad token", function()
      assert_401(get("Bearer abc"), "Bad token")
      assert_401(get("Bearer a.b.c"), "Bad token")
      assert_401(get("Bearer " .. jwt("not json")), "Bad token")
    end)

    it("the signature is not checked (the plugin does that)", function()
      local token = jwt({ sub = "forged" }):gsub("[^.]+$", "AAAA")
      local res = get("Bearer " .. token)
      assert.res_status(200, res)
      assert.equal("forged", res.headers["X-Claim"])
    end)
  end)


  describe("without untrusted_lua_sandbox_requires", function()
    lazy_setup(function()
      mock = helpers.start_mock_upstream()
      assert(helpers.start_kong({
        plugins = "bundled",
        declarative_config = example_config(mock.url),
      }))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
      if mock then
        mock.stop()
      end
    end)

    it("require 'cjson.safe' is refused by the sandbox: 500", function()
      local res = get("Bearer " .. jwt({ sub = "alice" }))
      local body = assert.res_status(500, res)
      assert.equal("An unexpected error occurred",
                   cjson.decode(body).message)
      local log = helpers.file.read(helpers.error_log())
      assert.matches("require 'cjson.safe' not allowed within sandbox",
                     log, nil, true)
    end)
  end)
end)
