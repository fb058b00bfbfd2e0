-- jwt-claims through the gateway (examples/plugins/jwt-claims, loaded from
-- lua_package_path and enabled with `plugins = bundled,jwt-claims`).
-- Tokens are made here by an HS256 signer over sluice.ngx.crypto's
-- hmac_sha256, the way a client library would.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local crypto = require "sluice.ngx.crypto"


local PLUGIN_PATH = helpers.ROOT .. "/examples/plugins/jwt-claims/?.lua;"
local SECRET = "s3cr3t-workshop-key"

local b64url = crypto.encode_base64url


-- header.payload.signature; `alg` from the header table (HS256 signs with
-- `secret`, anything else leaves the signature empty). Tables are encoded
-- with cjson; a string header/payload is taken as the JSON text itself.
local function jwt(payload, secret, header)
  header = header or { typ = "JWT", alg = "HS256" }
  local h = type(header) == "string" and header or cjson.encode(header)
  local p = type(payload) == "string" and payload or cjson.encode(payload)
  local signed = b64url(h) .. "." .. b64url(p)
  local sig = ""
  if type(header) == "table" and header.alg == "HS256" then
    sig = b64url(crypto.hmac_sha256(secret or SECRET, signed))
  end
  return signed .. "." .. sig
end


local function bearer(token)
  return "Bearer " .. token
end


