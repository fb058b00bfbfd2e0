-- azure-functions schema (Kong's fields and defaults, plus the Sluice
-- extensions `port` and `forward_path`): defaults, accepted configs and
-- the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local ps = require "spec.internal.plugin_schema"


ps.map_plugins("kong.plugins.azure-functions.schema")


local v = ps.validate


local DEFAULTS = {
  timeout = 600000,
  keepalive = 60000,
  https = true,
  https_verify = false,
  hostdomain = "azurewebsites.net",
  routeprefix = "api",
  forward_path = true,
}


local MIN = { appname = "myapp", functionname = "HttpTrigger" }


local min, full = ps.builders(MIN, DEFAULTS)


describe("Plugin: azure-functions (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.azure-functions.schema"
  end)

  local function get_schema()
    return schema
  end

  it("is named after the plugin", function()
    assert.equal("azure-functions", schema.name)
  end)

  it("fills Kong's defaults", function()
    local row, err = v(min(), schema)
    assert.is_nil(err)
    assert.same(full(), row.config)
    -- typedefs.protocols: every protocol Kong knows
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  -- { what, config, expected config after validation }
  local valid = {
    { "every Kong field",
      min({ timeout = 1000, keepalive = 5000, https = false,
            https_verify = true, apikey = "key", clientid = "client",
            hostdomain = "example.test", routeprefix = "/" }),
      full({ timeout = 1000, keepalive = 5000, https = false,
             https_verify = true, apikey = "key", clientid = "client",
             hostdomain = "example.test", routeprefix = "/" }) },
    { "fractional timeouts (Kong's type is number)",
      min({ timeout = 1500.5, keepalive = 0.5 }),
      full({ timeout = 1500.5, keepalive = 0.5 }) },
    { "the port extension", min({ port = 8443 }), full({ port = 8443 }) },
    { "forward_path off", min({ forward_path = false }),
      full({ forward_path = false }) },
    { "slashes around prefix and name",
      min({ routeprefix = "/api/", functionname = "/fn/" }),
      full({ routeprefix = "/api/", functionname = "/fn/" }) },
  }
  ps.it_accepts(it, valid, get_schema)

  -- { what, config, expected error fields }
  local invalid = {
    { "no config", {},
      { config = { appname = "required field missing",
                   functionname = "required field missing" } } },
    { "an empty route prefix (Kong's strings are non-empty: use \"/\")",
      min({ routeprefix = "" }),
      { config = { routeprefix = "length must be at least 1" } } },
    { "an app name that makes a bad host", min({ appname = "my app" }),
      { config = { ["@entity"] = {
        "appname.hostdomain: invalid value: my app.azurewebsites.net" } } } },
    { "a port out of range", min({ port = 65536 }),
      { config = { port = "value should be between 0 and 65535" } } },
    { "a zero timeout", min({ timeout = 0 }),
      { config = { timeout = "value must be greater than 0" } } },
    { "an apikey that is not a string", min({ apikey = 1 }),
      { config = { apikey = "expected a string" } } },
    { "an unknown field", min({ path = "/x" }),
      { config = { path = "unknown field" } } },
  }
  ps.it_rejects(it, invalid, get_schema)

  it("accepts tcp-family protocols as Kong does (typedefs.protocols)",
     function()
    local row, err = v(min(), schema, { protocols = { "https" } })
    assert.is_nil(err)
    assert.same({ "https" }, row.protocols)
  end)
end)
