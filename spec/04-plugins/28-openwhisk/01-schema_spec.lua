-- openwhisk schema (Kong/kong-plugin-openwhisk's fields and defaults):
-- defaults, accepted configs and the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local plugins_schema = require "sluice.schema.plugins"


-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
if not package.searchpath("kong.plugins.openwhisk.schema", package.path)
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
  timeout = 60000,
  keepalive = 60000,
  port = 443,
  https = true,
  https_verify = false,
  result = true,
}


local function with_defaults(t)
  local out = {}
  for k, x in pairs(DEFAULTS) do
    out[k] = x
  end
  for k, x in pairs(t) do
    out[k] = x
  end
  return out
end


local MIN = { host = "openwhisk.test", path = "/api/v1/namespaces/guest",
              action = "hello" }


local function min(extra)
  local out = {}
  for k, x in pairs(MIN) do
    out[k] = x
  end
  for k, x in pairs(extra or {}) do
    out[k] = x
  end
  return out
end


describe("Plugin: openwhisk (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.openwhisk.schema"
  end)

  it("is named after the plugin", function()
    assert.equal("openwhisk", schema.name)
  end)

  it("fills Kong's defaults", function()
    local row, err = v(min(), schema)
    assert.is_nil(err)
    assert.same(with_defaults(MIN), row.config)
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  -- { what, config, expected config after validation }
  local valid = {
    { "every field",
      min({ timeout = 1000, keepalive = 0, service_token = "uuid:key",
            port = 3233, https = false, https_verify = true,
            result = false }),
      with_defaults(min({ timeout = 1000, keepalive = 0,
                          service_token = "uuid:key", port = 3233,
                          https = false, https_verify = true,
                          result = false })) },
    { "a packaged action", min({ action = "pkg/hello" }),
      with_defaults(min({ action = "pkg/hello" })) },
    { "an action name with @, dots, dashes and inner spaces",
      min({ action = "my act.v-1@x" }),
      with_defaults(min({ action = "my act.v-1@x" })) },
    { "a one-letter action", min({ action = "a" }),
      with_defaults(min({ action = "a" })) },
    { "an IP host", min({ host = "127.0.0.1" }),
      with_defaults(min({ host = "127.0.0.1" })) },
    { "a path without its leading slash", min({ path = "api/v1/x" }),
      with_defaults(min({ path = "api/v1/x" })) },
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
  for _, c in ipairs(invalid) do
    it("rejects " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(row)
      assert.same(c[3], err)
    end)
  end

  it("rejects non-http protocols (typedefs.protocols_http)", function()
    local row, err = v(min(), schema, { protocols = { "tcp" } })
    assert.is_nil(row)
    assert.same({
      protocols = { "expected one of: grpc, grpcs, http, https" },
    }, err)
  end)
end)
