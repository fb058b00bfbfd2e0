-- Plugin schemas written as Kong's (spec/fixtures/kong_schemas) loaded
-- with sluice.schema.plugins and validated as plugin rows, with Kong's
-- error tables.

local plugins_schema = require "sluice.schema.plugins"
local typedefs = require "kong.db.schema.typedefs"


local FIXTURES = "spec/fixtures/kong_schemas/"
local CONSUMER = { id = "9748f662-7711-4a90-8186-dc02f10eb0f5" }
local HTTP = { "grpc", "grpcs", "http", "https" }


local function load(name)
  local def = dofile(FIXTURES .. name .. ".lua")
  local sub, err = plugins_schema.load(name, def)
  assert(sub, err)
  return sub
end


local function violation(message, fields)
  return { code = 2, name = "schema violation", message = message,
           fields = fields }
end


describe("plugins_schema.load", function()
  it("loads the Kong-style fixtures", function()
    for _, name in ipairs({ "request-termination", "key-auth",
                            "rate-limiting", "pre-function" }) do
      assert.is_table(load(name))
    end
  end)

  local CASES = {
    { "unknown top-level key",
      { name = "p", fields = {}, priority = 1 },
      "schema violation (priority: unknown field)" },
    { "missing fields",
      { name = "p" },
      "schema violation (fields: field required for entity check)" },
    { "unknown attribute",
      { name = "p", fields = { { config = { type = "record", fields = {
        { a = { type = "string", colour = "red" } } } } } } },
      "schema violation (fields.1: {\n  fields = {\n    {\n      colour = "
      .. "\"unknown field\"\n    }\n  }\n})" },
    { "attribute on the wrong type",
      { name = "p", fields = { { config = { type = "record", fields = {
        { a = { type = "string", between = { 1, 2 } } } } } } } },
      "schema violation (a: field of type 'string' cannot have attribute "
      .. "'between')" },
    { "missing elements",
      { name = "p", fields = { { config = { type = "record", fields = {
        { a = { type = "array" } } } } } } },
      "schema violation (a: field of type 'array' must declare "
      .. "'elements')" },
    { "missing type",
      { name = "p", fields = { { config = { type = "record", fields = {
        { a = { default = 1 } } } } } } },
      "2 schema violations (a: missing type declaration; fields.1: {\n"
      .. "  fields = {\n    {\n      default = \"invalid type: nil\",\n"
      .. "      type = \"required field missing\"\n    }\n  }\n})" },
    { "bad default",
      { name = "p", fields = { { config = { type = "record", fields = {
        { a = { type = "integer", default = "x" } } } } } } },
      "schema violation (fields.1: {\n  fields = {\n    {\n      default = "
      .. "\"expected an integer\"\n    }\n  }\n})" },
    { "unknown entity check",
      { name = "p", fields = {}, entity_checks = {
        { at_least_one = { "a" } } } },
      "schema violation (entity_checks.1: {\n  [\"@entity\"] = {\n    "
      .. "\"exactly one of these fields must be non-empty: "
      .. "'at_least_one_of', 'conditional_at_least_one_of', 'only_one_of', "
      .. "'distinct', 'conditional', 'custom_entity_check', "
      .. "'mutually_required', 'mutually_exclusive', "
      .. "'mutually_exclusive_sets'\"\n  },\n  at_least_one = "
      .. "\"unknown field\"\n})" },
    { "shorthand without func",
      { name = "p", fields = {}, shorthand_fields = {
        { old = { type = "string" } } } },
      "schema violation (shorthand_fields.1: {\n  func = \"required field "
      .. "missing\"\n})" },
    { "name mismatch",
      { name = "other", fields = {} },
      "error initializing schema for plugin: schema name 'other' does not "
      .. "match plugin name 'p'" },
    { "new top-level field",
      { name = "p", fields = { { colour = { type = "string" } } } },
      "error initializing schema for plugin: error in definition of 'p': "
      .. "colour: cannot create a new field" },
    { "changed type",
      { name = "p", fields = { { enabled = { type = "string" } } } },
      "error initializing schema for plugin: error in definition of 'p': "
      .. "enabled: cannot change type in a specialized field" },
  }

  for _, c in ipairs(CASES) do
    it("rejects " .. c[1], function()
      local sub, err = plugins_schema.load("p", c[2])
      assert.is_nil(sub)
      assert.equal(c[3], err)
    end)
  end

  it("returns Kong's error table for metaschema violations", function()
    local _, _, err_t = plugins_schema.load("p", { name = "p", fields = {},
                                                   priority = 1 })
    assert.same(violation("schema violation (priority: unknown field)",
                          { priority = "unknown field" }), err_t)
  end)

  it("raises on misuse", function()
    assert.has_error(function() plugins_schema.load(nil, {}) end,
                     "plugin name must be a non-empty string")
    assert.has_error(function() plugins_schema.load("p", "x") end,
                     "schema must be a table")
  end)
end)


