-- jwt-claims schema (examples/plugins/jwt-claims): defaults, the accepted
-- configs and Kong's error messages for the rejected ones. Plain luajit:
-- rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local plugins_schema = require "sluice.schema.plugins"
local ps = require "spec.internal.plugin_schema"


local PLUGIN_DIR = "examples/plugins/jwt-claims/"
if not package.searchpath("kong.plugins.jwt-claims.schema", package.path)
then
  package.path = PLUGIN_DIR .. "?.lua;" .. package.path
end


-- Kong's helpers.validate_plugin_config_schema: the row, or nil and the
-- error fields and the whole error table.
local v = ps.validate


describe("Plugin: jwt-claims (schema)", function()
  local schema

  lazy_setup(function()
    schema = require "kong.plugins.jwt-claims.schema"
  end)

  it("is named after the plugin", function()
    assert.equal("jwt-claims", schema.name)
  end)

  it("loads as a plugin subschema (Kong's metaschema)", function()
    local sub, err = plugins_schema.load("jwt-claims", schema)
    assert.is_nil(err)
    assert.truthy(sub)
  end)

  it("fills the defaults of an empty config", function()
    local row, err = v({}, schema)
    assert.is_nil(err)
    assert.same({ claim = "sub", header = "X-Claim", leeway = 0 },
                row.config)
    table.sort(row.protocols)
    assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
  end)

  it("fills the defaults with no config at all", function()
    local row, err = v(nil, schema)
    assert.is_nil(err)
    assert.same({ claim = "sub", header = "X-Claim", leeway = 0 },
                row.config)
  end)

  -- { what, config, expected config after validation }
  local valid = {
    { "a secret", { secret = "s3cr3t" },
      { secret = "s3cr3t", claim = "sub", header = "X-Claim", leeway = 0 } },
    { "every field",
      { secret = "k", claim = "email", header = "X-Email",
        upstream_header = "X-Consumer-Email", leeway = 30 },
      { secret = "k", claim = "email", header = "X-Email",
        upstream_header = "X-Consumer-Email", leeway = 30 } },
    { "the largest leeway", { leeway = 86400 },
      { claim = "sub", header = "X-Claim", leeway = 86400 } },
    { "a claim with dashes and dots", { claim = "https://x.test/role" },
      { claim = "https://x.test/role", header = "X-Claim", leeway = 0 } },
  }
  for _, c in ipairs(valid) do
    it("accepts " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(err)
      assert.same(c[3], row.config)
    end)
  end

  it("accepts the http protocols", function()
    local row, err = v({}, schema, { protocols = { "https" } })
    assert.is_nil(err)
    assert.same({ "https" }, row.protocols)
  end)

  -- { what, config, expected error fields }
  local invalid = {
    { "a negative leeway", { leeway = -1 },
      { config = { leeway = "value should be between 0 and 86400" } } },
    { "a leeway over a day", { leeway = 86401 },
      { config = { leeway = "value should be between 0 and 86400" } } },
    { "a fractional leeway", { leeway = 1.5 },
      { config = { leeway = "expected an integer" } } },
    { "a leeway as text", { leeway = "10" },
      { config = { leeway = "expected an integer" } } },
    { "an empty claim", { claim = "" },
      { config = { claim = "length must be at least 1" } } },
    { "an empty secret", { secret = "" },
      { config = { secret = "length must be at least 1" } } },
    { "a secret that is not a string", { secret = 42 },
      { config = { secret = "expected a string" } } },
    { "a header name with a space", { header = "X Claim" },
      { config = { header = "bad header name 'X Claim', allowed " ..
        "characters are A-Z, a-z, 0-9, '_', and '-'" } } },
    { "an upstream header name with a colon", { upstream_header = "a:b" },
      { config = { upstream_header = "bad header name 'a:b', allowed " ..
        "characters are A-Z, a-z, 0-9, '_', and '-'" } } },
    { "an unknown field", { algorithm = "RS256" },
      { config = { algorithm = "unknown field" } } },
  }
  for _, c in ipairs(invalid) do
    it("rejects " .. c[1], function()
      local row, err = v(c[2], schema)
      assert.is_nil(row)
      assert.same(c[3], err)
    end)
  end

  it("rejects a consumer (typedefs.no_consumer)", function()
    local row, err = v({}, schema, {
      consumer = { id = "a3e3b6f4-0b8e-4a7e-9f3e-3b1f0f8c8a11" },
    })
    assert.is_nil(row)
    assert.same({ consumer = "value must be null" }, err)
  end)

  it("rejects non-http protocols (typedefs.protocols_http)", function()
    local row, err = v({}, schema, { protocols = { "tcp" } })
    assert.is_nil(row)
    assert.same({
      protocols = { "expected one of: grpc, grpcs, http, https" },
    }, err)
  end)

  it("reports in the Admin API message shape", function()
    local _, _, err_t = v({ leeway = -1, claim = "" }, schema)
    assert.equal(2, err_t.code)
    assert.equal("schema violation", err_t.name)
    assert.equal("2 schema violations (config.claim: length must be at " ..
                 "least 1; config.leeway: value should be between 0 and " ..
                 "86400)", err_t.message)
  end)
end)