describe("Plugin: jwt-claims (access)", function()
  local client, mock

  lazy_setup(function()
    mock = helpers.start_mock_upstream()
    local function route(name, config)
      return {
        name = name,
        hosts = { name .. ".jwt.test" },
        plugins = { { name = "jwt-claims", config = config } },
      }
    end
    assert(helpers.start_kong({
      plugins = "bundled,jwt-claims",
      lua_package_path = PLUGIN_PATH,
      declarative_config = {
        _format_version = "3.0",
        services = {
          { name = "echo", url = mock.url, routes = {
            route("verify", { secret = SECRET,
                              upstream_header = "X-Jwt-Sub" }),
            route("decode", { claim = "email", header = "X-Email" }),
            route("leeway", { secret = SECRET, leeway = 60 }),
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


  local function get(host, authorization, path)
    return assert(client:send {
      method = "GET",
      path = path or "/request",
      headers = {
        ["Host"] = host .. ".jwt.test",
        ["Authorization"] = authorization,
      },
    })
  end


  -- 401 with {"message": msg}, never proxied
  local function assert_401(res, msg)
    local body = assert.res_status(401, res)
    assert.same({ message = msg }, cjson.decode(body))
    assert.matches("application/json", res.headers["Content-Type"], nil,
                   true)
    assert.matches("^Bearer", res.headers["WWW-Authenticate"])
    assert.is_nil(res.headers["X-Powered-By"])
    assert.is_nil(res.headers["X-Claim"])
  end


  describe("a valid token", function()
    it("is proxied, the claim in the response and upstream headers",
       function()
      local token = jwt({ sub = "alice", exp = os.time() + 300 })
      local res = get("verify", bearer(token))
      local body = cjson.decode(assert.res_status(200, res))
      assert.equal("alice", res.headers["X-Claim"])
      assert.equal("mock_upstream", res.headers["X-Powered-By"])
      assert.equal("alice", body.headers["x-jwt-sub"])
      -- the credential itself goes on, as with Kong's jwt plugin
      assert.equal(bearer(token), body.headers["authorization"])
    end)

    it("without exp never expires", function()
      local res = get("verify", bearer(jwt({ sub = "bob" })))
      assert.res_status(200, res)
      assert.equal("bob", res.headers["X-Claim"])
    end)

    it("sets the header on the upstream's own status", function()
      local res = get("verify", bearer(jwt({ sub = "carol" })),
                      "/status/201")
      assert.res_status(201, res)
      assert.equal("carol", res.headers["X-Claim"])
    end)

    it("accepts the scheme in any case and trailing spaces", function()
      local res = get("verify", "bEARER  " .. jwt({ sub = "dave" }) .. " ")
      assert.res_status(200, res)
      assert.equal("dave", res.headers["X-Claim"])
    end)

    it("replaces a client's own upstream header", function()
      local res = assert(client:send {
        method = "GET",
        path = "/request",
        headers = {
          ["Host"] = "verify.jwt.test",
          ["Authorization"] = bearer(jwt({ sub = "erin" })),
          ["X-Jwt-Sub"] = "mallory",
        },
      })
      local body = cjson.decode(assert.res_status(200, res))
      assert.equal("erin", body.headers["x-jwt-sub"])
    end)

    it("copies a number claim as its JSON text", function()
      local res = get("verify", bearer(jwt({ sub = 42 })))
      assert.res_status(200, res)
      assert.equal("42", res.headers["X-Claim"])
    end)

    it("copies an object claim as its JSON text", function()
      local res = get("verify", bearer(jwt({ sub = { id = 7 } })))
      assert.res_status(200, res)
      assert.equal('{"id":7}', res.headers["X-Claim"])
    end)

    it("does not copy a claim with control characters", function()
      local res = get("verify",
                      bearer(jwt({ sub = "alice\r\nX-Evil: 1" })))
      local body = cjson.decode(assert.res_status(200, res))
      assert.is_nil(res.headers["X-Claim"])
      assert.is_nil(res.headers["X-Evil"])
      assert.is_nil(body.headers["x-jwt-sub"])
    end)

    it("passes without the headers when the claim is absent", function()
      local res = get("verify", bearer(jwt({ name = "no sub" })))
      local body = cjson.decode(assert.res_status(200, res))
      assert.is_nil(res.headers["X-Claim"])
      assert.is_nil(body.headers["x-jwt-sub"])
    end)
  end)


  describe("an expired token", function()
    it("is refused: 401 token expired", function()
      local res = get("verify",
                      bearer(jwt({ sub = "alice", exp = os.time() - 10 })))
      assert_401(res, "token expired")
    end)

    it("is refused at exactly exp", function()
      local res = get("verify",
                      bearer(jwt({ sub = "alice", exp = os.time() })))
      assert_401(res, "token expired")
    end)

    it("passes within config.leeway", function()
      local res = get("leeway",
                      bearer(jwt({ sub = "alice", exp = os.time() - 30 })))
      assert.res_status(200, res)
      assert.equal("alice", res.headers["X-Claim"])
    end)

    it("is refused beyond config.leeway", function()
      local res = get("leeway",
                      bearer(jwt({ sub = "alice", exp = os.time() - 120 })))
      assert_401(res, "token expired")
    end)

    it("is refused without a secret too", function()
      local res = get("decode", bearer(jwt({ email = "a@x.test",
                                             exp = os.time() - 10 },
                                           nil, { alg = "none" })))
      assert_401(res, "token expired")
    end)
  end)


  describe("a bad signature", function()
    it("signed with another key: 401", function()
      local res = get("verify", bearer(jwt({ sub = "alice" }, "other-key")))
      assert_401(res, "Invalid signature")
    end)

    it("with a tampered payload: 401", function()
      local good = jwt({ sub = "alice" })
      local forged = jwt({ sub = "admin" })
      local h, _, s = good:match("^([^.]+)%.([^.]+)%.([^.]+)$")
      local p = forged:match("^[^.]+%.([^.]+)%.")
      local res = get("verify", bearer(h .. "." .. p .. "." .. s))
      assert_401(res, "Invalid signature")
    end)

    it("missing (unsigned token) when a secret is set: 401", function()
      local token = jwt({ sub = "alice" }):match("^(.*%.)")
      local res = get("verify", bearer(token))
      assert_401(res, "Invalid signature")
    end)

    it("with alg none when a secret is set: 401", function()
      local res = get("verify",
                      bearer(jwt({ sub = "alice" }, nil, { alg = "none" })))
      assert_401(res, "Invalid algorithm")
    end)

    it("with alg HS512 when a secret is set: 401", function()
      local res = get("verify", bearer(jwt({ sub = "alice" }, nil,
                                           { alg = "HS512" })))
      assert_401(res, "Invalid algorithm")
    end)
  end)


  describe("a missing token", function()
    it("no Authorization: 401 Unauthorized", function()
      local res = get("verify", nil)
      assert_401(res, "Unauthorized")
      assert.equal('Bearer realm="kong"', res.headers["WWW-Authenticate"])
    end)

    it("another scheme: 401 Unauthorized", function()
      local res = get("verify", "Basic YWxhZGRpbjpvcGVuc2VzYW1l")
      assert_401(res, "Unauthorized")
    end)

    it("an empty Bearer: 401 Unauthorized", function()
      local res = get("verify", "Bearer ")
      assert_401(res, "Unauthorized")
    end)
  end)


  describe("a malformed token: 401 Bad token", function()
    local good = jwt({ sub = "alice" })
    local cases = {
      { "one segment", "abc" },
      { "two segments", good:match("^([^.]+%.[^.]+)") },
      { "four segments", good .. ".x" },
      { "a header that is not base64url", "!!!." .. good:match("%.(.*)$") },
      { "a payload that is not JSON",
        b64url('{"alg":"HS256"}') .. "." .. b64url("not json") .. "." },
      { "a payload that is a JSON string",
        jwt('"alice"') },
      { "an exp that is not a number",
        jwt({ sub = "alice", exp = "tomorrow" }) },
      { "two tokens", good .. " " .. good },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        assert_401(get("verify", bearer(c[2])), "Bad token")
      end)
    end
  end)


  describe("without config.secret (decode only)", function()
    it("copies config.claim into config.header", function()
      local res = get("decode", bearer(jwt({ email = "a@x.test" }, nil,
                                           { alg = "none" })))
      assert.res_status(200, res)
      assert.equal("a@x.test", res.headers["X-Email"])
      assert.is_nil(res.headers["X-Claim"])
    end)

    it("does not check the signature", function()
      local res = get("decode", bearer(jwt({ email = "b@x.test" },
                                           "any-key")))
      assert.res_status(200, res)
      assert.equal("b@x.test", res.headers["X-Email"])
    end)

    it("still refuses a missing token", function()
      assert_401(get("decode", nil), "Unauthorized")
    end)
  end)
end)
