-- azure-functions schema (Kong's fields and defaults, plus the Sluice
-- extensions `port` and `forward_path`): defaults, accepted configs and
-- the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local plugins_schema = require "sluice.schema.plugins"


-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
if not package.searchpath("kong.plugins.azure-functions.schema", package.path)
then
  table.insert(package.loaders, 2, function(name)
    local plugin, mod = name:match("^kong%.plugins%.([^.]+)%.(.+)$")
    if not plugin then
      return nil
    end
    local path = "plugins/" .. plugin .. "/" .. mod:gsub("%.", "/") .. ".lua"
    local f = io.open(path)
    if not f then
      return "\n\tno file '" .. path .. "'"
    end
    f:close()
    return assert(loadfile(path))
  end)
end


-- the row, or nil and the error fields and the whole error table
local function v(config, schema_def, extra)
  local sub, err = plugins_schema.load(schema_def.name, schema_def)
  assert(sub, err)
  local row = { name = schema_def.name, config = config }
  for k, x in pairs(extra or {}) do
    row[k] = x
  end
  local out, err_t = plugins_schema.validate(sub, row)
  if not out then
    return nil, err_t.fields, err_t
  end
  return out
end


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


local function merge(a, b)
  local out = {}
  for k, x in pairs(a) do
    out[k] = x
  end
  for k, x in pairs(b or {}) do
    out[k] = x
  end
  return out
end


local function min(extra)
  return merge(MIN, extra)
end


local function full(extra)
  return merge(DEFAULTS, min(extra))
end


describe("Plugin: azure-functions (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.azure-functions.schema"
  end)

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
  for _, c in ipairs(valid) do
    it("accepts " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(err)
      assert.same(c[3], row.config)
    end)
  end

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
  for _, c in ipairs(invalid) do
    it("rejects " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(row)
      assert.same(c[3], err)
    end)
  end

  it("accepts tcp-family protocols as Kong does (typedefs.protocols)",
     function()
    local row, err = v(min(), schema, { protocols = { "https" } })
    assert.is_nil(err)
    assert.same({ "https" }, row.protocols)
  end)
end)
