-- openfaas schema (Sluice's own plugin): defaults, accepted configs and
-- the errors of rejected ones. Plain
-- luajit: rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local plugins_schema = require "sluice.schema.plugins"


-- kong.plugins.<name>.<module> -> plugins/<name>/<module>.lua, as the
-- runtime maps them
if not package.searchpath("kong.plugins.openfaas.schema", package.path)
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


describe("Plugin: openfaas (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.openfaas.schema"
  end)

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
      nil },
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
  for _, c in ipairs(invalid) do
    it("rejects " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(row)
      if c[3] then
        assert.same(c[3], err)
      else
        assert.is_string(err.config.callback_url)
      end
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
