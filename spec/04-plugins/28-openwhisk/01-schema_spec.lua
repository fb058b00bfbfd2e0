-- openwhisk schema (Kong/kong-plugin-openwhisk's fields and defaults):
-- defaults, accepted configs and the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local ps = require "spec.internal.plugin_schema"


ps.map_plugins("kong.plugins.openwhisk.schema")


local v = ps.validate


local DEFAULTS = {
  timeout = 60000,
  keepalive = 60000,
  port = 443,
  https = true,
  https_verify = false,
  result = true,
}


local MIN = { host = "openwhisk.test", path = "/api/v1/namespaces/guest",
              action = "hello" }


local min, full = ps.builders(MIN, DEFAULTS)


describe("Plugin: openwhisk (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.openwhisk.schema"
  end)

  local function get_schema()
    return schema
  end

  it("is named after the plugin", function()
    assert.equal("openwhisk", schema.name)
  end)

  it("fills Kong's defaults", function()
    local row, err = v(min(), schema)
    assert.is_nil(err)
    assert.same(full(), row.config)
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  -- { what, config, expected config after validation }
  local valid = {
    { "every field",
      min({ timeout = 1000, keepalive = 0, service_token = "uuid:key",
            port = 3233, https = false, https_verify = true,
            result = false }),
      full({ timeout = 1000, keepalive = 0, service_token = "uuid:key",
             port = 3233, https = false, https_verify = true,
             result = false }) },
    { "a packaged action", min({ action = "pkg/hello" }),
      full({ action = "pkg/hello" }) },
    { "an action name with @, dots, dashes and inner spaces",
      min({ action = "my act.v-1@x" }),
      full({ action = "my act.v-1@x" }) },
    { "a one-letter action", min({ action = "a" }),
      full({ action = "a" }) },
    { "an IP host", min({ host = "127.0.0.1" }),
      full({ host = "127.0.0.1" }) },
    { "a path without its leading slash", min({ path = "api/v1/x" }),
      full({ path = "api/v1/x" }) },
  }
  ps.it_accepts(it, valid, get_schema)

  -- { what, config, expected error fields }
  local invalid = {
    { "no config", {},
      { config = { host = "required field missing",
                   path = "required field missing",
                   action = "required field missing" } } },
    { "a missing action", min({ action = false }),
      { config = { action = "expected a string" } } },
    { "an action ending in a slash", min({ action = "pkg/" }),
      { config = { action = "invalid action name 'pkg/'" } } },
    { "an action with a trailing space", min({ action = "hello " }),
      { config = { action = "invalid action name 'hello '" } } },
    { "an action with a query character", min({ action = "a?b" }),
      { config = { action = "invalid action name 'a?b'" } } },
    { "three action segments", min({ action = "a//b" }),
      { config = { action = "invalid action name 'a//b'" } } },
    { "a path with a query", min({ path = "/api?x=1" }),
      { config = { path = "must be a path without query or fragment" } } },
    { "a bad host", min({ host = "bad host" }),
      { config = { host = "invalid value: bad host" } } },
    { "a port out of range", min({ port = 70000 }),
      { config = { port = "value should be between 0 and 65535" } } },
    { "a zero timeout", min({ timeout = 0 }),
      { config = { timeout = "value must be greater than 0" } } },
    { "a fractional timeout", min({ timeout = 1.5 }),
      { config = { timeout = "expected an integer" } } },
    { "a negative keepalive", min({ keepalive = -1 }),
      { config = { keepalive = "value should be between 0 and 2147483646" } } },
    { "result as text", min({ result = "yes" }),
      { config = { result = "expected a boolean" } } },
    { "an unknown field", min({ methods = { "GET" } }),
      { config = { methods = "unknown field" } } },
  }
  ps.it_rejects(it, invalid, get_schema)

  ps.it_http_only(it, min(), get_schema)
end)
