-- aws-lambda configs through the real CLI: `sluice config parse` on a
-- kong.yml names the entity and Kong's message for a bad plugin config,
-- accepts the Kong and the APISIX ways, and `sluice start` refuses to start
-- with a bad one.

local helpers = require "spec.helpers"


local ENV = { plugins = "bundled,aws-lambda" }


local function kong_yml(config)
  return helpers.make_yaml_file({
    _format_version = "3.0",
    services = { {
      name = "lambda",
      url = "http://127.0.0.1:9",
      routes = { {
        name = "r1",
        paths = { "/l" },
        plugins = { { name = "aws-lambda", config = config } },
      } },
    } },
  })
end


local function parse(config)
  local ok, stdout, stderr = helpers.kong_exec("config parse "
                                               .. kong_yml(config), ENV)
  return ok, stdout .. stderr
end


describe("Plugin: aws-lambda (config parse)", function()
  local accepted = {
    { "Kong's way", { function_name = "f", aws_region = "us-east-1",
                      aws_key = "k", aws_secret = "s",
                      invocation_type = "Event", unhandled_status = 412 } },
    { "the APISIX way with apikey",
      { function_uri = "https://abc.execute-api.us-east-1.amazonaws.com/p",
        authorization = { apikey = "key" } } },
    { "the APISIX way with iam",
      { function_uri = "https://abc.lambda-url.us-east-1.on.aws",
        authorization = { iam = { accesskey = "a", secretkey = "s",
                                  service = "lambda" } } } },
  }
  for _, c in ipairs(accepted) do
    it("accepts " .. c[1], function()
      local ok, out = parse(c[2])
      assert.is_true(ok, out)
    end)
  end

  local rejected = {
    { "aws_key without aws_secret", { function_name = "f", aws_key = "k" },
      "all or none of these fields must be set: 'config.aws_key', "
      .. "'config.aws_secret'" },
    { "an https proxy_url", { function_name = "f",
                              proxy_url = "https://p.example:3128" },
      "proxy_url scheme must be http" },
    { "a bad invocation_type", { function_name = "f",
                                 invocation_type = "Later" },
      "expected one of: RequestResponse, Event, DryRun" },
    { "function_uri with function_name",
      { function_name = "f", function_uri = "https://x.example/p" },
      "function_uri and function_name cannot be used together" },
    { "iam without secretkey",
      { function_uri = "https://x.example/p",
        authorization = { iam = { accesskey = "a" } } },
      "required field missing" },
  }
  for _, c in ipairs(rejected) do
    it("rejects " .. c[1], function()
      local ok, out = parse(c[2])
      assert.is_false(ok)
      assert.matches("plugins[1] (name 'aws-lambda')", out, nil, true)
      assert.matches(c[3], out, nil, true)
    end)
  end

  it("keeps `sluice start` from starting with a bad config", function()
    local ok, err = helpers.start_kong({
      plugins = "bundled,aws-lambda",
      declarative_config = kong_yml({ function_name = "f", aws_key = "k" }),
    })
    assert.is_nil(ok)
    assert.matches("all or none of these fields must be set", err, nil, true)
    helpers.stop_kong()
  end)
end)
