-- openfaas schema (Sluice's own plugin): defaults, accepted configs and
-- the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local ps = require "spec.internal.plugin_schema"


ps.map_plugins("kong.plugins.openfaas.schema")


local v = ps.validate


local DEFAULTS = {
  port = 8080,
  https = false,
  https_verify = false,
  async = false,
  timeout = 60000,
  keepalive = 60000,
  forward_path = true,
  forward_query = true,
  forward_headers = true,
}


local MIN = { host = "gateway.openfaas.test", function_name = "echo" }


local min, full = ps.builders(MIN, DEFAULTS)


describe("Plugin: openfaas (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.openfaas.schema"
  end)

  local function get_schema()
    return schema
  end

  it("is named after the plugin", function()
    assert.equal("openfaas", schema.name)
  end)

  it("fills the defaults", function()
    local row, err = v(min(), schema)
    assert.is_nil(err)
    assert.same(full(), row.config)
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  -- { what, config, expected config after validation }
  local valid = {
    { "a namespace", min({ namespace = "openfaas-fn" }),
      full({ namespace = "openfaas-fn" }) },
    { "a dotted function name", min({ function_name = "echo.staging" }),
      full({ function_name = "echo.staging" }) },
    { "async with a callback",
      min({ async = true, callback_url = "http://cb.test:9000/done" }),
      full({ async = true, callback_url = "http://cb.test:9000/done" }) },
    { "basic auth", min({ basic_auth = { username = "admin",
                                          password = "s3cr3t" } }),
      full({ basic_auth = { username = "admin", password = "s3cr3t" } }) },
    { "a bearer token", min({ bearer_token = "tok" }),
      full({ bearer_token = "tok" }) },
    { "https with verification, other port and timeouts",
      min({ https = true, https_verify = true, port = 443, timeout = 5,
            keepalive = 0 }),
      full({ https = true, https_verify = true, port = 443, timeout = 5,
             keepalive = 0 }) },
    { "nothing forwarded",
      min({ forward_path = false, forward_query = false,
            forward_headers = false }),
      full({ forward_path = false, forward_query = false,
             forward_headers = false }) },
  }
  ps.it_accepts(it, valid, get_schema)

  -- { what, config, expected error fields (or a check of them) }
  local invalid = {
    { "no config", {},
      { config = { host = "required field missing",
                   function_name = "required field missing" } } },
    { "a function name with a slash", min({ function_name = "a/b" }),
      { config = { function_name = "invalid function name" } } },
    { "an empty function name", min({ function_name = "" }),
      { config = { function_name = "invalid function name" } } },
    { "a namespace with a dot", min({ namespace = "a.b" }),
      { config = { namespace = "invalid namespace" } } },
    { "a callback URL without async",
      min({ callback_url = "http://cb.test/" }),
      { config = { ["@entity"] = { "callback_url needs async = true" },
                   async = "value must be true" } } },
    { "a callback that is not a URL",
      min({ async = true, callback_url = "not a url" }),
      function(err)
        assert.is_string(err.config.callback_url)
      end },
    { "basic auth and a bearer token",
      min({ basic_auth = { username = "a", password = "b" },
            bearer_token = "t" }),
      { config = { ["@entity"] = {
        "only one or none of these fields must be set: 'basic_auth', "
        .. "'bearer_token'" } } } },
    { "basic auth without a password",
      min({ basic_auth = { username = "a" } }),
      { config = { basic_auth = { password = "required field missing" } } } },
    { "a port out of range", min({ port = -1 }),
      { config = { port = "value should be between 0 and 65535" } } },
    { "a zero timeout", min({ timeout = 0 }),
      { config = { timeout = "value must be greater than 0" } } },
    { "an unknown field", min({ gateway = "x" }),
      { config = { gateway = "unknown field" } } },
  }
  ps.it_rejects(it, invalid, get_schema)

  ps.it_http_only(it, min(), get_schema)
end)
