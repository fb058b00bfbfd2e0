-- aws-lambda schema (Kong's spec/03-plugins/27-aws-lambda/02-schema_spec,
-- extended with the APISIX way and Sluice's additions): defaults, accepted
-- configs and Kong's messages for the rejected ones. Plain luajit: rows are
-- validated as the declarative loader does, through sluice.schema.plugins
-- (03-config_spec.lua does the same through `sluice config parse`).

local ps = require "spec.internal.plugin_schema"


ps.map_plugins("kong.plugins.aws-lambda.schema")


local schema_def = require "kong.plugins.aws-lambda.schema"


-- Kong's helpers.validate_plugin_config_schema: the row, or nil and the
-- error fields.
local function v(config)
  local row, fields = ps.validate(config, schema_def)
  return row, fields
end


describe("Plugin: aws-lambda (schema)", function()
  it("is named after the plugin", function()
    assert.equal("aws-lambda", schema_def.name)
  end)

  it("fills Kong's defaults", function()
    local row = assert(v({ function_name = "my-fn" }))
    assert.same({
      function_name = "my-fn",
      timeout = 60000,
      keepalive = 60000,
      aws_role_session_name = "kong",
      invocation_type = "RequestResponse",
      log_type = "Tail",
      port = 443,
      disable_https = false,
      forward_request_method = false,
      forward_request_uri = false,
      forward_request_headers = false,
      forward_request_body = false,
      is_proxy_integration = false,
      awsgateway_compatible = false,
      awsgateway_compatible_payload_version = "1.0",
      skip_large_bodies = true,
      base64_encode_body = true,
      aws_imds_protocol_version = "v1",
      empty_arrays_mode = "legacy",
      ssl_verify = true,
      preserve_lambda_api_error_code = false,
    }, row.config)
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  -- Kong's cases
  it("accepts a nil unhandled_status", function()
    assert.truthy(v({ function_name = "f" }))
  end)

  it("accepts a correct unhandled_status", function()
    assert.truthy(v({ function_name = "f", unhandled_status = 412 }))
  end)

  it("rejects an unhandled_status below 100 or above 999", function()
    for _, s in ipairs({ 99, 1000 }) do
      local ok, err = v({ function_name = "f", unhandled_status = s })
      assert.is_nil(ok)
      assert.same({ config = {
        unhandled_status = "value should be between 100 and 999" } }, err)
    end
  end)

  it("rejects aws_key without aws_secret and the reverse", function()
    local msg = "all or none of these fields must be set: "
                .. "'config.aws_key', 'config.aws_secret'"
    local ok, err = v({ function_name = "f", aws_key = "k" })
    assert.is_nil(ok)
    assert.same({ ["@entity"] = { msg } }, err)
    ok, err = v({ function_name = "f", aws_secret = "s" })
    assert.is_nil(ok)
    assert.same({ ["@entity"] = { msg } }, err)
  end)

  it("accepts neither aws_key nor aws_secret (the chain)", function()
    assert.truthy(v({ function_name = "f" }))
    assert.truthy(v({ function_name = "f", aws_key = "k",
                      aws_secret = "s" }))
  end)

  it("rejects a proxy_url that is not http", function()
    local ok, err = v({ function_name = "f",
                        proxy_url = "https://proxy.example:3128" })
    assert.is_nil(ok)
    assert.same({ ["@entity"] = { "proxy_url scheme must be http" } }, err)
    assert.truthy(v({ function_name = "f",
                      proxy_url = "http://proxy.example:3128" }))
  end)

  it("accepts host and region, each optional", function()
    assert.truthy(v({ function_name = "f", host = "lambda.example.com" }))
    assert.truthy(v({ function_name = "f", aws_region = "eu-west-1" }))
    assert.truthy(v({ function_name = "f", aws_region = "eu-west-1",
                      host = "127.0.0.1" }))
  end)

  it("rejects a host that is not one", function()
    local ok, err = v({ function_name = "f", host = "not a host" })
    assert.is_nil(ok)
    assert.is_string(err.config.host)
  end)

  local enums = {
    { "invocation_type", "Later",
      'expected one of: RequestResponse, Event, DryRun' },
    { "log_type", "All", "expected one of: Tail, None" },
    { "aws_imds_protocol_version", "v3", "expected one of: v1, v2" },
    { "empty_arrays_mode", "x", "expected one of: legacy, correct" },
    { "awsgateway_compatible_payload_version", "3.0",
      "expected one of: 1.0, 2.0" },
  }
  for _, c in ipairs(enums) do
    it("rejects " .. c[1] .. " = " .. c[2], function()
      local ok, err = v({ function_name = "f", [c[1]] = c[2] })
      assert.is_nil(ok)
      assert.same({ config = { [c[1]] = c[3] } }, err)
    end)
  end

  it("rejects a port out of range and a zero timeout", function()
    local ok, err = v({ function_name = "f", port = 70000, timeout = 0 })
    assert.is_nil(ok)
    assert.equal("value should be between 0 and 65535", err.config.port)
    assert.equal("value must be greater than 0", err.config.timeout)
  end)

  -- client_context (Sluice)
  it("accepts a JSON object client_context", function()
    assert.truthy(v({ function_name = "f",
                      client_context = '{"custom":{"a":1}}' }))
  end)

  it("rejects a client_context that is no JSON object or too big",
     function()
    for _, cc in ipairs({ "[1,2]", "not json", '"s"' }) do
      local ok, err = v({ function_name = "f", client_context = cc })
      assert.is_nil(ok)
      assert.same({ config = { client_context = "must be a JSON object" } },
                  err)
    end
    local big = '{"a":"' .. string.rep("x", 2700) .. '"}'
    local ok, err = v({ function_name = "f", client_context = big })
    assert.is_nil(ok)
    assert.same({ config = { client_context =
      "must be at most 3583 bytes once base64-encoded" } }, err)
  end)

  -- the APISIX way
  describe("function_uri", function()
    it("accepts APISIX's apikey and iam authorizations", function()
      local row = assert(v({
        function_uri = "https://abc.execute-api.us-east-1.amazonaws.com/prod",
        authorization = { apikey = "key" } }))
      assert.equal("key", row.config.authorization.apikey)
      row = assert(v({
        function_uri = "https://abc.lambda-url.us-east-1.on.aws",
        authorization = { iam = { accesskey = "a", secretkey = "s",
                                  service = "lambda" } } }))
      assert.same({ accesskey = "a", secretkey = "s", service = "lambda",
                    aws_region = "us-east-1" },
                  row.config.authorization.iam)
    end)

    it("defaults iam to us-east-1 and execute-api", function()
      local row = assert(v({ function_uri = "http://127.0.0.1:9/x",
                             authorization = { iam = { accesskey = "a",
                                                       secretkey = "s" } } }))
      assert.equal("us-east-1", row.config.authorization.iam.aws_region)
      assert.equal("execute-api", row.config.authorization.iam.service)
    end)

    it("accepts no authorization at all", function()
      assert.truthy(v({ function_uri = "http://127.0.0.1:9/x" }))
    end)

    it("requires both iam keys", function()
      local ok, err = v({ function_uri = "http://127.0.0.1:9/x",
                          authorization = { iam = { accesskey = "a" } } })
      assert.is_nil(ok)
      assert.same({ config = { authorization = { iam = {
        secretkey = "required field missing" } } } }, err)
    end)

    it("must be http or https", function()
      local ok, err = v({ function_uri = "ftp://127.0.0.1/x" })
      assert.is_nil(ok)
      assert.same({ config = {
        function_uri = "function_uri scheme must be http or https" } }, err)
    end)

    it("cannot go with Invoke API fields", function()
      local cases = {
        { { function_name = "f" }, "function_name" },
        { { qualifier = "1" }, "qualifier" },
        { { host = "h.example" }, "host" },
        { { aws_key = "k", aws_secret = "s" }, "aws_key" },
        { { aws_assume_role_arn = "arn:aws:iam::1:role/r" },
          "aws_assume_role_arn" },
        { { awsgateway_compatible = true }, "awsgateway_compatible" },
        { { is_proxy_integration = true }, "is_proxy_integration" },
        { { forward_request_body = true }, "forward_request_body" },
        { { unhandled_status = 500 }, "unhandled_status" },
      }
      for _, c in ipairs(cases) do
        c[1].function_uri = "https://x.example/prod"
        local ok, err = v(c[1])
        assert.is_nil(ok)
        assert.same({ ["@entity"] = {
          "function_uri and " .. c[2] .. " cannot be used together" } }, err)
      end
      local ok, err = v({ function_uri = "https://x.example/prod",
                          invocation_type = "Event" })
      assert.is_nil(ok)
      assert.same({ ["@entity"] = {
        "function_uri and invocation_type Event cannot be used together" } },
        err)
    end)

    it("is what authorization needs", function()
      local ok, err = v({ function_name = "f",
                          authorization = { apikey = "k" } })
      assert.is_nil(ok)
      assert.same({ ["@entity"] = { "authorization requires function_uri" } },
                  err)
    end)
  end)
end)
