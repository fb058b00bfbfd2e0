-- aws-lambda's credential chain through a real gateway: each source gets
-- its own gateway started with that source's environment (the workers
-- see the environment of `sluice start`), and the Lambda mock tells which
-- key signed the Invoke call and who minted it (the sts / ecs / imds mocks
-- share its mint secret). Sources: the environment, the shared credentials
-- file (AWS_SHARED_CREDENTIALS_FILE + AWS_PROFILE, and ~/.aws), the ECS
-- endpoint (relative URI with SLUICE_AWS_ECS_ENDPOINT, full URI with a
-- token file), web identity through STS, IMDSv2 and the IMDSv1 fallback
-- (and its refusal with aws_imds_protocol_version v2), AssumeRole through
-- STS over static and over chain credentials, none at all, and the refresh
-- of short-lived credentials before they expire.

local helpers = require "spec.helpers"
local cjson = require "cjson"
local mf = require "spec.internal.mock_faas"
local util = require "spec.internal.util"
local fh = require "spec.internal.faas_plugins"


local AWS = mf.AWS
local TOKEN_CREDS = {
  access_key = "AKIDSLUICETOKENEXAMP",
  secret_key = "token/Secret+Key/0123456789abcdefghijkl",
  session_token = "session-token-from-env",
}
local ROLE_ARN = "arn:aws:iam::123456789012:role/sluice-invoker"
local WEB_ROLE_ARN = "arn:aws:iam::123456789012:role/sluice-web"
-- header.payload.signature, payload {"sub":"pod-1"}
local WEB_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwb2QtMSJ9.c2ln"
local ECS_URI = "/v2/credentials/sluice-spec"
local ECS_TOKEN = "ecs-auth-token-123"
local NONE = {}  -- a start() config value that removes the key


local function tmpdir(tag)
  return fh.tmpdir("aws-lambda-" .. tag)
end


