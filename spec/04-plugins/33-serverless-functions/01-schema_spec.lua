-- pre-function / post-function schema (Kong's
-- spec/03-plugins/33-serverless-functions/01-schema_spec.lua, extended):
-- chunks are only syntax-checked, never run; errors land at
-- config.<phase>[i]; at least one phase must be non-empty. Plain luajit:
-- plugin rows are validated as the declarative loader does, through
-- sluice.schema.plugins.

local ps = require "spec.internal.plugin_schema"


ps.map_plugins("kong.plugins.pre-function.schema")

-- until lua/kong/db/schema/typedefs.lua lands, the two typedefs used here
if not package.searchpath("kong.db.schema.typedefs", package.path) then
  package.preload["kong.db.schema.typedefs"] = function()
    local null = require("cjson").null
    return {
      no_consumer = { type = "foreign", reference = "consumers", eq = null },
      protocols = {
        type = "set",
        required = true,
        default = { "grpc", "grpcs", "http", "https" },
        elements = { type = "string",
                     one_of = { "grpc", "grpcs", "http", "https", "tcp",
                                "tls", "tls_passthrough", "udp", "ws",
                                "wss" } },
      },
    }
  end
end


local PHASES = { "certificate", "rewrite", "access", "header_filter",
                 "body_filter", "log" }
local AT_LEAST_ONE = "at least one of these fields must be non-empty: " ..
  "'config.certificate', 'config.rewrite', 'config.access', " ..
  "'config.header_filter', 'config.body_filter', 'config.log'"

local mock_fn_one = '("hello world!"):find("world")'
local mock_fn_two = 'local x = 1'
local mock_fn_three = 'local x = 1 return function() x = x + 1 end'
local mock_fn_invalid = 'print('
local mock_fn_invalid_return = 'return "hello-world"'
local mock_fn_runs = '_G.serverless_schema_ran = true'


local v = ps.validate


for _, plugin_name in ipairs({ "pre-function", "post-function" }) do
  local parse_error = "error parsing " .. plugin_name ..
                      ": [string \"print(\"]:1: unexpected symbol near '<eof>'"

  describe("Plugin: " .. plugin_name .. " schema", function()
    local schema

    lazy_setup(function()
      schema = require("kong.plugins." .. plugin_name .. ".schema")
    end)

    after_each(function()
      _G.kong = nil
      _G.serverless_schema_ran = nil
    end)

    it("is named after the plugin", function()
      assert.equal(plugin_name, schema.name)
    end)

    -- { what, functions }
    local valid = {
      { "single function", { mock_fn_one } },
      { "error in function is not triggered during validation",
        { [[error("should never happen")]] } },
      { "single function with upvalues", { mock_fn_three } },
      { "multiple functions", { mock_fn_one, mock_fn_two } },
      { "a valid chunk with an invalid return type",
        { mock_fn_invalid_return } },
    }
    for _, c in ipairs(valid) do
      it("validates " .. c[1], function()
        local ok, err = v({ access = c[2] }, schema)
        assert.truthy(ok)
        assert.falsy(err)
        assert.same(c[2], ok.config.access)
      end)
    end

    for _, phase in ipairs(PHASES) do
      it("accepts functions in " .. phase .. " alone, the others {}",
         function()
        local row, err = v({ [phase] = { mock_fn_one } }, schema)
        assert.falsy(err)
        for _, p in ipairs(PHASES) do
          assert.same(p == phase and { mock_fn_one } or {}, row.config[p])
        end
        assert.same({ "grpc", "grpcs", "http", "https" }, row.protocols)
      end)

      it("reports the invalid chunk in " .. phase .. "[2]", function()
        local ok, err = v({ [phase] = { mock_fn_one, mock_fn_invalid } },
                          schema)
        assert.falsy(ok)
        assert.same({ [phase] = { [2] = parse_error } }, err.config)
      end)
    end

    it("does not run the code while validating (#5110)", function()
      local ok = v({ access = { mock_fn_runs }, log = { mock_fn_runs } },
                   schema)
      assert.truthy(ok)
      assert.is_nil(rawget(_G, "serverless_schema_ran"))
    end)

    it("accepts code with untrusted_lua = off (it fails when run)",
       function()
      _G.kong = { configuration = { untrusted_lua = "off" } }
      local ok, err = v({ access = { mock_fn_one } }, schema)
      assert.truthy(ok)
      assert.falsy(err)
    end)

    describe("errors", function()
      it("with an invalid function", function()
        local ok, err = v({ access = { mock_fn_invalid } }, schema)
        assert.falsy(ok)
        assert.equals(parse_error, err.config.access[1])
      end)

      it("with a valid and invalid function", function()
        local ok, err = v({ access = { mock_fn_one, mock_fn_invalid } },
                          schema)
        assert.falsy(ok)
        assert.is_nil(err.config.access[1])
        assert.equals(parse_error, err.config.access[2])
      end)

      it("in the Admin API message shape", function()
        local _, _, err_t = v({ access = { mock_fn_invalid } }, schema)
        assert.equal(2, err_t.code)
        assert.equal("schema violation", err_t.name)
        -- one level deep, the array pretty-printed (Kong's format)
        assert.matches("schema violation (config.access: {", err_t.message,
                       nil, true)
        assert.matches(parse_error, err_t.message:gsub("\\\"", "\""), nil,
                       true)
      end)

      -- { what, config, expected error fields }
      local cases = {
        { "with no phase", {}, { ["@entity"] = { AT_LEAST_ONE } } },
        { "with only empty phases", { access = {}, log = {} },
          { ["@entity"] = { AT_LEAST_ONE } } },
        { "with precompiled bytecode",
          { access = { string.dump(function() end) } },
          { config = { access = {
            "error parsing " .. plugin_name ..
            ": attempt to load chunk with wrong mode" } } } },
        { "with an empty chunk", { access = { "" } },
          { config = { access = { "length must be at least 1" } } } },
        { "with a non-string chunk", { access = { 42 } },
          { config = { access = { "expected a string" } } } },
        { "with a phase that is not an array", { access = "return 1" },
          { config = { access = "expected an array" } } },
        { "with the removed config.functions",
          { functions = { mock_fn_one }, access = { mock_fn_one } },
          { config = { functions = "unknown field" } } },
        { "with a response phase (Kong has none)",
          { response = { mock_fn_one }, access = { mock_fn_one } },
          { config = { response = "unknown field" } } },
      }
      for _, c in ipairs(cases) do
        it(c[1], function()
          local ok, err = v(c[2], schema)
          assert.falsy(ok)
          assert.same(c[3], err)
        end)
      end

      it("when scoped to a consumer", function()
        local ok, err = v({ access = { mock_fn_one } }, schema,
                          { consumer = { id = "1c5c2f3e-2d2b-4c57-9b0f-" ..
                                                "1b8a0f6e1a11" } })
        assert.falsy(ok)
        assert.same({ consumer = "value must be null" }, err)
      end)
    end)
  end)
end