describe("plugins_schema.validate", function()
  local function check(name, row)
    local sub = load(name)
    row.name = name
    return plugins_schema.validate(sub, row)
  end

  describe("request-termination", function()
    it("fills config defaults", function()
      local row, err_t = check("request-termination", { config = {} })
      assert.is_nil(err_t)
      assert.same({ name = "request-termination", protocols = HTTP,
                    enabled = true,
                    config = { status_code = 503, echo = false } }, row)
    end)

    local CASES = {
      { { status_code = 99 },
        violation("schema violation (config.status_code: value should be "
                  .. "between 100 and 599)",
                  { config = { status_code = "value should be between 100 "
                                             .. "and 599" } }) },
      { { status_code = "404" },
        violation("schema violation (config.status_code: expected an "
                  .. "integer)",
                  { config = { status_code = "expected an integer" } }) },
      { { message = "x", body = "y" },
        violation("schema violation (message cannot be used with "
                  .. "content_type or body)",
                  { ["@entity"] = { "message cannot be used with "
                                    .. "content_type or body" } }) },
      { { status_code = 1, echo = "yes", nope = true },
        violation("3 schema violations (config.echo: expected a boolean; "
                  .. "config.nope: unknown field; config.status_code: value "
                  .. "should be between 100 and 599)",
                  { config = { echo = "expected a boolean",
                               nope = "unknown field",
                               status_code = "value should be between 100 "
                                             .. "and 599" } }) },
    }
    for i, c in ipairs(CASES) do
      it("rejects case #" .. i, function()
        local row, err_t = check("request-termination", { config = c[1] })
        assert.is_nil(row)
        assert.same(c[2], err_t)
      end)
    end
  end)

  describe("key-auth", function()
    it("fills defaults and keeps given values", function()
      local row = check("key-auth", { config = { key_names = { "x-key" } },
                                      protocols = { "https" } })
      assert.same({
        key_names = { "x-key" }, hide_credentials = false,
        key_in_header = true, key_in_query = true, key_in_body = false,
        run_on_preflight = true,
      }, row.config)
      assert.same({ "https" }, row.protocols)
    end)

    local CASES = {
      { { consumer = CONSUMER, config = {} },
        violation("schema violation (consumer: value must be null)",
                  { consumer = "value must be null" }) },
      { { protocols = { "tcp" }, config = {} },
        violation("schema violation (protocols.1: expected one of: grpc, "
                  .. "grpcs, http, https)",
                  { protocols = { "expected one of: grpc, grpcs, http, "
                                  .. "https" } }) },
      { { config = { key_names = { "ok", "bad name" } } },
        violation("schema violation (config.key_names: {\n  [2] = \"bad "
                  .. "header name 'bad name', allowed characters are A-Z, "
                  .. "a-z, 0-9, '_', and '-'\"\n})",
                  { config = { key_names = { [2] = "bad header name 'bad "
                    .. "name', allowed characters are A-Z, a-z, 0-9, '_', "
                    .. "and '-'" } } }) },
    }
    for i, c in ipairs(CASES) do
      it("rejects case #" .. i, function()
        local row, err_t = check("key-auth", c[1])
        assert.is_nil(row)
        assert.same(c[2], err_t)
      end)
    end

    it("rejects a null required array", function()
      local row, err_t = check("key-auth", {
        config = { key_names = require("cjson").null } })
      assert.is_nil(row)
      assert.same(violation("schema violation (config.key_names: required "
                            .. "field missing)",
                            { config = { key_names = "required field "
                                                     .. "missing" } }), err_t)
    end)
  end)

  describe("rate-limiting", function()
    it("fills nested record defaults", function()
      local row = check("rate-limiting", { config = { minute = 5 } })
      assert.same({
        minute = 5, limit_by = "consumer", policy = "local",
        fault_tolerant = true, hide_client_headers = false,
        error_code = 429, error_message = "API rate limit exceeded",
        redis = { port = 6379, timeout = 2000, database = 0 },
      }, row.config)
    end)

    it("expands shorthand fields inside config", function()
      local row = check("rate-limiting", { config = {
        minute = 5, policy = "redis", redis_host = "r.local",
        redis_port = 7000,
      } })
      assert.same({ host = "r.local", port = 7000, timeout = 2000,
                    database = 0 }, row.config.redis)
      assert.is_nil(row.config.redis_host)
    end)

    it("accepts vault references in referenceable fields", function()
      local row = check("rate-limiting", { config = {
        minute = 5, redis = { password = "{vault://env/redis-pw}" } } })
      assert.equal("{vault://env/redis-pw}", row.config.redis.password)
    end)

    local AT_LEAST = "at least one of these fields must be non-empty: "
      .. "'config.second', 'config.minute', 'config.hour', 'config.day', "
      .. "'config.month', 'config.year'"

    local CASES = {
      { {}, violation("schema violation (" .. AT_LEAST .. ")",
                      { ["@entity"] = { AT_LEAST } }) },
      { { minute = 0 },
        violation("schema violation (config.minute: value must be greater "
                  .. "than 0)",
                  { config = { minute = "value must be greater than 0" } }) },
      { { minute = 5, policy = "redis" },
        violation("2 schema violations (failed conditional validation "
                  .. "given value of field 'config.policy'; config.redis: {\n"
                  .. "  host = \"required field missing\"\n})",
                  { ["@entity"] = { "failed conditional validation given "
                                    .. "value of field 'config.policy'" },
                    config = { redis = {
                      host = "required field missing" } } }) },
      { { minute = 5, limit_by = "header" },
        violation("2 schema violations (failed conditional validation "
                  .. "given value of field 'config.limit_by'; "
                  .. "config.header_name: required field missing)",
                  { ["@entity"] = { "failed conditional validation given "
                                    .. "value of field 'config.limit_by'" },
                    config = { header_name = "required field missing" } }) },
      { { minute = 5, second = 10 },
        violation("schema violation (config: the limit for minute(5.0) "
                  .. "cannot be lower than the limit for second(10.0))",
                  { config = "the limit for minute(5.0) cannot be lower "
                             .. "than the limit for second(10.0)" }) },
      { { minute = 5, limit_by = "everything" },
        violation("schema violation (config.limit_by: expected one of: "
                  .. "consumer, credential, ip, service, header, path)",
                  { config = { limit_by = "expected one of: consumer, "
                    .. "credential, ip, service, header, path" } }) },
      { { minute = 5, redis_port = "x" },
        violation("schema violation (config.redis_port: expected an "
                  .. "integer)",
                  { config = { redis_port = "expected an integer" } }) },
      { { minute = 5, redis_host = "a", redis = { host = "b" } },
        violation("schema violation (config.redis_host: both deprecated "
                  .. "and new field are used but their values mismatch: "
                  .. "redis_host = a vs redis.host = b)",
                  { config = { redis_host = "both deprecated and new field "
                    .. "are used but their values mismatch: redis_host = a "
                    .. "vs redis.host = b" } }) },
      { { minute = 5, redis = { port = 70000 } },
        violation("schema violation (config.redis: {\n  port = \"value "
                  .. "should be between 0 and 65535\"\n})",
                  { config = { redis = { port = "value should be between 0 "
                                                .. "and 65535" } } }) },
    }
    for i, c in ipairs(CASES) do
      it("rejects case #" .. i, function()
        local row, err_t = check("rate-limiting", { config = c[1] })
        assert.is_nil(row)
        assert.same(c[2], err_t)
      end)
    end
  end)

  describe("pre-function", function()
    it("accepts functions without running them", function()
      local row = check("pre-function", { config = {
        access = { "error('never run at validation')" } } })
      assert.same({ "error('never run at validation')" }, row.config.access)
      assert.same({}, row.config.log)
      assert.same(HTTP, row.protocols)
    end)

    local AT_LEAST = "at least one of these fields must be non-empty: "
      .. "'config.certificate', 'config.rewrite', 'config.access', "
      .. "'config.header_filter', 'config.body_filter', 'config.log'"

    local CASES = {
      { { config = {} },
        violation("schema violation (" .. AT_LEAST .. ")",
                  { ["@entity"] = { AT_LEAST } }) },
      { { config = { access = { "return 1", "print(" } } },
        violation("schema violation (config.access: {\n  [2] = \"error "
                  .. "parsing pre-function: [string \\\"print(\\\"]:1: "
                  .. "unexpected symbol near '<eof>'\"\n})",
                  { config = { access = { [2] = "error parsing "
                    .. "pre-function: [string \"print(\"]:1: unexpected "
                    .. "symbol near '<eof>'" } } }) },
      { { consumer = CONSUMER, config = { access = { "return 1" } } },
        violation("schema violation (consumer: value must be null)",
                  { consumer = "value must be null" }) },
    }
    for i, c in ipairs(CASES) do
      it("rejects case #" .. i, function()
        local row, err_t = check("pre-function", c[1])
        assert.is_nil(row)
        assert.same(c[2], err_t)
      end)
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() plugins_schema.validate({}, {}) end,
                     "expected a subschema from plugins.load()")
    local sub = load("key-auth")
    assert.has_error(function()
      plugins_schema.validate(sub, { name = "cors" })
    end, "row is a 'cors' plugin, not 'key-auth'")
  end)

  it("works with typedefs overrides in a schema", function()
    local sub = assert(plugins_schema.load("p", {
      name = "p",
      fields = { { config = { type = "record", fields = {
        { port = typedefs.port { default = 443 } },
      } } } },
    }))
    local row = plugins_schema.validate(sub, { name = "p" })
    assert.same({ port = 443 }, row.config)
  end)
end)