describe("Plugin: aws-lambda (credentials)", function()
  local lambda, sts, ecs, imds
  local empty_home

  lazy_setup(function()
    lambda = assert(mf.start({ platform = "lambda",
                               credentials = { AWS, TOKEN_CREDS } }))
    sts = assert(mf.start({ platform = "sts", credentials = { AWS },
                            role_arns = { ROLE_ARN, WEB_ROLE_ARN },
                            web_identity_tokens = { WEB_TOKEN } }))
    ecs = assert(mf.start({ platform = "ecs", relative_uri = ECS_URI,
                            auth_token = ECS_TOKEN }))
    imds = assert(mf.start({ platform = "imds", imds_v2 = "optional" }))
    empty_home = tmpdir("home")
  end)

  lazy_teardown(function()
    for _, m in ipairs({ lambda, sts, ecs, imds }) do
      m.stop()
    end
  end)


  -- A gateway whose route <name>.aws-lambda.test invokes the Lambda mock
  -- with `config` over the defaults (no keys: the chain), started with
  -- `env` (HOME is an empty directory and IMDS is off unless env says).
  local function start(env, routes)
    local e = { HOME = empty_home, AWS_EC2_METADATA_DISABLED = "true" }
    for k, v in pairs(env or {}) do
      e[k] = v ~= false and v or nil
    end
    local list = {}
    for name, config in pairs(routes) do
      local c = {
        function_name = "echo",
        aws_region = "us-east-1",
        host = "127.0.0.1",
        port = lambda.port,
        disable_https = true,
        timeout = 5000,
      }
      for k, v in pairs(config) do
        if v == NONE then
          c[k] = nil
        else
          c[k] = v
        end
      end
      list[#list + 1] = {
        name = "r-" .. name,
        hosts = { name .. ".aws-lambda.test" },
        plugins = { { name = "aws-lambda", config = c } },
      }
    end
    assert(helpers.start_kong({
      plugins = "bundled,aws-lambda",
      declarative_config = {
        _format_version = "3.0",
        services = { { name = "unused", url = "http://127.0.0.1:1",
                       routes = list } },
      },
    }, { env = e }))
  end

  -- Invokes the route; returns the Lambda mock's record of that call.
  local function invoke(name, status)
    lambda.clear()
    local client = helpers.proxy_client(10000)
    local res = assert(client:send({
      method = "GET", path = "/", query = { from = name },
      headers = { Host = name .. ".aws-lambda.test" },
    }))
    local body = assert.res_status(status or 200, res)
    client:close()
    if (status or 200) ~= 200 then
      return nil, body
    end
    assert.same({ from = name }, cjson.decode(body))
    local list = lambda.requests()
    assert.equal(1, #list)
    assert.is_true(list[1].sigv4.ok, cjson.encode(list[1].sigv4))
    return list[1].sigv4
  end


  describe("from the environment", function()
    lazy_setup(function()
      sts.clear()
      start({ AWS_ACCESS_KEY_ID = AWS.access_key,
              AWS_SECRET_ACCESS_KEY = AWS.secret_key,
              AWS_REGION = "us-east-1" }, {
        env = {},
        envregion = { aws_region = NONE },
        assume = { aws_assume_role_arn = ROLE_ARN,
                   aws_sts_endpoint_url = sts.url },
      })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("signs with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY", function()
      local sig = invoke("env")
      assert.equal(AWS.access_key, sig.access_key)
      assert.equal("static", sig.credential_source)
    end)

    it("takes the region from AWS_REGION", function()
      local sig = invoke("envregion")
      assert.equal("us-east-1", sig.region)
      assert.equal(AWS.access_key, sig.access_key)
    end)

    it("assumes aws_assume_role_arn with them through STS", function()
      local sig = invoke("assume")
      assert.equal("sts-assume-role", sig.minted_by)
      local calls = sts.requests()
      assert.equal(1, #calls)
      assert.equal("AssumeRole", calls[1].action)
      assert.equal(ROLE_ARN, calls[1].params.RoleArn)
      assert.equal("kong", calls[1].params.RoleSessionName)
      assert.is_true(calls[1].sigv4.ok)
      assert.equal(AWS.access_key, calls[1].sigv4.access_key)
      assert.equal("sts", calls[1].sigv4.service)
      -- cached: a second call asks STS nothing
      assert.equal("sts-assume-role", invoke("assume").minted_by)
      assert.equal(1, #sts.requests())
    end)
  end)


  describe("from the environment with a session token", function()
    lazy_setup(function()
      start({ AMAZON_ACCESS_KEY_ID = TOKEN_CREDS.access_key,
              AMAZON_SECRET_ACCESS_KEY = TOKEN_CREDS.secret_key,
              AMAZON_SESSION_TOKEN = TOKEN_CREDS.session_token },
            { amazon = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("signs X-Amz-Security-Token (AMAZON_ names)", function()
      local sig = invoke("amazon")
      assert.equal(TOKEN_CREDS.access_key, sig.access_key)
      assert.contains("x-amz-security-token", sig.signed_headers)
      local r = lambda.requests()[1]
      assert.equal(TOKEN_CREDS.session_token,
                   r.headers["x-amz-security-token"])
    end)
  end)


  describe("from the shared credentials file", function()
    lazy_setup(function()
      local dir = tmpdir("shared")
      local file = dir .. "/credentials"
      assert(util.write_file(file, table.concat({
        "[default]",
        "aws_access_key_id = AKIDWRONGDEFAULT0000",
        "aws_secret_access_key = wrong",
        "",
        "# the one to use",
        "[dev]",
        "aws_access_key_id = " .. AWS.access_key,
        "aws_secret_access_key = " .. AWS.secret_key,
      }, "\n") .. "\n"))
      start({ AWS_SHARED_CREDENTIALS_FILE = file, AWS_PROFILE = "dev" },
            { file = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("reads AWS_PROFILE from AWS_SHARED_CREDENTIALS_FILE", function()
      assert.equal(AWS.access_key, invoke("file").access_key)
    end)
  end)


  describe("from ~/.aws/credentials", function()
    lazy_setup(function()
      local home = tmpdir("home-aws")
      util.mkdir(home .. "/.aws")
      assert(util.write_file(home .. "/.aws/credentials",
        "[default]\naws_access_key_id=" .. AWS.access_key
        .. "\naws_secret_access_key=" .. AWS.secret_key .. "\n"))
      start({ HOME = home }, { home = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("reads the default profile", function()
      assert.equal(AWS.access_key, invoke("home").access_key)
    end)
  end)


  describe("from the ECS endpoint (relative URI)", function()
    lazy_setup(function()
      -- short-lived: refreshed within a few seconds
      ecs.set_config({ expiry_seconds = 4 })
      ecs.clear()
      start({ AWS_CONTAINER_CREDENTIALS_RELATIVE_URI = ECS_URI,
              SLUICE_AWS_ECS_ENDPOINT = ecs.url,
              AWS_CONTAINER_AUTHORIZATION_TOKEN = ECS_TOKEN },
            { ecs = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
      ecs.set_config({ expiry_seconds = 3600 })
    end)

    it("uses minted credentials, fetched once", function()
      local sig = invoke("ecs")
      assert.equal("ecs", sig.minted_by)
      assert.equal(sig.access_key, invoke("ecs").access_key)
      local calls = ecs.requests()
      assert.equal(1, #calls)
      assert.equal(ECS_URI, calls[1].path)
      assert.equal(ECS_TOKEN, calls[1].headers["authorization"])
    end)

    it("refreshes them before they expire, never uses them expired",
     function()
      local seen, keys = {}, 0
      local deadline = helpers.now() + 8
      -- every call succeeds (invoke asserts 200 and a valid signature:
      -- the Lambda mock refuses an expired token)
      while helpers.now() < deadline and keys < 3 do
        local ak = invoke("ecs").access_key
        if not seen[ak] then
          seen[ak] = true
          keys = keys + 1
        end
        helpers.sleep(0.2)
      end
      assert.is_true(keys >= 3, "the credentials were refreshed "
                                .. (keys - 1) .. " times in 8 s")
      assert.is_true(#ecs.requests() >= 3)
    end)
  end)


  describe("from the ECS endpoint (full URI, token file)", function()
    lazy_setup(function()
      ecs.clear()
      local dir = tmpdir("ecs")
      assert(util.write_file(dir .. "/token", ECS_TOKEN .. "\n"))
      start({ AWS_CONTAINER_CREDENTIALS_FULL_URI = ecs.url .. ECS_URI,
              AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = dir .. "/token" },
            { ecsfull = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("sends the token read from the file", function()
      assert.equal("ecs", invoke("ecsfull").minted_by)
      assert.equal(ECS_TOKEN, ecs.requests()[1].headers["authorization"])
    end)
  end)


  describe("from a web identity token", function()
    lazy_setup(function()
      sts.clear()
      local dir = tmpdir("webid")
      assert(util.write_file(dir .. "/token", WEB_TOKEN))
      start({ AWS_WEB_IDENTITY_TOKEN_FILE = dir .. "/token",
              AWS_ROLE_ARN = WEB_ROLE_ARN,
              AWS_ROLE_SESSION_NAME = "pod-session",
              AWS_ENDPOINT_URL_STS = sts.url }, { webid = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("calls AssumeRoleWithWebIdentity (unsigned)", function()
      assert.equal("sts-web-identity", invoke("webid").minted_by)
      local calls = sts.requests()
      assert.equal(1, #calls)
      assert.equal("AssumeRoleWithWebIdentity", calls[1].action)
      assert.same({ Action = "AssumeRoleWithWebIdentity",
                    Version = "2011-06-15", RoleArn = WEB_ROLE_ARN,
                    RoleSessionName = "pod-session",
                    WebIdentityToken = WEB_TOKEN }, calls[1].params)
      assert.is_nil(calls[1].headers["authorization"])
    end)
  end)


  describe("from IMDS", function()
    local function imds_env()
      return { AWS_EC2_METADATA_DISABLED = false,
               AWS_EC2_METADATA_SERVICE_ENDPOINT = imds.url }
    end

    describe("v2", function()
      lazy_setup(function()
        imds.set_config({ imds_v2 = "required" })
        imds.clear()
        start(imds_env(), { imds = {} })
      end)
      lazy_teardown(function()
        helpers.stop_kong()
      end)

      it("gets a token, the role, then the credentials", function()
        assert.equal("imds", invoke("imds").minted_by)
        local calls = imds.requests()
        assert.equal(3, #calls)
        assert.equal("PUT", calls[1].method)
        assert.equal("/latest/api/token", calls[1].path)
        assert.equal("21600",
                     calls[1].headers["x-aws-ec2-metadata-token-ttl-seconds"])
        assert.equal("/latest/meta-data/iam/security-credentials/",
                     calls[2].path)
        assert.equal("/latest/meta-data/iam/security-credentials/"
                     .. "sluice-mock-role", calls[3].path)
        assert.equal("valid", calls[2].token)
        assert.equal("valid", calls[3].token)
      end)
    end)

    describe("v1 fallback", function()
      lazy_setup(function()
        imds.set_config({ imds_v2 = "disabled" })
        imds.clear()
        start(imds_env(), { imdsv1 = {},
                            imdsv2only = { aws_imds_protocol_version =
                                           "v2" } })
      end)
      lazy_teardown(function()
        helpers.stop_kong()
        imds.set_config({ imds_v2 = "optional" })
      end)

      it("reads without a token when the PUT is refused", function()
        assert.equal("imds", invoke("imdsv1").minted_by)
        local calls = imds.requests()
        assert.equal(3, #calls)
        assert.equal(403, calls[1].status)
        assert.equal("none", calls[2].token)
        assert.equal("none", calls[3].token)
      end)

      it("is refused with aws_imds_protocol_version v2", function()
        local _, body = invoke("imdsv2only", 500)
        assert.equal("An unexpected error occurred",
                     cjson.decode(body).message)
        assert.logfile().has.line("Credentials not found: no credentials "
                                  .. "found (IMDSv2: no token (403))",
                                  true, 5)
      end)
    end)
  end)


  describe("assume role over static keys, and no keys", function()
    lazy_setup(function()
      sts.clear()
      start({}, { static = { aws_key = AWS.access_key,
                             aws_secret = AWS.secret_key,
                             aws_assume_role_arn = ROLE_ARN,
                             aws_role_session_name = "sluice-spec",
                             aws_sts_endpoint_url = sts.url },
                  denied = { aws_key = AWS.access_key,
                             aws_secret = AWS.secret_key,
                             aws_assume_role_arn =
                               "arn:aws:iam::123456789012:role/not-allowed",
                             aws_sts_endpoint_url = sts.url },
                  none = {} })
    end)
    lazy_teardown(function()
      helpers.stop_kong()
    end)

    it("signs with the assumed role's credentials", function()
      assert.equal("sts-assume-role", invoke("static").minted_by)
      local call = sts.requests()[1]
      assert.equal("sluice-spec", call.params.RoleSessionName)
    end)

    it("answers 500 when STS refuses, with STS's message", function()
      invoke("denied", 500)
      assert.logfile().has.line("STS answered 403: User is not authorized",
                                true, 5)
    end)

    it("without any gives 500 and Kong's log line", function()
      invoke("none", 500)
      assert.logfile().has.line("Credentials not found: no credentials "
                                .. "found", true, 5)
      assert.equal(0, #lambda.requests())
    end)
  end)
end)
